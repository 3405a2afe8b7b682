#!/usr/bin/env python3
"""Where the CPU goes as clients grow: one hot path on PostgreSQL at each client count, with
the CPU the server and its own PostgreSQL backends spend per request.

    .venv/bin/python bench/load_cpu.py                                   # new_contact, 10,50,100,200
    .venv/bin/python bench/load_cpu.py --levels 10,200,10,200 --env DB_POOL_SIZE=30,DB_MAX_OVERFLOW=0
    .venv/bin/python bench/load_cpu.py --endpoint disposition --kind gunicorn

Per level it prints wrk's throughput and latency, and from /proc: the server's CPU per
request (utime+stime of the gevent process, or of gunicorn's workers), the CPU per request of
the PostgreSQL backends connected to the benchmark's database (pg_stat_activity's pids) and
how many there were, the server's involuntary context switches per request (how often the
kernel took its core away) and the machine's idle share. Throughput alone moves with whatever
else runs on a shared machine; these figures say whether the work per request changed.

It provisions a throw-away database like bench/api_bench.py (whose helpers it uses), starts
the server as `--kind` with `--env` added to its environment, and stops everything by PID.

`--sample-ms 100` (default; 0 turns it off) also samples PostgreSQL's own views while each
level runs: per sample, the benchmark database's connections by state and wait event
(`pg_stat_activity`) and the locks waited for (`pg_locks` not granted), printed as the mean
number of connections in each, and the CPU per request of each process (every gunicorn
worker on its own, the PostgreSQL backends, wrk).
"""
import argparse
import os
import resource
import signal
import sys
import tempfile
import threading
import time
from collections import Counter

import api_bench as B

HZ = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / HZ
    except OSError:
        return 0.0


def involuntary_switches(pid):
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("nonvoluntary_ctxt_switches"):
                return int(line.split()[1])
    return 0


def backend_cpu(db_url):
    """{pid: CPU seconds} of the PostgreSQL backends connected to this database."""
    import psycopg2
    conn = psycopg2.connect(B.PG_ADMIN_URL)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s",
                        (db_url.rsplit("/", 1)[1],))
            return {pid: cpu_seconds(pid) for (pid,) in cur.fetchall()}
    finally:
        conn.close()


class ActivitySampler(threading.Thread):
    """pg_stat_activity and pg_locks of one database every `interval` seconds, in a thread of
    its own (its connection is to the admin database, so it does not count itself)."""

    ACTIVITY = ("SELECT state, coalesce(wait_event_type || '/' || wait_event, '-') "
                "FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'")
    LOCKS = ("SELECT l.locktype, l.mode FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
             "WHERE NOT l.granted AND a.datname = %s")

    def __init__(self, db_url, interval):
        super().__init__(daemon=True)
        self.dbname, self.interval = db_url.rsplit("/", 1)[1], interval
        self.activity, self.locks, self.samples, self.connections = Counter(), Counter(), 0, 0
        self.done = threading.Event()

    def run(self):
        import psycopg2
        conn = psycopg2.connect(B.PG_ADMIN_URL)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                while not self.done.wait(self.interval):
                    cur.execute(self.ACTIVITY, (self.dbname,))
                    rows = cur.fetchall()
                    self.activity.update(f"{state or '-'} {wait}" for state, wait in rows)
                    self.connections += len(rows)
                    cur.execute(self.LOCKS, (self.dbname,))
                    self.locks.update(f"{kind} {mode}" for kind, mode in cur.fetchall())
                    self.samples += 1
        finally:
            conn.close()

    def stop(self):
        self.done.set()
        self.join()

    def report(self):
        n = self.samples or 1
        lines = [f"    pg_stat_activity, {self.samples} samples, mean connections "
                 f"{self.connections / n:.1f}:"]
        lines += [f"      {count / n:6.2f}  {key}" for key, count in self.activity.most_common()]
        lines.append("    pg_locks not granted: " + (", ".join(
            f"{key} {count / n:.2f}" for key, count in self.locks.most_common()) or "none"))
        return "\n".join(lines)


def machine_times():
    with open("/proc/stat") as handle:
        values = list(map(int, handle.readline().split()[1:]))
    return sum(values), values[3] + values[4]


