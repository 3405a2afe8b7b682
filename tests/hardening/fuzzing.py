"""The contract fuzzer: schemathesis generates requests from `/openapi.json` for every operation,
sends each one anonymously and with an agent's and a supervisor's token, in-process against the
WSGI app, and counts what came back.

Used by `tests/hardening/test_fuzz.py` (bounded, part of `make test`) and by `scripts/fuzz.py`
(`make fuzz`, a long run). Figures: requests tried, 5xx answers, responses that break the
documented schema (undocumented status, wrong content type, body not matching its schema).
"""
import dataclasses

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import Unsatisfiable
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (content_type_conformance,
                                               response_schema_conformance,
                                               status_code_conformance)

SCHEMA_CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance]


@dataclasses.dataclass
class Figures:
    operations: int = 0
    requests: int = 0
    server_errors: int = 0
    schema_violations: int = 0
    examples: list = dataclasses.field(default_factory=list)  # a few failures, to fix them
    seen: set = dataclasses.field(default_factory=set, repr=False)

    def note(self, kind, case, response, detail=""):
        key = (kind, case.method, case.path, response.status_code, detail[:60])
        if key in self.seen:
            return
        self.seen.add(key)
        if len(self.examples) < 40:
            body = response.get_data(as_text=True)[:300]
            self.examples.append(f"{kind}: {case.method} {case.formatted_path} "
                                 f"body={case.body!r:.200} -> {response.status_code} {body} {detail:.600}")

    def summary(self):
        return (f"operations: {self.operations}, requests tried: {self.requests}, "
                f"5xx answers: {self.server_errors}, schema violations: {self.schema_violations}")


# A stream that never ends cannot be read to its end by a test client: its refusals are tested
# in tests/unit/test_crm_server_process.py against the real server.
ENDLESS = {"/api/v1/events/"}


def run(app, auth_variants, max_examples=10, modes=("positive", "negative"), seed=None):
    """Fuzz every operation of `app`'s OpenAPI document; `auth_variants` maps a label to the
    headers to add (`{}` for anonymous). Without `seed` the examples are derandomized (the same
    on every run). Returns Figures."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    figures = Figures()
    client = app.test_client()
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in ENDLESS:
            continue
        figures.operations += 1
        for mode in modes:
            strategy = operation.as_strategy(generation_mode=schemathesis.GenerationMode(mode))

            @settings(max_examples=max_examples, deadline=None, database=None, derandomize=seed is None,
                      phases=[Phase.explicit, Phase.generate],
                      suppress_health_check=list(HealthCheck), print_blob=False)
            @given(case=strategy)
            def one(case):
                for headers in auth_variants.values():
                    _send(case, headers, client, figures)

            if seed is not None:  # a long run explores; the bounded one is the same every time
                one = hypothesis_seed(seed)(one)

            try:
                one()
            except Unsatisfiable:  # nothing to negate (e.g. no parameters, no body)
                pass
    return figures


def _send(case, headers, client, figures):
    kwargs = case.as_transport_kwargs(headers=headers)
    kwargs.pop("app", None)
    response = client.open(**_werkzeug_kwargs(kwargs))
    figures.requests += 1
    if response.status_code >= 500:
        figures.server_errors += 1
        figures.note("5xx", case, response)
    try:
        case.validate_response(response, checks=SCHEMA_CHECKS)
    except FailureGroup as exc:
        figures.schema_violations += 1
        figures.note("schema", case, response, "; ".join(f"{f.title}: {f.message}" for f in exc.exceptions))


def _werkzeug_kwargs(kwargs):
    out = {"path": kwargs["url"] if "url" in kwargs else kwargs["path"], "method": kwargs["method"],
           "headers": kwargs.get("headers") or {}}
    for name in ("query_string", "data", "json", "content_type"):
        if kwargs.get(name) is not None:
            out[name] = kwargs[name]
    if kwargs.get("params") is not None:
        out["query_string"] = kwargs["params"]
    return out
