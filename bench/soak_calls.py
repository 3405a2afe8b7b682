"""Soak: many click-to-calls in a row through the real server and the lab Asterisk, then count
what is left behind: channels, bridges, `calls` rows not in a final state, and the server's
memory (RSS) at the start, after warm-up and at the end.

    .venv/bin/python bench/soak_calls.py [--calls 1000] [--workers 4]

(`make soak`). Each agent places its calls one after another: makeCall → bridged (both legs in
the mixing bridge) → hangupCall → ended; agents run side by side. A private lab Asterisk, a
SIPp "PSTN" and a SIPp agent phone (both streaming RTP) and `oml-server run` are started on
free ports and stopped by PID. tests/integration/test_faults.py runs a 100-call version.
Exit status 1 when a call failed or anything was left behind.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
INTEGRATION = os.path.join(os.path.dirname(HERE), "tests", "integration")
if INTEGRATION not in sys.path:
    sys.path.insert(0, INTEGRATION)

from lab import sipp_register, wait_until  # noqa: E402

FINAL = ("ended", "failed")


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class CallAgent:
    """An agent as its CRM sees it: a token, its ids, SIP credentials from the API."""

    def __init__(self, url: str, username: str, password: str, agent_id: int, ext: str):
        self.url, self.agent_id, self.ext, self.name = url, agent_id, ext, username
        self.http = requests.Session()
        self.http.trust_env = False
        r = self.http.post(url + "/api/v1/login", json={"username": username,
                                                        "password": password}, timeout=10)
        r.raise_for_status()
        self.http.headers["Authorization"] = "Bearer " + r.json()["token"]

    def credentials(self) -> tuple[str, str]:
        body = self.http.get(self.url + "/api/v1/sip/credentials/agent/", timeout=10).json()
        assert body["status"] == "OK", body
        return self.ext, body["sip_user"], body["sip_password"]

    def make_call(self, campaign_id: int, phone: str) -> dict:
        return self.http.post(self.url + "/api/v1/makeCall/", timeout=10, json={
            "idCampaign": campaign_id, "idAgent": self.agent_id, "phone": phone}).json()

    def hangup(self) -> dict:
        return self.http.post(self.url + "/api/v1/hangupCall/", timeout=10).json()

    def call(self, call_id: str) -> dict:
        return self.http.get(f"{self.url}/api/v1/calls/{call_id}/", timeout=10).json()

    def wait_call(self, call_id: str, states, timeout: float, poll: float = 0.01) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            call = self.call(call_id)
            if call.get("state") in states or time.monotonic() > deadline:
                return call
            time.sleep(poll)


def register_all(lab, agents, phone_port: int) -> None:
    creds = [a.credentials() for a in agents]
    sipp_register(creds, lab.sip_port, phone_port)
    for a in agents:
        lab.wait_endpoint_state(a.ext, "online", 5)


def one_call(agent: CallAgent, campaign_id: int, number: str) -> dict:
    """makeCall → bridged → hangupCall → ended; what happened, and how long it took."""
    t0 = time.monotonic()
    body = agent.make_call(campaign_id, number)
    if body.get("status") != "OK":
        return {"ok": False, "why": f"makeCall: {body}"}
    call = agent.wait_call(body["callId"], ("bridged",) + FINAL, 10)
    setup = time.monotonic() - t0
    if call.get("state") != "bridged":
        return {"ok": False, "why": f"not bridged: {call.get('state')} {call.get('reason')}"}
    hung = agent.hangup()
    call = agent.wait_call(body["callId"], FINAL, 10)
    if hung != {"status": "OK"} or (call.get("state"), call.get("reason")) != \
            ("ended", "hangup_requested"):
        return {"ok": False, "why": f"hangup: {hung} {call.get('state')} {call.get('reason')}"}
    return {"ok": True, "setup": setup, "total": time.monotonic() - t0}


def soak(agents, campaign_id: int, calls: int, server_pid: int, workers: int = 4,
         warmup: int = 0) -> dict:
    """`calls` calls, `workers` at a time; each takes a free agent, places one call, hangs it
    up and gives the agent back (so every agent's calls come one after another)."""
    import queue
    free = queue.Queue()
    for a in agents:
        free.put(a)
    results, lock = [], threading.Lock()
    counter = iter(range(calls))
    rss = {"start": rss_kb(server_pid)}

    def work():
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                return
            agent = free.get()
            try:
                result = one_call(agent, campaign_id, f"55{n:08d}")
            except Exception as exc:  # a broken request counts as a failed call
                result = {"ok": False, "why": repr(exc)[:300]}
            finally:
                free.put(agent)
            with lock:
                results.append(result)
                if len(results) == warmup:
                    rss["warm"] = rss_kb(server_pid)

    t0 = time.monotonic()
    threads = [threading.Thread(target=work, daemon=True) for _ in range(min(workers, len(agents)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    rss["end"] = rss_kb(server_pid)
    setups = sorted(r["setup"] for r in results if r["ok"])
    failures = [r["why"] for r in results if not r["ok"]]
    return {
        "calls": len(results), "agents": len(agents), "workers": len(threads),
        "failures": len(failures), "failure_examples": failures[:5],
        "seconds": round(elapsed, 1),
        "calls_per_s": round(len(results) / elapsed, 1) if elapsed else 0,
        "setup_p50_ms": round(statistics.median(setups) * 1000) if setups else None,
        "setup_p95_ms": round(setups[int(len(setups) * 0.95) - 1] * 1000) if setups else None,
        "rss_kb": rss,
    }


def leftovers(lab, database_url: str, timeout: float = 5.0) -> dict:
    """Channels and bridges in Asterisk, `calls` rows not final (after a bounded wait)."""
    path = database_url[len("sqlite:///"):]

    def live_rows():
        with sqlite3.connect(path, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM calls WHERE state NOT IN ('ended', 'failed')"
                                ).fetchone()[0]
    try:
        wait_until(lambda: not lab.ari.channels() and not lab.ari.bridges() and not live_rows(),
                   timeout, "cleanup", interval=0.05)
    except TimeoutError:
        pass
    return {"channels": len(lab.ari.channels()), "bridges": len(lab.ari.bridges()),
            "non_final_rows": live_rows()}


def format_report(report: dict, left: dict) -> str:
    rss = report["rss_kb"]
    return (f"{report['calls']} calls ({report['workers']} at a time over {report['agents']} "
            f"agents, each agent's calls in a row) in "
            f"{report['seconds']} s ({report['calls_per_s']}/s): {report['failures']} failed; "
            f"setup p50 {report['setup_p50_ms']} ms p95 {report['setup_p95_ms']} ms; left: "
            f"{left['channels']} channels, {left['bridges']} bridges, {left['non_final_rows']} "
            f"non-final rows; server RSS {rss['start'] // 1024} MB at start, "
            f"{rss.get('warm', 0) // 1024} MB after warm-up, {rss['end'] // 1024} MB at the end")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4, help="calls under way at once")
    args = parser.parse_args(argv)
    import conftest  # the integration fixtures' building blocks (Lab, Server, provisioning)
    from lab import Lab, SippPeer, free_udp_port, missing_programs

    if missing_programs():
        print(f"lab not installed ({', '.join(missing_programs())} missing): "
              "run `asterisk-config/lab.sh install` as root")
        return 2
    workdir = tempfile.mkdtemp(prefix="oml-soak-")
    port = conftest.free_tcp_port()
    lab = Lab(ari_port=port, sip_port=free_udp_port(), trunk_port=free_udp_port(),
              app=f"oml-soak-{os.getpid()}", rtp_start=30000 + (os.getpid() % 50) * 200,
              rtp_end=30000 + (os.getpid() % 50) * 200 + 199)
    peers, server = [], None
    try:
        lab.start()
        peers.append(SippPeer("trunk_uas.xml", port=lab.trunk_port).start())
        phone = SippPeer("agent_answer.xml").start()
        peers.append(phone)
        database_url = "sqlite:///" + os.path.join(workdir, "soak.sqlite3")
        world = conftest._provision(database_url)
        server = conftest.Server(lab, database_url, workdir)
        server.env["MAKECALL_MAX_PER_WINDOW"] = str(10 * args.calls)  # the soak is no abuse
        server.start()
        names = list(world.agents)[:8]  # not ivy: she is alone in an inbound campaign only
        agents = [CallAgent(server.url, n, conftest.PASSWORD, world.agents[n]["agent_id"],
                            world.agents[n]["ext"]) for n in names]
        register_all(lab, agents, phone.port)
        report = soak(agents, world.campaigns["manual"], args.calls, server.proc.pid,
                      workers=args.workers, warmup=max(1, args.calls // 10))
        left = leftovers(lab, database_url)
        print(format_report(report, left))
        print(json.dumps({**report, "left": left}))
        bad = report["failures"] or any(left.values())
        return 1 if bad else 0
    finally:
        if server is not None:
            server.stop()
        for p in peers:
            p.stop()
        lab.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
