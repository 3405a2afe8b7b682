#!/usr/bin/env python
"""After-the-bridge benchmark (issue 9): a blind transfer and a hold through the real server,
beside the same operations over bare ARI in the same run, at C concurrent calls.

One run starts its own lab Asterisk, a SIPp "PSTN" and one SIPp UAS answering for every agent
(as bench/calls_bench.py, whose helpers it reuses), a database, the real server
(`oml-server run`) and 2·C agents: C place calls, C are transfer targets.

For each level C, --repeats times, alternately:
  engine: C click-to-calls are bridged (not measured), then at once for every call
          hold:     POST /api/v1/call/hold/ {"action": "hold"} sent → the call's `call.held`
                    event (written when the caller is in the holding bridge whose music is
                    already playing: music heard); unhold (not measured)
          transfer: POST /api/v1/transfer/blind-agent/ to its own target agent sent → the
                    call's `call.transferred` event (written when the target answered, joined
                    the call's bridge and the caller came back from the music)
          then the targets hang up (hangupCall).
  bare:   the same C calls over bare ARI (bench/bare_ari_click_to_call.py), then
          hold:     holding bridge + music on hold + caller moved into it (requests returned)
          transfer: caller parked as above, agent leg hung up, target originated; on its
                    StasisStart target added to the call's bridge and caller moved back
                    (requests returned).
Engine times are server event times minus the client's send time (same host, same clock).
Every figure is the median over the repeats; ratio = engine / bare of the same run.

    .venv/bin/python bench/transfer_bench.py               # levels 1,50; 3 repeats
    .venv/bin/python bench/transfer_bench.py --quick       # levels 1,5; 1 repeat
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from datetime import datetime  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import calls_bench as cb  # noqa: E402  (sets the import paths of the lab and the server)
import bare_ari_click_to_call as bare  # noqa: E402
import lab as labmod  # noqa: E402
from conftest import Server, free_tcp_port  # noqa: E402


def _ms(values):
    return {"p50_ms": round(cb.percentile(values, 50), 1) if values else None,
            "p95_ms": round(cb.percentile(values, 95), 1) if values else None}


def _record(agent, call_id):
    """The call's record (GET /api/v1/calls/<id>/), as the agent sees it."""
    return agent.http.get(f"{agent.server.url}/api/v1/calls/{call_id}/", headers=agent.headers,
                          timeout=30).json()


def _wait_state(agent, call_id, states, timeout):
    """The call's record once in one of `states` (or the last one read), every 0.1 s."""
    deadline = time.monotonic() + timeout
    record = None
    while time.monotonic() < deadline:
        record = _record(agent, call_id)
        if record.get("state") in states:
            return record
        gevent.sleep(0.1)
    return record


def _wall(iso):
    return datetime.fromisoformat(iso).timestamp()


def _events(agent, call_id, type_, first=0.2, timeout=30):
    """The call's `type_` event, read after `first` s and then every 0.5 s: the time is the
    server's, so reading late changes nothing, and polling early would load the server under
    test (50 clients polling every 200 ms doubled the engine's figures)."""
    deadline = time.monotonic() + timeout
    gevent.sleep(first)
    while time.monotonic() < deadline:
        record = _record(agent, call_id)
        found = [e for e in record.get("events", []) if e["type"] == type_]
        if found:
            return found[-1]
        gevent.sleep(0.5)
    return None


class BridgesBarrier:
    """Holds every call of a run until Asterisk shows `n` bridges with two channels (one GET
    /bridges every 50 ms). Call setup is not what this bench measures (calls_bench does, with
    a barrier that polls nothing), so polling here costs the measured operations nothing."""

    def __init__(self, ari, n):
        self.ari, self.n = ari, n
        self.event = gevent.event.Event()
        self.watcher = gevent.spawn(self._watch)

    def _watch(self):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            full = [b for b in self.ari.bridges() if len(b.get("channels", ())) == 2]
            if len(full) >= self.n:
                break
            gevent.sleep(0.05)
        self.event.set()

    def wait(self, timeout):
        self.event.wait(timeout)

    def stop(self):
        self.watcher.kill(block=False)


