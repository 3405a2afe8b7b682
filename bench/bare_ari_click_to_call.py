#!/usr/bin/env python
"""Baseline: N click-to-call flows over raw ARI under gevent (no DB, no HTTP, no engine).

Each flow: originate the agent leg into the app with our own channelId -> StasisStart (agent
answered) -> create a mixing bridge, add the agent, play tone:ring into it -> originate
PJSIP/<number>@trunk into the app -> on its StasisStart add it, stop the tone -> both legs
entered the bridge (the engine's flow; --flow picks another, see FLOWS).
Setup latency is measured from the originate request to both ChannelEnteredBridge events.
Then the call is held --hold seconds and torn down by the client (hang up both legs, destroy
the bridge), as the engine must do.

It starts its own private lab (asterisk-config/lab.sh, tests/integration/lab.py): one SIPp
UAS answering for all agents (REGISTERed with ephemeral-style credentials, contacts pointing at
it), one SIPp "PSTN" on the trunk port, both streaming G.711a.

    .venv/bin/python bench/bare_ari_click_to_call.py --calls 200 --concurrency 50 --rate 20

Events are dispatched by channel id into per-call queues (O(1) per event).
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

import gevent  # noqa: E402
import gevent.queue  # noqa: E402
import gevent.pool  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
sys.path.insert(0, REPO)

import lab as labmod  # noqa: E402
from ari_engine.ari_client import AriClient, AriError, AriEventStream, AriNotFound  # noqa: E402


# ringtone: the engine's flow (ari_engine/click_to_call.py): agent in the bridge, tone:ring
#   played into it, contact originated into the app and added on answer.
# originate: the same without the tone. early: channels/create + addChannel + dial (the agent
#   hears the trunk's early media; ~170 ms slower in Asterisk 16). dial-first: create + dial +
#   addChannel (as slow as early).
FLOWS = ("ringtone", "originate", "early", "dial-first")


class CallFailed(Exception):
    pass


class Dispatcher:
    """One reader of the app's websocket; routes each event to the queue of its channel."""

    def __init__(self, stream: AriEventStream):
        self.stream = stream
        self.routes: dict[str, gevent.queue.Queue] = {}
        self.unrouted = 0

    def route(self, channel_id: str, q: gevent.queue.Queue) -> None:
        self.routes[channel_id] = q

    def unroute(self, channel_id: str) -> None:
        self.routes.pop(channel_id, None)

    def run(self) -> None:
        for event in self.stream:
            channel = event.get("channel")
            q = self.routes.get(channel["id"]) if channel else None
            if q is not None:
                q.put(event)
            else:
                self.unrouted += 1


