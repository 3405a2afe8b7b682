"""Item 1: schemathesis fuzzes every operation of /openapi.json, anonymous and authenticated.
No 5xx, no response outside the documented schema. `make fuzz` runs the same engine longer."""
import os

from . import fuzzing

# config.py's defaults, without the login slow-down's sleep.
PRODUCTION_LIMITS = {"LOGIN_MAX_FAILURES": 5, "LOGIN_MAX_FAILURES_PER_ADDRESS": 20,
                     "LOGIN_SLOWDOWN_SECONDS": 0, "MAKECALL_MAX_PER_WINDOW": 10}

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))


def test_fuzz_contract(app, make, world, fake_telephony, capsys, monkeypatch):
    for name, value in PRODUCTION_LIMITS.items():  # so 429s and TOO_MANY_CALLS get fuzzed too
        monkeypatch.setitem(app.config, name, value)
    variants = {"anonymous": {}, "agent": make.headers(world.alice),
                "supervisor": make.headers(world.supervisor)}
    figures = fuzzing.run(app, variants, max_examples=EXAMPLES)
    with capsys.disabled():
        print("\nfuzz:", figures.summary())
    assert figures.operations >= 20
    assert figures.requests >= figures.operations * 3
    if figures.examples and os.environ.get("FUZZ_REPORT"):
        with open(os.environ["FUZZ_REPORT"], "w") as out:
            out.write("\n".join(figures.examples))
    assert figures.server_errors == 0, "\n".join(figures.examples)
    assert figures.schema_violations == 0, "\n".join(figures.examples)
