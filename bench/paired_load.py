#!/usr/bin/env python3
"""Two builds of the server side by side, the same client counts alternated between them, so
both see the same load on a shared machine: does throughput hold from 10 to 50 and 200
clients (median of the per-round ratios), and what happens to p99? Each run also shows the
most connections that waited in the listening socket's accept queue (Linux's /proc/net/tcp,
sampled every 20 ms): new clients that no worker has taken yet.

    # the main checkout's build against this one (each needs its own virtualenv)
    .venv/bin/python bench/paired_load.py --baseline /path/to/main/.venv/bin --rounds 5
    .venv/bin/python bench/paired_load.py --baseline /path/to/main/.venv/bin --kind gunicorn
    # one build, two settings: the pool as configured against a larger one
    .venv/bin/python bench/paired_load.py --baseline .venv/bin --candidate-env DB_MAX_OVERFLOW=22

Each build gets its own throw-away PostgreSQL database, provisioned like bench/api_bench.py's
(whose helpers this uses), and its own server (`--kind`). A round runs the hot path at each
client count on the baseline, then on the candidate (this checkout's .venv unless
`--candidate`); wrk and every figure as in api_bench.py. Every process is stopped by PID.
"""
import argparse
import contextlib
import os
import signal
import statistics
import sys
import tempfile
import threading
import time

import api_bench as B


@contextlib.contextmanager
def server(bindir, kind, db_url, tmpdir, env):
    """The server of one build; `env` ("NAME=VALUE,…") is added to its environment only."""
    pairs = [pair.split("=", 1) for pair in env.split(",") if pair]
    saved_env = {name: os.environ.get(name) for name, _ in pairs}
    saved, B.BIN = B.BIN, bindir   # api_bench starts `oml-server` / `gunicorn` from BIN
    # gunicorn imports `wsgi:app` from its --chdir (api_bench's ROOT), and with it the
    # oml_server package found there first: the build's own checkout, not this one (before,
    # a gunicorn baseline ran this checkout's code).
    saved_root, B.ROOT = B.ROOT, checkout_of(bindir)
    os.environ.update(dict(pairs))   # running_server passes os.environ on at start
    try:
        with B.running_server(kind, db_url, tmpdir) as running:
            for name, value in saved_env.items():   # the other build keeps its own settings
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            yield running
    finally:
        B.BIN, B.ROOT = saved, saved_root


@contextlib.contextmanager
def accept_queue(port, every=0.02):
    """Samples the accept queue of the socket listening on `port`; yields the list of
    samples (connections waiting), empty where /proc/net/tcp is not there."""
    samples, stop = [], threading.Event()
    suffix = f":{port:04X}"

    def sample():
        while not stop.is_set():
            try:
                with open("/proc/net/tcp") as table:
                    for line in table:
                        fields = line.split()
                        if fields[3] == "0A" and fields[1].endswith(suffix):   # LISTEN
                            samples.append(int(fields[4].split(":")[1], 16))   # rx_queue
            except OSError:
                return
            time.sleep(every)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield samples
    finally:
        stop.set()
        sampler.join()


