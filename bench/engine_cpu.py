#!/usr/bin/env python
"""The engine's own CPU per click-to-call, without Asterisk, HTTP or the ARI client: the REST
side's row and agent leg, then a call's events recorded from the lab
(tests/recordings/click_to_call-contact_hangup.jsonl) replayed through the real dispatcher,
flow, call_state and outbox against a fake ARI that answers at once. Deterministic enough to
compare two versions of the engine's database work (process CPU time, median of 3 runs).

    .venv/bin/python bench/engine_cpu.py                 # SQLite
    .venv/bin/python bench/engine_cpu.py --postgresql    # a throw-away PostgreSQL database
    .venv/bin/python bench/engine_cpu.py --postgresql --hangup   # the calls bench's flow

--hangup replays tests/recordings/click_to_call-hangup_requested.jsonl instead: bridged, then
hangupCall's service call (the backend ends the row and tears the legs down), then the legs'
trailing events: what bench/calls_bench.py's calls do.

--rest (with --hangup) places and ends each call through the REST API as a client does, in
process (Flask's test client: no HTTP server): POST /api/v1/makeCall/ (token check, checks,
the row, the throttle, the hand-off to the engine), the recording, POST /api/v1/hangupCall/.
The statements then count the whole call: the REST side, the engine and both device-state
mirrors (prepared statements included).
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--postgresql", action="store_true")
    ap.add_argument("--show", action="store_true", help="print the one call's statements")
    ap.add_argument("--hangup", action="store_true",
                    help="the call ends by hangupCall once bridged (calls_bench's flow)")
    ap.add_argument("--rest", action="store_true",
                    help="with --hangup: makeCall and hangupCall through the REST API")
    args = ap.parse_args()
    if args.rest:
        args.hangup = True

    from flask_migrate import upgrade
    from sqlalchemy import text

    from oml_server import create_app, secrets_file
    from oml_server.extensions import db
    from tests.conftest import _drop_postgres, _postgres_test_url
    from tests.factories import Factory
    from tests.unit import test_engine_replay as replay

    drop = None
    if args.postgresql:
        base = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
        url, name = _postgres_test_url(base)
        url = url.render_as_string(hide_password=False)
        drop = lambda: _drop_postgres(base, name)  # noqa: E731
    else:
        url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "cpu.sqlite3")
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "ARI_ENABLED": False, "TESTING": True,
                      "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
                      "MAKECALL_MAX_PER_WINDOW": 10 ** 9, **secrets_file.generate()})
    try:
        with app.app_context():
            upgrade()
            make = Factory(app)
            agent = replay.online(make, "1001")
            engine = replay.Harness(app)

            if args.rest:
                one_call = _through_rest(app, make, agent, engine, replay)
            else:
                def one_call():
                    _engine_call(engine, agent, replay, args.hangup)

            for _ in range(20):  # warm-up: caches, pools, compiled statements
                one_call()
            runs = []
            for _ in range(3):
                t0 = time.process_time()
                for _ in range(args.calls):
                    one_call()
                runs.append((time.process_time() - t0) / args.calls * 1000)
            counts = _count(db, engine, one_call, show=args.show)
            engine.dispatcher.stop()
            db.session.execute(text("SELECT 1"))
        print(f"database: {'postgresql' if args.postgresql else 'sqlite'}; call ended by "
              f"{'hangupCall' if args.hangup else 'the contact hanging up'}"
              f"{'; makeCall and hangupCall through the REST API' if args.rest else ''}")
        print(f"{'server' if args.rest else 'engine'} CPU per click-to-call (no Asterisk, no HTTP): "
              f"{statistics.median(runs):.2f} ms (runs: {', '.join(f'{r:.2f}' for r in runs)})")
        print("per call (REST row + engine): " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    finally:
        if drop:
            drop()


def _engine_call(engine, agent, replay, hangup):
    call_id = replay.rest_click_to_call(engine, agent)
    engine.ids = {}
    if not hangup:
        engine.replay("click_to_call-contact_hangup", call_id)
        return
    rest = engine.replay("click_to_call-hangup_requested", call_id,
                         stop=lambda e: e["type"] == "ChannelHangupRequest")
    engine.backend.hangup_call(replay.fresh(call_id))
    engine.resume(rest)


def _through_rest(app, make, agent, engine, replay):
    """One call as a CRM places and ends it, through the API with the engine's backend."""
    from types import SimpleNamespace

    from oml_server.extensions import db
    from oml_server.services import telephony
    user = agent.user
    campaign = make.campaign(agents=[user])
    headers = make.headers(user)
    body = {"idCampaign": campaign.id, "idAgent": agent.id, "phone": "5555000"}
    db.session.commit()
    engine.backend.supervisor = SimpleNamespace(connected=True)   # the engine's process
    telephony.set_backend(engine.backend)
    client = app.test_client()

    def one_call():
        answer = client.post("/api/v1/makeCall/", headers=headers, json=body).get_json()
        assert answer["status"] == "OK", answer
        engine.ids = {}
        rest = engine.replay("click_to_call-hangup_requested", answer["callId"],
                             stop=lambda e: e["type"] == "ChannelHangupRequest")
        assert client.post("/api/v1/hangupCall/", headers=headers).get_json() == {"status": "OK"}
        engine.resume(rest)
        db.session.remove()
    return one_call


def _count(db, engine, one_call, show=False):
    """SQL statements, transaction blocks committed (BEGIN … COMMIT on the wire; SQLite:
    every commit) and ARI requests of one call."""
    import gevent
    from sqlalchemy import event
    count = {"SQL statements": 0, "commits": 0}

    def statement(conn, cursor, sql, *args, **kwargs):
        count["SQL statements"] += 1
        if show:
            print("  SQL", " ".join(sql.split())[:150])


    def commit(conn):
        if show:
            print("  COMMIT")
        # A commit in psycopg2's autocommit mode (statements_commit_alone) sends nothing and
        # no BEGIN went before it: only transaction blocks on the wire are counted.
        if not getattr(conn.connection.dbapi_connection, "autocommit", False):
            count["commits"] += 1
    from oml_server.database import Prepared
    original = Prepared._execute_raw

    def prepared(self, connection, sql, values, *more):   # prepared: no engine event
        statement(connection, None, sql)
        return original(self, connection, sql, values, *more)
    gevent.sleep(0.05)  # what earlier calls spawned runs before the count starts
    event.listen(db.engine, "before_cursor_execute", statement)
    event.listen(db.engine, "commit", commit)
    Prepared._execute_raw = prepared
    requests_before = len(engine.ari.requests)
    try:
        one_call()
        gevent.sleep(0.05)  # what the call spawned (the device-state mirror after hangupCall)
    finally:
        Prepared._execute_raw = original
        event.remove(db.engine, "before_cursor_execute", statement)
        event.remove(db.engine, "commit", commit)
    count["ARI requests"] = len(engine.ari.requests) - requests_before
    if show:
        for request in engine.ari.requests[requests_before:]:
            print("  ARI", str(request)[:150])
    return count


if __name__ == "__main__":
    main()
