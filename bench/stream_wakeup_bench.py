#!/usr/bin/env python3
"""Event stream wake-up on PostgreSQL: the short outbox poll against LISTEN/NOTIFY (issue 11
item 5, "measure which"). Prints a table, writes bench/results/stream_wakeup.json.

    .venv/bin/python bench/stream_wakeup_bench.py                 # clients 1,100,1000
    .venv/bin/python bench/stream_wakeup_bench.py --clients 1,100 --events 100

For each mode (STREAM_WAKEUP=poll, STREAM_POLL_SECONDS 0.2 | STREAM_WAKEUP=notify, safety
poll 5 s) and each number of idle stream clients, one `oml-server run --no-engine` (deliveries
off, so the stream's own database work is what is counted) on a throw-away database:
- idle load: over --idle seconds with nobody writing, the database's transactions per second
  (pg_stat_database xact_commit + xact_rollback) and the CPU of its server processes
  (/proc of the backends serving that database) and of the oml-server process;
- latency: --events agent.status events written by this process (an INSERT into events, plus
  NOTIFY in the same transaction in notify mode: what outbox.record does), one every
  40-80 ms, each timed from just before COMMIT until one chosen client has read it: p50/p99;
- write cost: --writers connections inserting events as fast as they can for 5 s, with and
  without a NOTIFY in each transaction: commits per second (NOTIFY takes one database-wide
  lock at commit).
Every process it starts it stops by PID.
"""
import argparse
import json
import os
import random
import select
import socket
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)
import api_bench as ab  # noqa: E402
import crm_bench as cb  # noqa: E402

RESULTS = os.path.join(HERE, "results")


def pg(url):
    import psycopg2
    return psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))


def backend_cpu(admin, dbname):
    """Seconds of CPU of every server process connected to `dbname` (and still alive)."""
    with admin.cursor() as cur:
        cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                    (dbname,))
        pids = [row[0] for row in cur.fetchall()]
    total = {}
    for pid in pids:
        try:
            total[pid] = cb._cpu_seconds(pid)
        except OSError:
            pass
    return total


def transactions(admin, dbname):
    with admin.cursor() as cur:
        cur.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
                    (dbname,))
        return cur.fetchone()[0]


class Clients:
    def __init__(self, port, token, n):
        request = (f"GET /api/v1/events/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n").encode()
        self.sockets = []
        for _ in range(n):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(request)
            self.sockets.append(sock)
        # Every client must be subscribed before anything is timed.
        self.drain_until(b"retry:", self.sockets, 120)
        self.watched = self.sockets[-1]
        self.seen = b""

    @staticmethod
    def drain_until(marker, sockets, timeout):
        pending = {s.fileno(): s for s in sockets}
        data = {fd: b"" for fd in pending}
        poller = select.poll()
        for fd in pending:
            poller.register(fd, select.POLLIN)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for fd, _ in poller.poll(100):
                data[fd] += pending[fd].recv(65536)
                if marker in data[fd]:
                    poller.unregister(fd)
                    del pending[fd]
        if pending:
            raise RuntimeError(f"{len(pending)} streams never got {marker!r}")

    def drain_others(self):
        """Read what the other clients got, so the server never blocks on a full socket."""
        readable, _, _ = select.select(self.sockets[:-1], [], [], 0) if len(self.sockets) > 1 \
            else ([], [], [])
        for sock in readable:
            sock.recv(1 << 20)

    def wait_for(self, marker, timeout=10):
        deadline = time.monotonic() + timeout
        while marker not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.watched], [], [], left)
            if ready:
                self.seen += self.watched.recv(65536)
        now = time.monotonic()
        self.seen = self.seen[self.seen.index(marker) + len(marker):]
        return now

    def close(self):
        for sock in self.sockets:
            sock.close()


def write_event(conn, agent_id, notify):
    """One event row (and NOTIFY) in one transaction; returns (event id, monotonic time just
    before COMMIT)."""
    with conn.cursor() as cur:
        cur.execute("INSERT INTO events (type, agent_id, data, created_at) "
                    "VALUES ('agent.status', %s, '{\"event\": \"login\"}', now()) RETURNING id",
                    (agent_id,))
        event_id = cur.fetchone()[0]
        if notify:
            cur.execute("NOTIFY oml_events")
    before = time.monotonic()
    conn.commit()
    return event_id, before