def _post(agent, path, body):
    r = agent.http.post(agent.server.url + path, headers=agent.headers, json=body, timeout=30)
    return r.status_code, r.json()


def run_engine(ctx, level):
    callers, targets = ctx["callers"][:level], ctx["targets"][:level]
    lab = ctx["lab"]
    barrier = BridgesBarrier(lab.ari, level)
    ids, failures = {}, []

    def place(i, agent):
        r = agent.http.post(agent.server.url + "/api/v1/makeCall/", headers=agent.headers,
                            json={"idCampaign": agent.campaign_id, "idAgent": agent.agent_id,
                                  "phone": f"557{ctx['seq']:03d}{i:04d}"}, timeout=30).json()
        if r.get("status") != "OK":
            failures.append(f"makeCall {r}")
            return
        ids[i] = r["callId"]
    gevent.joinall([gevent.spawn(place, i, a) for i, a in enumerate(callers)])
    barrier.wait(60)
    barrier.stop()
    for i, call_id in ids.items():  # both legs are in the bridge; the row follows at once
        if (_wait_state(callers[i], call_id, ("bridged", "ended", "failed"), 10) or {}).get(
                "state") != "bridged":
            failures.append(f"{call_id}: not bridged")
    hold_ms, transfer_ms = [], []

    def hold(i):
        agent, call_id = callers[i], ids[i]
        sent = time.time()
        status, body = _post(agent, "/api/v1/call/hold/", {"call_id": call_id, "action": "hold"})
        if status != 202 or body.get("subscribers") != 1:
            failures.append(f"hold {status} {body}")
            return
        event = _events(agent, call_id, "call.held", first=0.05 * level)
        if event is None:
            failures.append(f"{call_id}: never held")
            return
        hold_ms.append((_wall(event["time"]) - sent) * 1000)
        _post(agent, "/api/v1/call/hold/", {"call_id": call_id, "action": "unhold"})
        if _events(agent, call_id, "call.unheld", first=0.05 * level) is None:
            failures.append(f"{call_id}: never unheld")

    def transfer(i):
        agent, call_id = callers[i], ids[i]
        sent = time.time()
        status, body = _post(agent, "/api/v1/transfer/blind-agent/",
                             {"call_id": call_id, "target_agent_id": targets[i].agent_id})
        if status != 202:
            failures.append(f"transfer {status} {body}")
            return
        event = _events(agent, call_id, "call.transferred", first=0.05 * level)
        if event is None:
            failures.append(f"{call_id}: never transferred")
            return
        transfer_ms.append((_wall(event["time"]) - sent) * 1000)

    live = [i for i in range(level) if i in ids]
    cpu0 = cb.server_cpu(ctx["server"])
    gevent.joinall([gevent.spawn(hold, i) for i in live])
    gevent.joinall([gevent.spawn(transfer, i) for i in live])
    cpu = cb.server_cpu(ctx["server"]) - cpu0
    for i in live:
        r = targets[i].http.post(targets[i].server.url + "/api/v1/hangupCall/",
                                 headers=targets[i].headers, timeout=30).json()
        if r != {"status": "OK"}:
            failures.append(f"target hangupCall {r}")
    ctx["seq"] += 1
    left = cb.wait_empty(lab)
    return {"hold": _ms(hold_ms), "transfer": _ms(transfer_ms), "failures": len(failures),
            "failure_samples": failures[:3], "cpu_ms_per_call": round(cpu * 1000 / level, 2),
            "leftovers": left, "non_final_rows": cb.live_rows(ctx["database_url"])}


