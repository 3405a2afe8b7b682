#!/usr/bin/env python3
"""CRM delivery and event stream benchmark (issue 11). Prints a table, writes
bench/results/crm.json.

    .venv/bin/python bench/crm_bench.py            # PostgreSQL when 127.0.0.1:5432 answers
    .venv/bin/python bench/crm_bench.py --quick    # smaller counts
    .venv/bin/python bench/crm_bench.py --db sqlite

All on 127.0.0.1, the server as deployed: `oml-server run --no-engine` (ARI off: no Asterisk),
its delivery greenlets on, a throw-away database. The call events are generated WITHOUT
Asterisk: this process writes call state changes through `call_state` (the engine's own
writes, one transaction each, with their outbox events) at the rate of N concurrent calls
(each call: 6 events spread over --call-seconds). The CRMs are a separate process
(asyncio, keep-alive) that logs when each request arrived.

Figures:
1. event → CRM received latency (p50/p99) with --calls-concurrent calls in flight, one
   webhook taking every event (event time = the outbox row's created_at, same clock);
2. events delivered per second to one fast CRM (a burst of --burst events already in the
   outbox, drained);
3. API latency (sequential asterisk_login/logout, each writing an agent.status event) with no
   webhook, with a healthy CRM and with a dead CRM (accepts connections, never answers: every
   delivery waits for its timeout) — the dead/no-webhook ratio of medians must be <= 1.1;
4. --clients event stream clients connected at once: server memory per client, the time for
   one event to reach all of them, and the server's CPU while they sit idle (the cost of the
   200 ms outbox poll; LISTEN/NOTIFY against the poll: bench/stream_wakeup_bench.py).
Every process it starts it stops by PID.
"""
import argparse
import json
import os
import resource
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)
import api_bench as ab  # noqa: E402  (process helpers shared with the API benchmark)

RESULTS = os.path.join(HERE, "results")
ADMIN, AGENT = ("crm-admin", "crm-admin-pass-1"), ("crm-agent", "crm-agent-pass-1")

CRM_SERVER = r'''
import asyncio, json, sys, time
mode, port, out = sys.argv[1], int(sys.argv[2]), open(sys.argv[3], "a", buffering=1)
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = await reader.readexactly(length) if length else b""
            if mode == "dead":
                await asyncio.sleep(3600)
            now = time.time()
            try:
                event = json.loads(body)["id"]
            except Exception:
                event = "-"
            out.write(f"{now:.6f} {event}\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()
asyncio.run(main())
'''


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else None


class Crm:
    def __init__(self, mode, workdir):
        self.port = ab.free_port()
        self.path = os.path.join(workdir, f"crm-{mode}-{self.port}.log")
        self.proc = subprocess.Popen([sys.executable, "-c", CRM_SERVER, mode, str(self.port), self.path])
        time.sleep(0.5)
        self.url = f"http://127.0.0.1:{self.port}/hook"

    def received(self):
        try:
            with open(self.path) as handle:
                return [(float(a), b) for a, b in (line.split() for line in handle if line.strip())]
        except FileNotFoundError:
            return []

    def stop(self):
        ab.stop(self.proc)


def http(port, method, path, body=None, token=None):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {token}"} if token else {})})
    with urllib.request.urlopen(request, timeout=30) as answer:
        text = answer.read()
        return json.loads(text) if text else None


def login(port, who):
    return http(port, "POST", "/api/v1/login/", {"username": who[0], "password": who[1]})["token"]


