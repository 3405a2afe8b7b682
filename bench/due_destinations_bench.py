#!/usr/bin/env python3
"""The delivery sender's "which destinations have a due row" query against a dead CRM's
backlog, on PostgreSQL: the old `SELECT DISTINCT … WHERE due` (reads every due row) beside
`deliveries.due_destinations` (a loose index scan, one probe per destination).

    .venv/bin/python bench/due_destinations_bench.py          # backlogs 1,000 / 10,000 / 100,000

A throw-away database migrated to head; one dead destination whose backlog is all due, three
healthy ones with nothing open, 100,000 delivered rows. Prints the median server execution
time (EXPLAIN ANALYZE) of 7 runs of each query at each backlog.
"""
import os
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)
import api_bench as ab  # noqa: E402

OLD = """SELECT DISTINCT destination FROM deliveries WHERE (state = 'pending' AND
next_attempt_at <= now()) OR (state = 'sending' AND lease_until < now())"""


def execution_ms(cur, sql):
    cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql)
    return cur.fetchone()[0][0]["Execution Time"]


def main():
    import psycopg2
    from oml_server.services.deliveries import _DUE_DESTINATIONS
    new = str(_DUE_DESTINATIONS).replace(":now", "now()")
    if not ab.pg_reachable():
        sys.exit("PostgreSQL on 127.0.0.1:5432 is needed")
    with tempfile.TemporaryDirectory() as workdir, \
            ab.throwaway_database("postgresql", workdir, "due") as url:
        ab.cli(url, "db", "upgrade")
        conn = psycopg2.connect(url)
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute("""INSERT INTO deliveries (destination, key, order_key, method, url, body,
            verify_tls, state, attempts, next_attempt_at, created_at)
            SELECT 'webhook:' || (2 + g % 3), 'd' || g, 'call:' || (g / 6), 'POST', 'http://x',
            '', true, 'delivered', 1, now(), now() FROM generate_series(1, 100000) g""")
        done = 0
        print("| dead CRM backlog (due rows) | SELECT DISTINCT … WHERE due | loose index scan |")
        print("|---:|---:|---:|")
        for backlog in (1000, 10000, 100000):
            cur.execute("""INSERT INTO deliveries (destination, key, order_key, method, url, body,
                verify_tls, state, attempts, next_attempt_at, created_at)
                SELECT 'webhook:1', 'p' || g, 'call:' || (g / 6), 'POST', 'http://x', '', true,
                'pending', 0, now() - interval '1 second', now()
                FROM generate_series(%s, %s) g""", (done + 1, backlog))
            done = backlog
            cur.execute("ANALYZE deliveries")
            old = statistics.median(execution_ms(cur, OLD) for _ in range(7))
            fresh = statistics.median(execution_ms(cur, new) for _ in range(7))
            print(f"| {backlog:,} | {old:.2f} ms | {fresh:.2f} ms |")
        conn.close()


if __name__ == "__main__":
    main()