def checkout_of(bindir):
    """The checkout a virtualenv's bin/ belongs to (<checkout>/.venv/bin), else this one."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(bindir)))
    return root if os.path.exists(os.path.join(root, "wsgi.py")) else B.ROOT


def provision(bindir, db_url, tmpdir):
    saved, B.BIN = B.BIN, bindir   # each build migrates its own database
    try:
        B.prepare(db_url, tmpdir, 1000, 201)
        return B.contact_id_range(db_url)[0]
    finally:
        B.BIN = saved


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="bin/ of the baseline's virtualenv")
    parser.add_argument("--candidate", default=B.BIN, help="bin/ of the candidate's virtualenv")
    parser.add_argument("--baseline-env", default="", help="NAME=VALUE,… for the baseline's server")
    parser.add_argument("--candidate-env", default="", help="NAME=VALUE,… for the candidate's server")
    parser.add_argument("--kind", default="gevent", choices=("gevent", "gunicorn"))
    parser.add_argument("--endpoint", default="new_contact",
                        choices=[e for e in B.ENDPOINTS if e not in ("login", "disposition_update")])
    parser.add_argument("--levels", default="10,50,200", help="the first is the reference")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=3, help="seconds per run")
    opts = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not B.pg_reachable():
        sys.exit(f"PostgreSQL does not answer at {B.PG_ADMIN_URL} (BENCH_PG_URL)")
    B.ensure_wrk()
    levels = [int(c) for c in opts.levels.split(",")]
    builds = {"baseline": opts.baseline, "candidate": opts.candidate}
    with tempfile.TemporaryDirectory(prefix="oml-paired-") as tmpdir, \
            B.throwaway_database("postgresql", tmpdir, "paired_a") as url_a, \
            B.throwaway_database("postgresql", tmpdir, "paired_b") as url_b:
        urls = {"baseline": url_a, "candidate": url_b}
        first = {name: provision(bindir, urls[name], tmpdir) for name, bindir in builds.items()}
        with server(builds["baseline"], opts.kind, url_a, tmpdir, opts.baseline_env) as (_pa, port_a), \
                server(builds["candidate"], opts.kind, url_b, tmpdir, opts.candidate_env) as (_pb, port_b):
            ports = {"baseline": port_a, "candidate": port_b}
            run_opts = argparse.Namespace(duration=opts.duration, repeats=1)
            measures = {name: B.Measure(run_opts, ports[name], B.login(ports[name]), first[name],
                                        1000, {e: B.Cursor() for e in B.INDEXED}, None)
                        for name in builds}
            for measure in measures.values():
                measure.once(opts.endpoint, levels[0])   # warm-up
            runs = {name: {c: [] for c in levels} for name in builds}
            for round_ in range(opts.rounds):
                for name, measure in measures.items():
                    for clients in levels:
                        B.settle(measure.port)
                        with accept_queue(measure.port) as queued:
                            figures = measure.once(opts.endpoint, clients)
                        runs[name][clients].append(figures)
                        print(f"round {round_} {name:9} c={clients:<4} {figures['rps']:7.0f} req/s"
                              f"  p50 {figures['p50_us'] / 1000:7.1f} ms  p99 "
                              f"{figures['p99_us'] / 1000:7.1f} ms  accept queue max {max(queued, default=0):3}"
                              f"  (load {os.getloadavg()[0]:.1f})"
                              f"{'  ERRORS ' + str(figures['errors']) if figures['errors'] else ''}",
                              flush=True)
    print(f"\n{opts.kind}, {opts.endpoint}, {opts.rounds} rounds (medians):")
    for name in builds:
        cells = runs[name]
        line = f"  {name:9} " + "  ".join(
            f"c={c}: {statistics.median(f['rps'] for f in cells[c]):.0f} req/s" for c in levels)
        ratios = [f"c{c}/c{levels[0]} {statistics.median(a['rps'] / b['rps'] for a, b in zip(cells[c], cells[levels[0]])):.2f}"
                  for c in levels[1:]]
        print(f"{line} | throughput ratio {', '.join(ratios)}")
        # The tail: p99 and p99 ÷ p50 per level, and how p99 grew against the queue (c ÷ c0).
        tails = []
        for c in levels:
            p50 = statistics.median(f["p50_us"] for f in cells[c]) / 1000
            p99 = statistics.median(f["p99_us"] for f in cells[c]) / 1000
            p99_0 = statistics.median(f["p99_us"] for f in cells[levels[0]]) / 1000
            growth = f", grew {p99 / p99_0:.1f}x for {c / levels[0]:g}x the clients" if c != levels[0] else ""
            tails.append(f"c={c}: p99 {p99:.0f} ms ({p99 / p50:.1f}x p50{growth})")
        print(f"  {'':9} " + "; ".join(tails))


if __name__ == "__main__":
    main()