class Bench:
    def __init__(self, opts, db_url, workdir):
        self.opts, self.db_url, self.workdir = opts, db_url, workdir
        from oml_server import create_app
        from oml_server.config import normalize_database_url
        ab.cli(db_url, "db", "upgrade")
        ab.cli(db_url, "create-user", ADMIN[0], "--password", ADMIN[1], "--role", "Administrador")
        ab.cli(db_url, "create-user", AGENT[0], "--password", AGENT[1], "--role", "Agente")
        self.app = create_app({"SQLALCHEMY_DATABASE_URI": normalize_database_url(db_url),
                               "ARI_ENABLED": False, "TESTING": True, **ab._SECRETS})

    def sql(self, statement, **params):
        from oml_server.extensions import db
        with self.app.app_context():
            result = db.session.execute(db.text(statement), params)
            rows = result.all() if result.returns_rows else None
            db.session.commit()
            return rows

    # -- 1. latency with N concurrent calls -----------------------------------------------
    def concurrent_calls(self, port, crm):
        from oml_server.extensions import db
        from oml_server.services import call_state
        opts = self.opts
        steps = ("agent_ringing", "agent_answered", "contact_ringing", "bridged")
        gap = opts.call_seconds / 5
        first_id = (self.sql("SELECT COALESCE(MAX(id), 0) FROM events")[0][0])
        started, in_flight = 0, []
        begin = time.monotonic()
        with self.app.app_context():
            while started < opts.calls or in_flight:
                now = time.monotonic()
                while started < opts.calls and len(in_flight) < opts.calls_concurrent:
                    call_id = uuid.uuid4().hex
                    call_state.create(call_id, "click_to_call", number="3515550000")
                    # Spread the starts so the 100 calls are not in lockstep.
                    in_flight.append([call_id, 0, now + gap * (started % opts.calls_concurrent)
                                      / opts.calls_concurrent])
                    started += 1
                due = [c for c in in_flight if c[2] <= now]
                for call in due:
                    if call[1] < len(steps):
                        call_state.advance(call[0], steps[call[1]])
                        call[1] += 1
                        call[2] = now + gap
                    else:
                        call_state.finish(call[0], "ended", "contact hung up")
                        in_flight.remove(call)
                db.session.remove()
                time.sleep(0.002)
        written = time.monotonic() - begin
        rows = self.sql("SELECT id, created_at FROM events WHERE id > :f", f=first_id)
        created = {str(r[0]): _epoch(r[1]) for r in rows}
        wait_for(lambda: len({e for _, e in crm.received()} & created.keys()) >= len(created), 120,
                 "every call event at the CRM")
        latencies = [(t - created[e]) * 1000 for t, e in crm.received() if e in created]
        return {"calls": opts.calls, "concurrent": opts.calls_concurrent,
                "events": len(created), "events_per_s_written": round(len(created) / written, 1),
                "p50_ms": round(percentile(latencies, 50), 1),
                "p99_ms": round(percentile(latencies, 99), 1),
                "max_ms": round(max(latencies), 1)}

    # -- 2. throughput --------------------------------------------------------------------
    def burst(self, crm):
        from oml_server.extensions import db
        from oml_server.services import outbox
        before = len(crm.received())
        with self.app.app_context():
            for i in range(self.opts.burst):
                # 5 events per call: a call's events are delivered in order, calls in parallel
                outbox.record("call.bridged", call_id=f"burst{i // 5:07d}", state="bridged")
            db.session.commit()
        t0 = time.time()
        wait_for(lambda: len(crm.received()) - before >= self.opts.burst, 300, "the burst delivered")
        last = max(t for t, _ in crm.received()[before:])
        return {"events": self.opts.burst, "seconds": round(last - t0, 2),
                "events_per_s": round(self.opts.burst / (last - t0), 1)}

    # -- 3. API latency beside a dead CRM -------------------------------------------------
    def api_latency(self, port, token):
        samples = []
        for i in range(self.opts.requests):
            t0 = time.perf_counter()
            http(port, "POST", "/api/v1/asterisk_login/" if i % 2 == 0 else "/api/v1/asterisk_logout/",
                 {}, token)
            samples.append((time.perf_counter() - t0) * 1000)
        return {"requests": len(samples), "p50_ms": round(statistics.median(samples), 2),
                "p99_ms": round(percentile(samples, 99), 2)}

    # -- 4. stream clients ----------------------------------------------------------------
    def stream_clients(self, proc, port, admin_token, agent_token):
        base_rss = ab.rss_kib(proc.pid)
        request = (f"GET /api/v1/events/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   f"Authorization: Bearer {admin_token}\r\nAccept: text/event-stream\r\n\r\n").encode()
        sockets = []
        for _ in range(self.opts.clients):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(request)
            sockets.append(sock)
        buffers = {s.fileno(): b"" for s in sockets}
        by_fd = {s.fileno(): s for s in sockets}

        def read_until(marker, timeout):
            waiting = {fd for fd, data in buffers.items() if marker not in data}
            poller = select.poll()
            for fd in waiting:
                poller.register(fd, select.POLLIN)
            deadline = time.monotonic() + timeout
            while waiting and time.monotonic() < deadline:
                for fd, _ in poller.poll(100):
                    buffers[fd] += by_fd[fd].recv(65536)
                    if marker in buffers[fd]:
                        waiting.discard(fd)
                        poller.unregister(fd)
            return len(waiting)

        missing = read_until(b"retry:", 60)
        if missing:
            import glob
            for path in glob.glob(os.path.join(self.workdir, "server-*.log")):
                text = open(path, errors="replace").read()
                at = text.find("Traceback")
                ab.log(text[at:at + 6000] if at >= 0 else text[-3000:])
            sample = next(fd for fd, data in buffers.items() if b"retry:" not in data)
            ab.log(f"{missing} streams without data; one got: {buffers[sample][:300]!r}")
        time.sleep(1)
        rss = ab.rss_kib(proc.pid)
        cpu0, wall0 = _cpu_seconds(proc.pid), time.monotonic()
        time.sleep(10)
        idle_cpu = (_cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - wall0) * 100
        for fd in buffers:
            buffers[fd] = b""
        t0 = time.monotonic()
        http(port, "POST", "/api/v1/asterisk_login/", {}, agent_token)
        late = read_until(b"agent.status", 30)
        fan_out_ms = (time.monotonic() - t0) * 1000
        for sock in sockets:
            sock.close()
        return {"clients": self.opts.clients, "not_connected": missing,
                "rss_base_mib": round(base_rss / 1024, 1), "rss_mib": round(rss / 1024, 1),
                "kib_per_client": round((rss - base_rss) / max(1, self.opts.clients), 1),
                "idle_cpu_percent": round(idle_cpu, 2),
                "one_event_to_all_ms": round(fan_out_ms, 1), "did_not_get_it": late}


def _cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _epoch(moment):
    from datetime import timezone
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def wait_for(check, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def run(opts, backend):
    with tempfile.TemporaryDirectory(prefix="crm-bench-") as workdir, \
            ab.throwaway_database(backend, workdir, "crm") as db_url:
        bench = Bench(opts, db_url, workdir)
        fast, dead = Crm("fast", workdir), Crm("dead", workdir)
        results = {"database": backend}
        try:
            with ab.running_server("gevent", db_url, workdir) as (proc, port):
                admin, agent = login(port, ADMIN), login(port, AGENT)
                ab.log("API latency, no webhook …")
                results["api_no_webhook"] = bench.api_latency(port, agent)
                hook = http(port, "POST", "/api/v1/webhooks/", {"url": dead.url, "events": "*"}, admin)
                ab.log("API latency, dead CRM …")
                results["api_dead_crm"] = bench.api_latency(port, agent)
                results["api_dead_over_none_p50"] = round(
                    results["api_dead_crm"]["p50_ms"] / results["api_no_webhook"]["p50_ms"], 3)
                # Stored requests keep their url: the dead CRM's backlog goes, not redirected.
                bench.sql("DELETE FROM deliveries")
                http(port, "PUT", f"/api/v1/webhooks/{hook['id']}/", {"url": fast.url, "events": "*"}, admin)
                ab.log("API latency, healthy CRM …")
                results["api_healthy_crm"] = bench.api_latency(port, agent)
                try:
                    wait_for(lambda: bench.sql("SELECT count(*) FROM deliveries WHERE state <> 'delivered'")[0][0] == 0,
                             300, "the healthy CRM's backlog drained")
                except RuntimeError:
                    ab.log(bench.sql("SELECT state, attempts, last_error, url FROM deliveries WHERE state <> 'delivered' LIMIT 5"))
                    raise
                ab.log(f"{opts.calls} calls, {opts.calls_concurrent} at once …")
                results["latency"] = bench.concurrent_calls(port, fast)
                ab.log(f"burst of {opts.burst} events …")
                results["throughput"] = bench.burst(fast)
                ab.log(f"{opts.clients} stream clients …")
                results["stream"] = bench.stream_clients(proc, port, admin, agent)
        finally:
            fast.stop()
            dead.stop()
        return results


def table(all_results):
    for r in all_results:
        lat, thr, st = r["latency"], r["throughput"], r["stream"]
        print(f"\n== {r['database']} ==")
        print(f"event -> CRM received, {lat['concurrent']} concurrent calls "
              f"({lat['events']} events, {lat['events_per_s_written']}/s written): "
              f"p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms")
        print(f"delivered to one fast CRM: {thr['events_per_s']} events/s "
              f"({thr['events']} in {thr['seconds']} s)")
        for key, label in (("api_no_webhook", "no webhook"), ("api_healthy_crm", "healthy CRM"),
                           ("api_dead_crm", "dead CRM")):
            a = r[key]
            print(f"API asterisk_login/logout, {label:12s}: p50 {a['p50_ms']} ms, p99 {a['p99_ms']} ms")
        print(f"  dead CRM / no webhook (p50): {r['api_dead_over_none_p50']} (target <= 1.1)")
        print(f"stream: {st['clients']} clients ({st['not_connected']} failed), "
              f"{st['kib_per_client']} KiB per client (RSS {st['rss_base_mib']} -> {st['rss_mib']} MiB), "
              f"one event to all in {st['one_event_to_all_ms']} ms ({st['did_not_get_it']} missed), "
              f"idle CPU {st['idle_cpu_percent']} %")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--db", choices=("postgresql", "sqlite", "both"), default=None)
    parser.add_argument("--calls", type=int, default=None)
    parser.add_argument("--calls-concurrent", type=int, default=100)
    parser.add_argument("--call-seconds", type=float, default=3.0)
    parser.add_argument("--burst", type=int, default=None)
    parser.add_argument("--requests", type=int, default=None)
    parser.add_argument("--clients", type=int, default=1000)
    opts = parser.parse_args()
    opts.calls = opts.calls or (200 if opts.quick else 1000)
    opts.burst = opts.burst or (1000 if opts.quick else 5000)
    opts.requests = opts.requests or (200 if opts.quick else 1000)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max(soft, opts.clients * 2 + 256)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard) if hard > 0 else wanted, hard))
    backends = {"postgresql": ["postgresql"], "sqlite": ["sqlite"], "both": ["postgresql", "sqlite"],
                None: ["postgresql"] if ab.pg_reachable() else ["sqlite"]}[opts.db]
    results = [run(opts, backend) for backend in backends]
    table(results)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "crm.json"), "w") as handle:
        json.dump(results, handle, indent=2)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    main()
