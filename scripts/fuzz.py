"""`make fuzz`: the long contract-fuzzing run (tests/hardening/fuzzing.py, the engine `make test`
runs briefly). Builds a throw-away SQLite database with the production abuse limits, seeds two campaigns, three agents and a supervisor, then sends
FUZZ_EXAMPLES generated requests per operation and mode (positive, negative), each anonymous,
as an agent and as a supervisor. Prints the figures; exits 1 on any 5xx or schema violation.
"""
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


def main():
    examples = int(os.environ.get("FUZZ_EXAMPLES", "300"))
    from flask_migrate import upgrade

    from oml_server import create_app
    from oml_server.services import telephony
    from tests.conftest import TEST_CONFIG
    from tests.fake_telephony import FakeTelephony
    from tests.factories import Factory
    from tests.hardening import fuzzing

    tmp = tempfile.mkdtemp(prefix="oml-fuzz-")
    url = "sqlite:///" + os.path.join(tmp, "fuzz.sqlite3")
    from tests.hardening.test_fuzz import PRODUCTION_LIMITS
    app = create_app({**TEST_CONFIG, **PRODUCTION_LIMITS, "SQLALCHEMY_DATABASE_URI": url})
    telephony.set_backend(FakeTelephony())
    started = time.monotonic()
    with app.app_context():
        upgrade()
        make = Factory(app)
        system = make.external_system()
        alice, bob, carol = make.agent(), make.agent(), make.agent()
        supervisor = make.user("Supervisor")
        campaign = make.campaign(agents=[alice, bob], supervisors=[supervisor],
                                 external_system=system, external_id="camp-a",
                                 options=["Venta", "No venta"])
        make.campaign(agents=[carol], external_system=system, external_id="camp-b")
        make.contact(campaign.database, external_id="c-a")
        make.pause()
        variants = {"anonymous": {}, "agent": make.headers(alice),
                    "supervisor": make.headers(supervisor)}
        seed = int(os.environ.get("FUZZ_SEED") or time.time())
        figures = fuzzing.run(app, variants, max_examples=examples, seed=seed)
    elapsed = time.monotonic() - started
    print(f"fuzz ({examples} examples per operation and mode, FUZZ_SEED={seed}, {elapsed:.0f} s): "
          f"{figures.summary()}")
    for example in figures.examples:
        print(" -", example[:2000])
    return 1 if figures.server_errors or figures.schema_violations else 0


if __name__ == "__main__":
    sys.exit(main())