class Call:
    def __init__(self, ari: AriClient, dispatcher: Dispatcher, ext: str, number: str,
                 flow: str, ring_timeout: int):
        self.ari, self.dispatcher = ari, dispatcher
        self.ext, self.number = ext, number
        self.flow = flow
        self.ring_timeout = ring_timeout
        cid = uuid.uuid4().hex[:16]
        self.agent_id, self.contact_id, self.bridge_id = f"{cid}-a", f"{cid}-c", f"{cid}-b"
        self.q: gevent.queue.Queue = gevent.queue.Queue()
        self.seen: set[tuple[str, str]] = set()
        self.bridge_created = False

    def wait(self, event_type: str, channel_id: str, timeout: float,
             strict: bool = True) -> None:
        """Wait for (event_type, channel_id); in setup (`strict`) a destroyed leg fails the call."""
        deadline = time.monotonic() + timeout
        while (event_type, channel_id) not in self.seen:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CallFailed(f"timeout waiting {event_type} {channel_id}")
            try:
                event = self.q.get(timeout=remaining)
            except gevent.queue.Empty:
                continue
            ch = event["channel"]["id"]
            self.seen.add((event["type"], ch))
            if event["type"] == "ChannelStateChange":
                self.seen.add((f"State:{event['channel']['state']}", ch))
            if strict and event["type"] == "ChannelDestroyed" \
                    and (event_type, channel_id) not in self.seen:
                if event_type != "ChannelDestroyed" or ch != channel_id:
                    raise CallFailed(f"{ch} destroyed, cause {event.get('cause')} "
                                     f"{event.get('cause_txt')}")

    def setup(self) -> float:
        d = self.dispatcher
        d.route(self.agent_id, self.q)
        d.route(self.contact_id, self.q)
        t0 = time.monotonic()
        self.ari.originate(f"PJSIP/{self.ext}", appArgs=f"bench,{self.bridge_id}",
                           channelId=self.agent_id, callerId=self.number,
                           timeout=self.ring_timeout)
        self.wait("StasisStart", self.agent_id, self.ring_timeout + 2)
        self.ari.bridge_create(self.bridge_id, type="mixing")
        self.bridge_created = True
        self.ari.bridge_add_channel(self.bridge_id, self.agent_id)
        contact_ep = f"PJSIP/{self.number}@trunk"
        if self.flow == "early":
            self.ari.channel_create(contact_ep, appArgs="contact", channelId=self.contact_id)
            self.wait("StasisStart", self.contact_id, 5)
            self.ari.bridge_add_channel(self.bridge_id, self.contact_id)
            self.ari.dial(self.contact_id, timeout=self.ring_timeout)
            self.wait("State:Up", self.contact_id, self.ring_timeout + 2)
        elif self.flow == "dial-first":
            self.ari.channel_create(contact_ep, appArgs="contact", channelId=self.contact_id)
            self.wait("StasisStart", self.contact_id, 5)
            self.ari.dial(self.contact_id, timeout=self.ring_timeout)
            self.ari.bridge_add_channel(self.bridge_id, self.contact_id)
            self.wait("State:Up", self.contact_id, self.ring_timeout + 2)
        elif self.flow == "ringtone":
            playback = f"{self.bridge_id}-ring"
            self.ari.request("POST", f"/bridges/{self.bridge_id}/play/{playback}",
                             {"media": "tone:ring"})
            self.ari.originate(contact_ep, appArgs="contact", channelId=self.contact_id,
                               timeout=self.ring_timeout)
            self.wait("StasisStart", self.contact_id, self.ring_timeout + 2)
            self.ari.bridge_add_channel(self.bridge_id, self.contact_id)
            try:
                self.ari.request("DELETE", f"/playbacks/{playback}")
            except AriError:
                pass
        else:
            self.ari.originate(contact_ep, appArgs="contact", channelId=self.contact_id,
                               timeout=self.ring_timeout)
            self.wait("StasisStart", self.contact_id, self.ring_timeout + 2)
            self.ari.bridge_add_channel(self.bridge_id, self.contact_id)
        self.wait("ChannelEnteredBridge", self.agent_id, 5)
        self.wait("ChannelEnteredBridge", self.contact_id, 5)
        return time.monotonic() - t0

    def teardown(self) -> list[str]:
        """Hang up both legs, destroy the bridge (404 = already done). Returns problems."""
        problems = []
        for ch in (self.agent_id, self.contact_id):
            try:
                self.ari.hangup(ch)
            except AriNotFound:
                pass
            except AriError as exc:
                problems.append(f"hangup {ch}: {exc}")
        if self.bridge_created:
            try:
                self.ari.bridge_destroy(self.bridge_id)
            except AriNotFound:
                pass
            except AriError as exc:
                problems.append(f"destroy {self.bridge_id}: {exc}")
        try:
            for ch in (self.agent_id, self.contact_id):
                if ("StasisStart", ch) in self.seen:
                    self.wait("ChannelDestroyed", ch, 10, strict=False)
        except CallFailed as exc:
            problems.append(f"teardown: {exc}")
        finally:
            self.dispatcher.unroute(self.agent_id)
            self.dispatcher.unroute(self.contact_id)
        return problems


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(p / 100.0 * (len(values) - 1)))))
    return values[k]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=50, help="total calls")
    ap.add_argument("--concurrency", type=int, default=10, help="max calls at once (= agents)")
    ap.add_argument("--rate", type=float, default=10.0, help="call starts per second")
    ap.add_argument("--hold", type=float, default=1.0, help="seconds each call stays bridged")
    ap.add_argument("--flow", choices=FLOWS, default="ringtone",
                    help="how the contact leg is reached (see FLOWS)")
    ap.add_argument("--early-media", action="store_const", dest="flow", const="early",
                    help="same as --flow early")
    ap.add_argument("--ring-timeout", type=int, default=15)
    ap.add_argument("--ari-port", type=int, default=28088)
    ap.add_argument("--sip-port", type=int, default=25070)
    ap.add_argument("--trunk-port", type=int, default=25090)
    ap.add_argument("--json", action="store_true", help="print one JSON line as well")
    args = ap.parse_args()

    missing = labmod.missing_programs()
    if missing:
        print(f"lab not installed ({', '.join(missing)}): asterisk-config/lab.sh install")
        return 2

    app = "bench"
    lab = labmod.Lab(ari_port=args.ari_port, sip_port=args.sip_port,
                     trunk_port=args.trunk_port, app=app, rtp_start=50000, rtp_end=59999)
    lab.start()
    trunk = agent_phone = None
    try:
        trunk = labmod.SippPeer("trunk_uas.xml", port=args.trunk_port).start()
        agent_phone = labmod.SippPeer("agent_answer.xml").start()
        exts = [str(3000 + i) for i in range(args.concurrency)]
        creds = []
        t = time.monotonic()
        for ext in exts:
            username, password = labmod.ephemeral_credentials(ext, "bench-secret")
            lab.push_agent(ext, username, password)
            creds.append((ext, username, password))
        lab.register(creds, agent_phone.port, parallel=20)
        for ext in exts:
            lab.wait_endpoint_state(ext, "online", timeout=10)
        print(f"{len(exts)} agents pushed+registered in {time.monotonic() - t:.1f}s")

        ari = AriClient(lab.ari_url, lab.user, lab.password, app,
                        pool_size=args.concurrency + 4)
        stream = AriEventStream(lab.ari_url, lab.user, lab.password, app).connect()
        dispatcher = Dispatcher(stream)
        reader = gevent.spawn(dispatcher.run)

        free_agents: gevent.queue.Queue = gevent.queue.Queue()
        for ext in exts:
            free_agents.put(ext)
        latencies: list[float] = []
        failures: list[str] = []

        def one_call(i: int) -> None:
            ext = free_agents.get()
            call = Call(ari, dispatcher, ext, f"555{i:07d}", args.flow, args.ring_timeout)
            try:
                latencies.append(call.setup())
                gevent.sleep(args.hold)
            except (CallFailed, AriError) as exc:
                failures.append(f"call {i}: {exc}")
            finally:
                try:
                    failures.extend(f"call {i}: {p}" for p in call.teardown())
                finally:
                    free_agents.put(ext)

        pool = gevent.pool.Pool(args.concurrency)
        pid = int(open(os.path.join(lab.dir, "asterisk.pid")).read())
        cpu0, wall0 = cpu_seconds(pid), time.monotonic()
        interval = 1.0 / args.rate if args.rate > 0 else 0
        for i in range(args.calls):
            pool.spawn(one_call, i)
            if interval:
                gevent.sleep(interval)
        pool.join()
        wall = time.monotonic() - wall0
        cpu = cpu_seconds(pid) - cpu0
        gevent.sleep(0.5)
        leftovers = lab.leftovers()
        stream.close()
        reader.kill()

        ms = [x * 1000 for x in latencies]
        summary = {
            "calls": args.calls, "concurrency": args.concurrency, "rate": args.rate,
            "hold_s": args.hold, "flow": args.flow,
            "ok": len(latencies), "failures": len(failures),
            "setup_ms_p50": round(percentile(ms, 50), 1),
            "setup_ms_p95": round(percentile(ms, 95), 1),
            "setup_ms_max": round(max(ms), 1) if ms else None,
            "wall_s": round(wall, 2),
            "asterisk_cpu_ms_per_call": round(cpu * 1000 / max(1, args.calls), 1),
            "leftover_channels": len(leftovers["channels"]),
            "leftover_bridges": len(leftovers["bridges"]),
            "unrouted_events": dispatcher.unrouted,
        }
        print(f"calls {summary['calls']} ok {summary['ok']} failed {summary['failures']} "
              f"| setup p50 {summary['setup_ms_p50']} ms p95 {summary['setup_ms_p95']} ms "
              f"max {summary['setup_ms_max']} ms | wall {summary['wall_s']} s | asterisk CPU "
              f"{summary['asterisk_cpu_ms_per_call']} ms/call | leftovers "
              f"{summary['leftover_channels']} channels {summary['leftover_bridges']} bridges")
        for f in failures[:10]:
            print("  ", f)
        if args.json:
            print(json.dumps(summary))
        return 0 if not failures and not leftovers["channels"] and not leftovers["bridges"] else 1
    finally:
        for peer in (agent_phone, trunk):
            if peer is not None:
                peer.stop()
        lab.stop()


if __name__ == "__main__":
    sys.exit(main())