def one_case(opts, db_url, dbname, workdir, mode, n_clients, admin_conn):
    os.environ["STREAM_WAKEUP"] = mode
    os.environ["STREAM_POLL_SECONDS"] = "0.2"
    os.environ["STREAM_SAFETY_POLL_SECONDS"] = "5"
    os.environ["DELIVERY_ENABLED"] = "0"
    with ab.running_server("gevent", db_url, workdir) as (proc, port):
        token = cb.login(port, cb.ADMIN)
        clients = Clients(port, token, n_clients)
        # PostgreSQL 15 flushes an idle backend's statistics up to 10 s late: wait them out,
        # or the logins and subscriptions above are counted as idle load.
        settle = time.monotonic() + 11
        while time.monotonic() < settle:
            clients.drain_others()
            time.sleep(0.2)
        # Idle: nobody writes.
        cpu0, tx0, srv0, t0 = backend_cpu(admin_conn, dbname), transactions(admin_conn, dbname), \
            cb._cpu_seconds(proc.pid), time.monotonic()
        end = t0 + opts.idle
        while time.monotonic() < end:
            clients.drain_others()
            time.sleep(0.2)
        wall = time.monotonic() - t0
        cpu1, tx1, srv1 = backend_cpu(admin_conn, dbname), transactions(admin_conn, dbname), \
            cb._cpu_seconds(proc.pid)
        db_cpu = sum(cpu1[p] - cpu0.get(p, 0) for p in cpu1)
        idle = {"db_tx_per_s": round((tx1 - tx0) / wall, 2),
                "db_cpu_percent": round(db_cpu / wall * 100, 3),
                "server_cpu_percent": round((srv1 - srv0) / wall * 100, 2)}
        # Latency.
        writer = pg(db_url)
        samples = []
        for _ in range(opts.events):
            event_id, before = write_event(writer, 1, mode == "notify")
            got = clients.wait_for(f"id: {event_id}\n".encode())
            if got is not None:
                samples.append((got - before) * 1000)
            clients.drain_others()
            time.sleep(random.uniform(0.04, 0.08))
        writer.close()
        clients.close()
    return {"mode": mode, "clients": n_clients, **idle,
            "events": opts.events, "received": len(samples),
            "p50_ms": round(statistics.median(samples), 2) if samples else None,
            "p99_ms": round(cb.percentile(samples, 99), 2) if samples else None,
            "max_ms": round(max(samples), 2) if samples else None}


def write_cost(db_url, writers, seconds=5):
    """Commits per second of `writers` connections inserting events, with / without NOTIFY."""
    out = {}
    for notify in (False, True, False, True):
        stop = time.monotonic() + seconds
        counts = [0] * writers

        def work(i):
            conn = pg(db_url)
            while time.monotonic() < stop:
                write_event(conn, 1, notify)
                counts[i] += 1
            conn.close()
        threads = [threading.Thread(target=work, args=(i,)) for i in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out.setdefault("with_notify" if notify else "without", []).append(round(sum(counts) / seconds))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", default="1,100,1000")
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--idle", type=float, default=10.0)
    parser.add_argument("--writers", type=int, default=16)
    opts = parser.parse_args()
    if not ab.pg_reachable():
        sys.exit("PostgreSQL on 127.0.0.1:5432 is needed: LISTEN/NOTIFY is PostgreSQL's")
    results = []
    with tempfile.TemporaryDirectory(prefix="stream-wakeup-") as workdir, \
            ab.throwaway_database("postgresql", workdir, "wakeup") as db_url:
        cb.Bench(opts, db_url, workdir)    # migrate, admin and agent users
        dbname = db_url.rsplit("/", 1)[1]
        admin = pg(ab.PG_ADMIN_URL)
        admin.autocommit = True
        for n in [int(x) for x in opts.clients.split(",")]:
            for mode in ("poll", "notify"):
                ab.log(f"{mode}, {n} clients …")
                results.append(one_case(opts, db_url, dbname, workdir, mode, n, admin))
                ab.log(results[-1])
        ab.log(f"write cost, {opts.writers} writers …")
        writes = write_cost(db_url, opts.writers)
        admin.close()
    print("\n| wake-up | idle clients | idle DB transactions/s | idle DB CPU | idle server CPU | "
          "event → client p50 | p99 | max |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['mode']} | {r['clients']} | {r['db_tx_per_s']} | {r['db_cpu_percent']} % | "
              f"{r['server_cpu_percent']} % | {r['p50_ms']} ms | {r['p99_ms']} ms | {r['max_ms']} ms |")
    print(f"\n{opts.writers} writers, event-row commits/s (two alternating rounds each): "
          f"without NOTIFY {writes['without']}, with NOTIFY in the transaction {writes['with_notify']}")
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "stream_wakeup.json"), "w") as handle:
        json.dump({"cases": results, "write_commits_per_s": writes, "writers": opts.writers},
                  handle, indent=2)


if __name__ == "__main__":
    main()