class BareCall(bare.Call):
    def hold(self):
        t0 = time.monotonic()
        self.hold_bridge = f"{self.bridge_id}-h"
        self.ari.bridge_create(self.hold_bridge, type="holding")
        self.ari.bridge_start_moh(self.hold_bridge)
        self.ari.bridge_add_channel(self.hold_bridge, self.contact_id)
        took = time.monotonic() - t0
        self.ari.bridge_add_channel(self.bridge_id, self.contact_id)  # unhold
        return took

    def transfer(self, ext):
        t0 = time.monotonic()
        self.ari.bridge_add_channel(self.hold_bridge, self.contact_id)
        self.ari.hangup(self.agent_id)
        self.target_id = f"{uuid.uuid4().hex[:16]}-t"
        self.dispatcher.route(self.target_id, self.q)
        self.ari.originate(f"PJSIP/{ext}", appArgs="target", channelId=self.target_id,
                           timeout=15)
        self.wait("StasisStart", self.target_id, 17, strict=False)
        self.ari.bridge_add_channel(self.bridge_id, self.target_id)
        self.ari.bridge_add_channel(self.bridge_id, self.contact_id)
        return time.monotonic() - t0

    def teardown(self):
        problems = []
        for ch in (getattr(self, "target_id", None),):
            if ch:
                try:
                    self.ari.hangup(ch)
                except bare.AriError:
                    pass
        if getattr(self, "hold_bridge", None):
            try:
                self.ari.bridge_destroy(self.hold_bridge)
            except bare.AriError:
                pass
        problems += super().teardown()
        if getattr(self, "target_id", None):
            self.dispatcher.unroute(self.target_id)
        return problems


def run_bare(ctx, level):
    callers, targets = ctx["callers"][:level], ctx["targets"][:level]
    hold_ms, transfer_ms, failures = [], [], []
    me = os.getpid()

    def one(i):
        call = BareCall(ctx["bare_ari"], ctx["bare_dispatcher"], callers[i].ext,
                        f"558{ctx['seq']:03d}{i:04d}", "ringtone", 15)
        try:
            call.setup()
            barrier.wait(60)
            hold_ms.append(call.hold() * 1000)
            done_hold.append(i)
            while len(done_hold) < level:
                gevent.sleep(0.02)
            transfer_ms.append(call.transfer(targets[i].ext) * 1000)
        except (bare.CallFailed, bare.AriError) as exc:
            failures.append(str(exc))
        finally:
            failures.extend(call.teardown())

    barrier = BridgesBarrier(ctx["lab"].ari, level)
    done_hold = []
    cpu0 = cb.cpu_seconds(me)
    gevent.joinall([gevent.spawn(one, i) for i in range(level)])
    barrier.stop()
    cpu = cb.cpu_seconds(me) - cpu0
    ctx["seq"] += 1
    left = cb.wait_empty(ctx["lab"])
    return {"hold": _ms(hold_ms), "transfer": _ms(transfer_ms), "failures": len(failures),
            "failure_samples": failures[:3], "cpu_ms_per_call": round(cpu * 1000 / level, 2),
            "leftovers": left}


