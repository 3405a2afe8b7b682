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
    args = ap.parse_args()

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
                      "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000", **secrets_file.generate()})
    try:
        with app.app_context():
            upgrade()
            make = Factory(app)
            agent = replay.online(make, "1001")
            engine = replay.Harness(app)

            def one_call():
                call_id = replay.rest_click_to_call(engine, agent)
                engine.ids = {}
                if not args.hangup:
                    engine.replay("click_to_call-contact_hangup", call_id)
                    return
                rest = engine.replay("click_to_call-hangup_requested", call_id,
                                     stop=lambda e: e["type"] == "ChannelHangupRequest")
                engine.backend.hangup_call(replay.fresh(call_id))
                engine.resume(rest)

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
              f"{'hangupCall' if args.hangup else 'the contact hanging up'}")
        print(f"engine CPU per click-to-call (no Asterisk, no HTTP): "
              f"{statistics.median(runs):.2f} ms (runs: {', '.join(f'{r:.2f}' for r in runs)})")
        print("per call (REST row + engine): " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    finally:
        if drop:
            drop()


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
    gevent.sleep(0.05)  # what earlier calls spawned runs before the count starts
    event.listen(db.engine, "before_cursor_execute", statement)
    event.listen(db.engine, "commit", commit)
    requests_before = len(engine.ari.requests)
    try:
        one_call()
        gevent.sleep(0.05)  # what the call spawned (the device-state mirror after hangupCall)
    finally:
        event.remove(db.engine, "before_cursor_execute", statement)
        event.remove(db.engine, "commit", commit)
    count["ARI requests"] = len(engine.ari.requests) - requests_before
    if show:
        for request in engine.ari.requests[requests_before:]:
            print("  ARI", str(request)[:150])
    return count


if __name__ == "__main__":
    main()
