#!/usr/bin/env python3
"""What one hot-path statement costs PostgreSQL's backend: CPU per execution, planned every
time (what psycopg2 does) against prepared once (what oml_server.database.Prepared does).

    .venv/bin/python bench/pg_statement_cost.py            # 3000 executions each
    .venv/bin/python bench/pg_statement_cost.py -n 10000

The statements are the server's own (compiled by SQLAlchemy for PostgreSQL) on a throw-away
database provisioned like bench/api_bench.py's; the figure is the backend's utime+stime
(/proc) over the executions, so it holds on a busy machine. Wall time per execution is shown
beside it (one client, round trip included).
"""
import argparse
import os
import signal
import sys
import tempfile
import time

import api_bench as B

HZ = os.sysconf("SC_CLK_TCK")


def backend_cpu(pid):
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def statements(first_contact):
    """(label, Prepared, params of run i) of the hot paths, for campaign 1 and agent 1."""
    from oml_server import auth
    from oml_server.services import campaigns, contacts, dispositions, lookup
    data = {"TELEFONO": "1", "NOMBRE": "x", "CELULAR": "", "id_ext": "e"}
    return [
        ("token check (every request)", auth._USER_BY_ID, lambda i: {"uid": 1}),
        ("campaign + access (new_contact)", lookup._CAMPAIGN_INFO_FOR_AGENT,
         lambda i: {"cid": 1, "aid": 1}),
        ("disposition options", campaigns._OPTIONS, lambda i: {"cid": 1}),
        ("checked contact INSERT", contacts._INSERTS[True, True], lambda i: {
            "database_id": 1, "main_phone": f"7{i:012d}", "external_id": f"cost-{i}",
            "unique_phone": f"7{i:012d}", "data": data, "assigned_agent_id": None}),
        ("option/contact/taken checks", dispositions._OPTION_CONTACT_TAKEN,
         lambda i: {"oid": 1, "cid": first_contact}),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=3000, help="executions per statement and mode")
    opts = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not B.pg_reachable():
        sys.exit(f"PostgreSQL does not answer at {B.PG_ADMIN_URL} (BENCH_PG_URL)")
    with tempfile.TemporaryDirectory(prefix="oml-stmt-cost-") as tmpdir, \
            B.throwaway_database("postgresql", tmpdir, "stmt_cost") as db_url:
        B.prepare(db_url, tmpdir, 1000, 1)
        low, _high, _n = B.contact_id_range(db_url)
        os.environ["DATABASE_URL"] = db_url
        os.environ["ARI_ENABLED"] = "0"
        from oml_server import create_app
        from oml_server.database import statements_commit_alone
        from oml_server.extensions import db
        app = create_app()
        offset = 0
        print(f"{'statement':34} {'planned each time':>28} {'prepared':>28}")
        with app.app_context():
            statements_commit_alone(db.session)   # no BEGIN/COMMIT in the figures
            connection = db.session.connection()
            pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            for label, prepared, params in statements(low):
                row = [label]
                for mode in ("planned", "prepared"):
                    def run(i):
                        if mode == "planned":
                            return connection.execute(prepared.statement, params(i)).all()
                        return prepared.execute(connection, params(i)).all()
                    for i in range(50):   # warm: caches, the PREPARE itself
                        run(offset + i + 10**7)
                    cpu0, wall0 = backend_cpu(pid), time.perf_counter()
                    for i in range(opts.n):
                        run(offset + i)
                    cpu1, wall1 = backend_cpu(pid), time.perf_counter()
                    offset += opts.n
                    row.append(f"{1e6 * (cpu1 - cpu0) / opts.n:6.0f} µs CPU, "
                               f"{1e6 * (wall1 - wall0) / opts.n:5.0f} µs wall")
                print(f"{row[0]:34} {row[1]:>28} {row[2]:>28}", flush=True)
            db.session.remove()
            db.engine.dispose()


if __name__ == "__main__":
    main()