def main():
    # A SIGTERM (e.g. `timeout`) still runs the cleanup below: no lab, server or SIPp left.
    import signal
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="levels 1,5, one repeat")
    ap.add_argument("--levels", default=None)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--database", choices=("auto", "postgresql", "sqlite"), default="auto")
    ap.add_argument("--profile", default=None, metavar="FILE",
                    help="py-spy the server during the whole run (collapsed stacks to FILE)")
    ap.add_argument("--out", default=cb.RESULTS)
    args = ap.parse_args()
    levels = [int(x) for x in (args.levels or ("1,5" if args.quick else "1,50")).split(",")]
    repeats = args.repeats or (1 if args.quick else 3)
    if labmod.missing_programs():
        print("lab not installed: asterisk-config/lab.sh install")
        return 2
    workdir = tempfile.mkdtemp(prefix="oml-transfer-bench-")
    n = max(levels)
    lab = labmod.Lab(ari_port=free_tcp_port(), sip_port=labmod.free_udp_port(),
                     trunk_port=labmod.free_udp_port(), app=f"oml-tbench-{os.getpid()}",
                     rtp_start=40000, rtp_end=49999)
    database_url, db_kind, drop_db = cb.pick_database(workdir, args.database)
    print(f"database: {db_kind}")
    trunk = phone = server = stream = None
    try:
        lab.start()
        trunk = labmod.SippPeer("trunk_uas.xml", port=lab.trunk_port).start()
        phone = labmod.SippPeer("agent_answer.xml").start()
        campaign_id, agents = cb.provision(database_url, 2 * n)
        server = Server(lab, database_url, workdir)
        cb.production_settings(server.env, agents=2 * n)
        server.start()
        people = [cb.EngineAgent(server, u, aid, ext, campaign_id) for u, aid, ext in agents]
        lab.register([a.credentials() for a in people], phone.port, parallel=20)
        for a in people:
            lab.wait_endpoint_state(a.ext, "online", timeout=10)
        bare_app = lab.app + "-bare"
        stream = labmod.AriEventStream(lab.ari_url, lab.user, lab.password, bare_app).connect()
        dispatcher = bare.Dispatcher(stream)
        gevent.spawn(dispatcher.run)
        ctx = {"callers": people[:n], "targets": people[n:], "lab": lab, "server": server,
               "database_url": database_url, "seq": 0,
               "bare_ari": labmod.AriClient(lab.ari_url, lab.user, lab.password, bare_app,
                                            pool_size=2 * n + 4),
               "bare_dispatcher": dispatcher}
        run_engine(ctx, 1)  # warm-up, not measured
        run_bare(ctx, 1)
        if args.profile:
            import subprocess
            profiler = subprocess.Popen(
                [os.path.join(cb.REPO, ".venv", "bin", "py-spy"), "record", "--pid",
                 str(cb.server_pids(server)[-1]), "--format", "raw", "--rate", "200",
                 "--nonblocking", "-o", args.profile],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            gevent.sleep(1)
        runs = {}
        for level in levels:
            for r in range(repeats):
                for driver, fn in (("engine", run_engine), ("bare", run_bare)):
                    res = fn(ctx, level)
                    runs.setdefault(level, {}).setdefault(driver, []).append(res)
                    print(f"C={level:<3} {driver:6} run {r + 1}: transfer p50 "
                          f"{res['transfer']['p50_ms']} ms, hold p50 {res['hold']['p50_ms']} ms, "
                          f"{res['failures']} failed {res['failure_samples']}, leftovers "
                          f"{res['leftovers']}", flush=True)
        if args.profile:
            profiler.send_signal(2)  # SIGINT: py-spy writes its file
            profiler.wait(timeout=30)
        table = []
        for level, by in runs.items():
            row = {"level": level}
            for op in ("transfer", "hold"):
                for driver in ("engine", "bare"):
                    values = [x[op]["p50_ms"] for x in by[driver] if x[op]["p50_ms"] is not None]
                    row[f"{op}_{driver}_p50_ms"] = (round(statistics.median(values), 1)
                                                    if values else None)
                e, b = row[f"{op}_engine_p50_ms"], row[f"{op}_bare_p50_ms"]
                row[f"{op}_ratio"] = round(e / b, 2) if e and b else None
            row["failures"] = sum(x["failures"] for d in by.values() for x in d)
            table.append(row)
        print(f"\n{'C':>4} {'transfer engine':>16} {'bare':>8} {'ratio':>6} "
              f"{'hold engine':>12} {'bare':>8} {'ratio':>6} {'failures':>9}")
        for row in table:
            print(f"{row['level']:>4} {row['transfer_engine_p50_ms']!s:>16} "
                  f"{row['transfer_bare_p50_ms']!s:>8} {row['transfer_ratio']!s:>6} "
                  f"{row['hold_engine_p50_ms']!s:>12} {row['hold_bare_p50_ms']!s:>8} "
                  f"{row['hold_ratio']!s:>6} {row['failures']:>9}")
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "transfer.json"), "w") as f:
            json.dump({"database": db_kind, "levels": levels, "repeats": repeats,
                       "table": table, "runs": {str(k): v for k, v in runs.items()}}, f, indent=1)
        return 1 if any(row["failures"] for row in table) else 0
    finally:
        if stream is not None:
            stream.close()
        for peer in (phone, trunk):
            if peer is not None:
                peer.stop()
        if server is not None:
            server.stop()
        lab.stop()
        drop_db()


if __name__ == "__main__":
    sys.exit(main())