def server_pids(proc, kind):
    return [proc.pid] + (B.children(proc.pid) if kind == "gunicorn" else [])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="gevent", choices=("gevent", "gunicorn"))
    parser.add_argument("--endpoint", default="new_contact",
                        choices=[e for e in B.ENDPOINTS if e != "login"])
    parser.add_argument("--levels", default="10,50,100,200")
    parser.add_argument("--duration", type=int, default=4, help="seconds per level")
    parser.add_argument("--sample-ms", type=int, default=100,
                        help="pg_stat_activity/pg_locks sampling period (0: off)")
    parser.add_argument("--sql", default="",
                        help="SQL run on the benchmark database before the server starts (an "
                             "experiment: e.g. 'ALTER TABLE contacts DISABLE TRIGGER contacts_added')")
    parser.add_argument("--env", default="", help="NAME=VALUE,… added to the server's environment")
    opts = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    for pair in filter(None, opts.env.split(",")):
        name, value = pair.split("=", 1)
        os.environ[name] = value   # running_server passes os.environ on
    if not B.pg_reachable():
        sys.exit(f"PostgreSQL does not answer at {B.PG_ADMIN_URL} (BENCH_PG_URL)")
    B.ensure_wrk()
    print(f"{opts.kind} {opts.endpoint} on PostgreSQL {opts.env or '(default pool)'}")
    with tempfile.TemporaryDirectory(prefix="oml-load-cpu-") as tmpdir, \
            B.throwaway_database("postgresql", tmpdir, "load_cpu") as db_url:
        extra = 201
        B.prepare(db_url, tmpdir, 1000, extra)
        low, _high, n_contacts = B.contact_id_range(db_url)
        updates = B.seed_updates(db_url, tmpdir, low, extra)
        if opts.sql:
            import psycopg2
            with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
                cur.execute(opts.sql)
        with B.running_server(opts.kind, db_url, tmpdir) as (proc, port):
            bench_opts = argparse.Namespace(duration=opts.duration, repeats=1)
            measure = B.Measure(bench_opts, port, B.login(port), low, n_contacts,
                                {e: B.Cursor() for e in B.INDEXED}, updates)
            measure.once(opts.endpoint, 10)   # warm-up
            for clients in map(int, opts.levels.split(",")):
                B.settle(port)
                pids = server_pids(proc, opts.kind)
                workers0, wall0 = {pid: cpu_seconds(pid) for pid in pids}, time.monotonic()
                server0, switches0 = sum(workers0.values()), sum(map(involuntary_switches, pids))
                sampler = ActivitySampler(db_url, opts.sample_ms / 1000) if opts.sample_ms else None
                if sampler:
                    sampler.start()
                backends0, wrk0, machine0 = (backend_cpu(db_url),
                                             resource.getrusage(resource.RUSAGE_CHILDREN),
                                             machine_times())
                figures = measure.once(opts.endpoint, clients)
                if sampler:
                    sampler.stop()
                workers1, wall = {pid: cpu_seconds(pid) for pid in pids}, time.monotonic() - wall0
                server1, switches1 = sum(workers1.values()), sum(map(involuntary_switches, pids))
                backends1, wrk1, machine1 = (backend_cpu(db_url),
                                             resource.getrusage(resource.RUSAGE_CHILDREN),
                                             machine_times())
                done = figures["requests"] or 1
                backends = sum(cpu - backends0.get(pid, 0.0) for pid, cpu in backends1.items())
                wrk_cpu = (wrk1.ru_utime + wrk1.ru_stime) - (wrk0.ru_utime + wrk0.ru_stime)
                idle = (machine1[1] - machine0[1]) / max(1, machine1[0] - machine0[0])
                print(f"c={clients:<4} {figures['rps']:7.0f} req/s  p50 {figures['p50_us'] / 1000:7.1f} ms"
                      f"  p99 {figures['p99_us'] / 1000:7.1f} ms | CPU per request: server "
                      f"{1000 * (server1 - server0) / done:5.2f} ms, PostgreSQL "
                      f"{1000 * backends / done:5.2f} ms ({len(backends1)} backends), wrk "
                      f"{1000 * wrk_cpu / done:4.2f} ms | server preempted "
                      f"{(switches1 - switches0) / done:4.2f}/request | machine idle {100 * idle:3.0f}%"
                      f"{'  ERRORS ' + str(figures['errors']) if figures['errors'] else ''}",
                      flush=True)
                # share of one core each used over the level: is one of them saturated?
                print("    busy (% of a core): " + ", ".join(
                    f"server {pid} {100 * (workers1[pid] - workers0[pid]) / wall:.0f}%"
                    for pid in pids if workers1[pid] > workers0[pid])
                    + f", PostgreSQL backends {100 * backends / wall:.0f}%, wrk "
                    f"{100 * wrk_cpu / wall:.0f}%", flush=True)
                if sampler:
                    print(sampler.report(), flush=True)


if __name__ == "__main__":
    main()
