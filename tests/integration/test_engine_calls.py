"""The engine end to end: the real server (`oml-server run`) driven over HTTP like a CRM, the lab
Asterisk checked through ARI, SIPp phones and a SIPp "PSTN" streaming RTP.

Run: ``.venv/bin/python -m pytest -m integration tests/integration/test_engine_calls.py -v``
(OML_SHOW_SERVER_LOG=1 prints the server's log at the end; OML_LAB_KEEP=1 keeps the files).
"""
from __future__ import annotations

import glob
import os
import sqlite3
import subprocess
import time

import pytest

from conftest import AGENT_ANSWER_TIMEOUT, INBOUND_WAIT_SECONDS
from lab import LAB_SH, AriNotFound, SippPeer, sipp_register, wait_until

pytestmark = pytest.mark.integration

CALL_FAILED_ES = "Error al ejecutar la llamada"
LATENCIES: list[float] = []


# -- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def phones(lab):
    """Agent phones (UAS). An agent's REGISTERed contact decides which one rings."""
    started = {
        "answer": SippPeer("agent_answer.xml", extra_args=["-trace_msg"]),
        "noanswer": SippPeer("agent_noanswer.xml"),
        "reject": SippPeer("agent_decline.xml"),
        "hangup": SippPeer("agent_answer_hangup.xml", hangup_ms=700),
    }
    for peer in started.values():
        peer.start()
    yield started
    for peer in started.values():
        peer.stop()


class Agent:
    def __init__(self, server, lab, info):
        self.server, self.lab = server, lab
        self.ext, self.agent_id, self.name = info["ext"], info["agent_id"], info["username"]
        self.token = server.token(self.name)
        self.creds = None

    def credentials(self):
        body = self.server.get("/api/v1/sip/credentials/agent/", self.token)
        assert body["status"] == "OK", body
        self.creds = (body["sip_user"], body["sip_password"])
        return self.creds

    def register(self, phone: SippPeer, expires: int = 600):
        if self.creds is None:
            self.credentials()
        sipp_register([(self.ext, *self.creds)], self.lab.sip_port, phone.port, expires=expires)
        self.lab.wait_endpoint_state(self.ext, "offline" if expires == 0 else "online", 3)

    def session(self, action: str, **body):
        return self.server.post(f"/api/v1/asterisk_{action}/", self.token, body)

    def make_call(self, campaign_id: int, phone: str, lang=None):
        headers = {"Authorization": f"Bearer {self.token}"}
        if lang:
            headers["Accept-Language"] = lang
        r = self.server.http.post(self.server.url + "/api/v1/makeCall/", timeout=10, headers=headers,
                                  json={"idCampaign": campaign_id, "idAgent": self.agent_id,
                                        "phone": phone})
        assert r.status_code == 200, r.text
        return r.json()

    def hangup(self):
        r = self.server.http.post(self.server.url + "/api/v1/hangupCall/", timeout=10,
                                  headers={"Authorization": f"Bearer {self.token}"})
        assert r.status_code == 200
        return r.json()

    def call(self, call_id: str) -> dict:
        return self.server.get(f"/api/v1/calls/{call_id}/", self.token)

    def wait_call(self, call_id: str, states, timeout: float) -> dict:
        states = (states,) if isinstance(states, str) else tuple(states)
        seen = {}

        def reached():
            seen["call"] = self.call(call_id)
            return seen["call"]["state"] in states
        try:
            wait_until(reached, timeout, f"call {call_id} in {states}", interval=0.005)
        except TimeoutError:
            pytest.fail(f"call never reached {states}: {seen.get('call')}")
        return seen["call"]


@pytest.fixture(scope="module")
def agents(server, lab, world):
    return {name: Agent(server, lab, info) for name, info in world.agents.items()}


def assert_nothing_left(lab, timeout: float = 3.0):
    try:
        wait_until(lambda: not lab.ari.channels() and not lab.ari.bridges(), timeout, "cleanup")
    except TimeoutError:
        pytest.fail(f"left in Asterisk: {lab.leftovers()}")


def agent_session_row(database_url: str, agent_id: int) -> dict:
    path = database_url[len("sqlite:///"):]
    with sqlite3.connect(path, timeout=5) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM agent_sessions WHERE agent_id = ?", (agent_id,)).fetchone()
    return dict(row) if row else {}


def device_state(lab, ext: str) -> str:
    try:
        return lab.ari.device_state_get(f"Stasis:oml-agent-{ext}")["state"]
    except AriNotFound:
        return "missing"


def bridged_call(agent, world, lab, number="5551000"):
    t0 = time.monotonic()
    body = agent.make_call(world.campaigns["manual"], number)
    assert body["status"] == "OK", body
    call = agent.wait_call(body["callId"], ("bridged", "ended", "failed"), 10)
    elapsed = time.monotonic() - t0
    assert call["state"] == "bridged", call
    return call, elapsed


# -- click-to-call ----------------------------------------------------------------------------

def test_click_to_call_bridges_both_legs(agents, world, lab, phones):
    ana = agents["ana"]
    ana.register(phones["answer"])
    for attempt in range(5):
        number = f"55510{attempt:02d}"
        call, elapsed = bridged_call(ana, world, lab, number)
        LATENCIES.append(elapsed)
        bridge = lab.ari.bridge(call["bridge_id"])
        assert set(bridge["channels"]) == {call["agent_channel_id"], call["contact_channel_id"]}
        assert bridge["bridge_type"] == "mixing"
        agent_leg = lab.ari.channel(call["agent_channel_id"])
        contact_leg = lab.ari.channel(call["contact_channel_id"])
        assert agent_leg["state"] == "Up" and contact_leg["state"] == "Up"
        assert agent_leg["caller"]["number"] == number  # the agent's phone shows the contact
        assert [b["id"] for b in lab.ari.bridges()] == [call["bridge_id"]]
        assert call["agent"] == ana.agent_id and call["kind"] == "click_to_call"
        assert call["agent_answered_at"] and call["bridged_at"]
        assert ana.hangup() == {"status": "OK"}
        ended = ana.wait_call(call["id"], ("ended", "failed"), 5)
        assert ended["state"] == "ended" and ended["reason"] == "hangup_requested", ended
        assert_nothing_left(lab)
    # The phone saw the contact's number in the INVITE it received.
    log = "".join(open(p, errors="replace").read()
                  for p in glob.glob(os.path.join(phones["answer"].log_dir, "*messages.log")))
    assert "From: \"5551004\" <sip:5551004@" in log or "From: <sip:5551004@" in log \
        or "sip:5551004@" in log, log[-2000:]
    print("makeCall -> bridged (client-side, ms):",
          ", ".join(f"{x * 1000:.0f}" for x in LATENCIES))


def test_a_click_to_call_stops_its_ring_tone_and_its_agent_device_state_follows(
        agents, world, lab, phones):
    """The tone the agent hears while the contact rings is stopped as the contact joins (not
    left playing over the conversation), and the agent's device state, written once the
    engine is idle, is INUSE on the call and NOT_INUSE after it; nothing is left in Asterisk."""
    gus = agents["gus"]
    gus.register(phones["answer"])
    assert gus.session("login") == {"status": "OK"}
    wait_until(lambda: device_state(lab, gus.ext) == "NOT_INUSE", 3, "NOT_INUSE after login")
    call, _ = bridged_call(gus, world, lab, "5552100")
    with pytest.raises(AriNotFound):
        lab.ari.request("GET", f"/playbacks/{call['bridge_id']}-ringback")
    wait_until(lambda: device_state(lab, gus.ext) == "INUSE", 3, "INUSE on the call")
    assert gus.hangup() == {"status": "OK"}
    ended = gus.wait_call(call["id"], ("ended", "failed"), 5)
    assert (ended["state"], ended["reason"]) == ("ended", "hangup_requested"), ended
    wait_until(lambda: device_state(lab, gus.ext) == "NOT_INUSE", 3, "NOT_INUSE after the call")
    assert_nothing_left(lab)
    assert gus.session("logout") == {"status": "OK"}


def test_agent_offline_is_refused_at_once(agents, world, lab):
    bob = agents["bob"]
    t0 = time.monotonic()
    body = bob.make_call(world.campaigns["manual"], "5552000")
    assert time.monotonic() - t0 < 1.0
    assert body["status"] == "ERROR" and body["message"] == CALL_FAILED_ES, body
    assert len(body["errors"]) == 1 and body["errors"][0], body
    body = bob.make_call(world.campaigns["manual"], "5552000", lang="en")
    assert body == {"status": "ERROR", "message": "Error when executing the call",
                    "errors": ["The agent's phone is not registered."]}
    assert_nothing_left(lab)


def test_agent_does_not_answer(agents, world, lab, phones):
    cid = agents["cid"]
    cid.register(phones["noanswer"])
    body = cid.make_call(world.campaigns["manual"], "5553000")
    assert body["status"] == "OK", body
    call = cid.wait_call(body["callId"], ("ended", "failed"), AGENT_ANSWER_TIMEOUT + 4)
    assert (call["state"], call["reason"]) == ("failed", "agent_no_answer"), call
    assert call["bridge_id"] is None
    assert_nothing_left(lab)


def test_agent_rejects(agents, world, lab, phones):
    dan = agents["dan"]
    dan.register(phones["reject"])
    body = dan.make_call(world.campaigns["manual"], "5554000")
    call = dan.wait_call(body["callId"], ("ended", "failed"), 5)
    assert (call["state"], call["reason"]) == ("failed", "agent_rejected"), call
    assert_nothing_left(lab)


def test_contact_busy(agents, world, lab, phones):
    ana = agents["ana"]
    ana.register(phones["answer"])
    body = ana.make_call(world.campaigns["manual"], "4865550001")
    call = ana.wait_call(body["callId"], ("ended", "failed"), 8)
    assert (call["state"], call["reason"]) == ("failed", "contact_busy"), call
    assert call["hangup_cause"] == 17
    assert_nothing_left(lab)


def test_agent_hangs_up(agents, world, lab, phones):
    ana = agents["ana"]
    ana.register(phones["hangup"])
    call, _ = bridged_call(ana, world, lab, "5555000")
    call = ana.wait_call(call["id"], ("ended", "failed"), 5)
    assert (call["state"], call["reason"]) == ("ended", "agent_hangup"), call
    assert_nothing_left(lab)
    ana.register(phones["answer"])


def test_contact_hangs_up(agents, world, lab, phones, trunk):
    ana = agents["ana"]
    ana.register(phones["answer"])
    trunk["peer"].stop()
    hanging = SippPeer("agent_answer_hangup.xml", port=lab.trunk_port, hangup_ms=700).start()
    try:
        call, _ = bridged_call(ana, world, lab, "5556000")
        call = ana.wait_call(call["id"], ("ended", "failed"), 5)
        assert (call["state"], call["reason"]) == ("ended", "contact_hangup"), call
        assert_nothing_left(lab)
    finally:
        hanging.stop()
        trunk["peer"] = SippPeer("trunk_uas.xml", port=lab.trunk_port).start()


def test_a_phone_gone_silent_is_hung_up_and_the_call_ends(agents, world, lab, phones):
    """A phone that vanishes without a BYE (network lost) sends no more RTP: Asterisk hangs its
    leg up after the endpoint's rtp_timeout (the engine pushes PHONE_RTP_TIMEOUT, 60 s by
    default; here 2 s on ana's endpoint) and the call ends as the agent's hang-up, the contact
    hung up, the agent free. The SIPp phone streams 8 s of audio from its answer, then nothing,
    and never hangs up by itself."""
    ana = agents["ana"]
    ana.register(phones["answer"])
    lab.ari.dynamic_config_put("endpoint", ana.ext, {"rtp_timeout": "2"})
    try:
        call, _ = bridged_call(ana, world, lab, "5555500")
        bridged = time.monotonic()
        ended = ana.wait_call(call["id"], ("ended", "failed"), 20)
        silent_after = time.monotonic() - bridged
        assert (ended["state"], ended["reason"]) == ("ended", "agent_hangup"), ended
        # Not before the phone's audio ended (8 s after its answer), soon after the timeout.
        assert 6 < silent_after < 16, silent_after
        assert_nothing_left(lab)
        again, _ = bridged_call(ana, world, lab, "5555501")   # not held busy by the dead call
        assert ana.hangup() == {"status": "OK"}
        ana.wait_call(again["id"], ("ended",), 5)
    finally:
        lab.ari.dynamic_config_put("endpoint", ana.ext, {
            "rtp_timeout": os.environ.get("PHONE_RTP_TIMEOUT", "60")})
    assert_nothing_left(lab)


def test_hangup_call_endpoint_and_second_call(agents, world, lab, phones):
    ana = agents["ana"]
    ana.register(phones["answer"])
    call, _ = bridged_call(ana, world, lab, "5557000")
    second = ana.make_call(world.campaigns["manual"], "5557001", lang="en")
    assert second == {"status": "ERROR", "message": "Error when executing the call",
                      "errors": ["The agent is already on a call."]}
    assert [b["id"] for b in lab.ari.bridges()] == [call["bridge_id"]]
    assert ana.hangup() == {"status": "OK"}
    ended = ana.wait_call(call["id"], ("ended", "failed"), 5)
    assert (ended["state"], ended["reason"]) == ("ended", "hangup_requested")
    assert_nothing_left(lab)
    assert ana.hangup() == {"status": "ERROR"}  # nothing left to hang up


# -- presence ---------------------------------------------------------------------------------

def test_presence_follows_register_and_unregister(agents, lab, phones, database_url):
    ivy = agents["ivy"]
    assert not agent_session_row(database_url, ivy.agent_id).get("online")
    t0 = time.monotonic()
    ivy.register(phones["answer"])
    wait_until(lambda: agent_session_row(database_url, ivy.agent_id).get("online") == 1, 1.0,
               "AgentSession.online after REGISTER")
    print(f"REGISTER -> online in {(time.monotonic() - t0) * 1000:.0f} ms")
    t0 = time.monotonic()
    ivy.register(phones["answer"], expires=0)
    wait_until(lambda: agent_session_row(database_url, ivy.agent_id).get("online") == 0, 1.0,
               "AgentSession.online after un-REGISTER")
    assert device_state(lab, ivy.ext) == "UNAVAILABLE"


def test_pause_is_mirrored_to_device_state(agents, lab, phones):
    gus = agents["gus"]
    gus.register(phones["answer"])
    assert gus.session("login") == {"status": "OK"}
    wait_until(lambda: device_state(lab, gus.ext) == "NOT_INUSE", 1, "NOT_INUSE after login")
    assert gus.session("pause", pause_id="0") == {"status": "OK"}
    wait_until(lambda: device_state(lab, gus.ext) == "ONHOLD", 1, "ONHOLD after pause")
    assert gus.session("unpause", pause_id="0") == {"status": "OK"}
    wait_until(lambda: device_state(lab, gus.ext) == "NOT_INUSE", 1, "NOT_INUSE after unpause")
    assert gus.session("logout") == {"status": "OK"}
    wait_until(lambda: device_state(lab, gus.ext) == "UNAVAILABLE", 1, "UNAVAILABLE after logout")


def test_registration_needs_the_issued_credentials(agents, lab, phones):
    fay = agents["fay"]
    sip_user, password = fay.credentials()
    assert sip_user.endswith(":" + fay.ext)
    with pytest.raises(RuntimeError):
        sipp_register([(fay.ext, sip_user, "not-the-password")], lab.sip_port, phones["answer"].port)
    assert lab.endpoint_state(fay.ext) == "offline"
    sipp_register([(fay.ext, sip_user, password)], lab.sip_port, phones["answer"].port)
    lab.wait_endpoint_state(fay.ext, "online", 3)
    # A second request (another tab) issues new ones; the first still registers until expiry.
    newer = fay.credentials()
    sipp_register([(fay.ext, sip_user, password)], lab.sip_port, phones["answer"].port)
    sipp_register([(fay.ext, *newer)], lab.sip_port, phones["answer"].port)


# -- inbound ----------------------------------------------------------------------------------

def caller(lab, campaign_id: int, log_dir: str) -> SippPeer:
    return SippPeer("caller_uac.xml", remote=f"127.0.0.1:{lab.sip_port}", log_dir=log_dir,
                    extra_args=["-s", str(campaign_id), "-m", "1", "-trace_logs",
                                "-timeout", "20s", "-timeout_error"]).start(settle=0)


def caller_result(peer: SippPeer) -> str:
    text = "".join(open(p, errors="replace").read()
                   for p in glob.glob(os.path.join(peer.log_dir, "*_logs.log")))
    return text


def test_inbound_goes_to_the_idlest_available_agent(agents, world, lab, phones, workdir, server):
    eva, fay, gus, hal, bob = (agents[n] for n in ("eva", "fay", "gus", "hal", "bob"))
    for a in (eva, fay, gus, hal):
        a.register(phones["answer"])
    for a in (eva, fay, gus, bob):  # eva first: idle longest; bob logged in but offline
        assert a.session("login") == {"status": "OK"}
        time.sleep(0.05)
    assert gus.session("pause", pause_id="0") == {"status": "OK"}
    assert hal.session("logout") == {"status": "OK"}
    campaign = world.campaigns["inbound"]
    log_dirs = [os.path.join(workdir, f"caller{i}") for i in range(3)]
    for d in log_dirs:
        os.makedirs(d, exist_ok=True)
    first = caller(lab, campaign, log_dirs[0])
    try:
        wait_until(lambda: len(lab.ari.bridges()) == 1 and
                   len(lab.ari.bridges()[0]["channels"]) == 2, 5, "first inbound bridged")
        bridge = lab.ari.bridges()[0]
        names = {lab.ari.channel(c)["name"].split("-")[0] for c in bridge["channels"]}
        assert f"PJSIP/{eva.ext}" in names, names
        second = caller(lab, campaign, log_dirs[1])
        wait_until(lambda: len(lab.ari.bridges()) == 2 and
                   all(len(b["channels"]) == 2 for b in lab.ari.bridges()), 5,
                   "second inbound bridged")
        names = {lab.ari.channel(c)["name"].split("-")[0]
                 for b in lab.ari.bridges() for c in b["channels"]}
        assert f"PJSIP/{fay.ext}" in names, names
        # Nobody else: gus paused, hal logged out, bob offline → back to the dialplan.
        t0 = time.monotonic()
        third = caller(lab, campaign, log_dirs[2])
        wait_until(lambda: not third.alive(), INBOUND_WAIT_SECONDS + 4, "third caller refused")
        waited = time.monotonic() - t0
        assert "RESULT refused" in caller_result(third), caller_result(third)
        assert INBOUND_WAIT_SECONDS - 0.5 <= waited <= INBOUND_WAIT_SECONDS + 3
        assert len(lab.ari.bridges()) == 2
        assert eva.hangup() == {"status": "OK"} and fay.hangup() == {"status": "OK"}
        wait_until(lambda: not first.alive() and not second.alive(), 5, "callers got BYE")
        assert "RESULT answered" in caller_result(first)
        assert_nothing_left(lab)
    finally:
        for a in (eva, fay, bob):
            a.session("logout")


def test_inbound_tries_the_next_agent_when_one_does_not_answer(agents, world, lab, phones,
                                                               workdir):
    eva, fay, gus, hal = (agents[n] for n in ("eva", "fay", "gus", "hal"))
    for a in (gus, hal):  # only eva and fay take calls here
        a.session("logout")
    eva.register(phones["noanswer"])
    fay.register(phones["answer"])
    try:
        assert eva.session("login") == {"status": "OK"}  # eva first: idle longest, rung first
        time.sleep(0.05)
        assert fay.session("login") == {"status": "OK"}
        log_dir = os.path.join(workdir, "caller-retry")
        os.makedirs(log_dir, exist_ok=True)
        t0 = time.monotonic()
        peer = caller(lab, world.campaigns["inbound"], log_dir)
        wait_until(lambda: len(lab.ari.bridges()) == 1 and
                   len(lab.ari.bridges()[0]["channels"]) == 2,
                   AGENT_ANSWER_TIMEOUT + 6, "bridged with the second agent")
        waited = time.monotonic() - t0
        names = {lab.ari.channel(c)["name"].split("-")[0] for c in lab.ari.bridges()[0]["channels"]}
        assert f"PJSIP/{fay.ext}" in names and f"PJSIP/{eva.ext}" not in names, names
        assert waited >= AGENT_ANSWER_TIMEOUT - 0.5  # eva's phone rang its full time first
        assert fay.hangup() == {"status": "OK"}
        wait_until(lambda: not peer.alive(), 5, "caller got BYE")
        assert "RESULT answered" in caller_result(peer)
        assert_nothing_left(lab)
    finally:
        for a in (eva, fay):
            a.session("logout")
        eva.register(phones["answer"])


# -- Asterisk restart (last: it disturbs everything) ------------------------------------------

def test_asterisk_restart_mid_call(agents, world, lab, phones, server):
    ana = agents["ana"]
    ana.register(phones["answer"])
    call, _ = bridged_call(ana, world, lab, "5558000")
    env = lab._env()
    subprocess.run([LAB_SH, "stop", lab.dir], env=env, capture_output=True, timeout=30, check=True)
    subprocess.run([LAB_SH, "start", lab.dir], env=env, capture_output=True, timeout=30, check=True)
    t0 = time.monotonic()
    ended = ana.wait_call(call["id"], ("ended", "failed"), 8)
    assert (ended["state"], ended["reason"]) == ("ended", "asterisk_lost"), ended

    def engine_back():
        return server.http.get(server.url + "/api/v1/health/", timeout=2).json()["ari"] == "ok"
    wait_until(engine_back, 6, "engine reconnected")
    # SIP accounts were pushed again (the restarted Asterisk keeps none in memory).
    wait_until(lambda: _endpoint_exists(lab, ana.ext), 5, "endpoint pushed again")
    print(f"engine back and accounts pushed {time.monotonic() - t0:.2f}s after restart")
    ana.register(phones["answer"])  # the phone registers again with the same credentials
    wait_until(lambda: _online_in_db(server, ana), 2, "online again")
    call, _ = bridged_call(ana, world, lab, "5558001")
    assert ana.hangup() == {"status": "OK"}
    ana.wait_call(call["id"], ("ended",), 5)
    assert_nothing_left(lab)


def _endpoint_exists(lab, ext):
    try:
        lab.ari.endpoint("PJSIP", ext)
        return True
    except Exception:
        return False


def _online_in_db(server, agent):
    return agent_session_row(server.env["DATABASE_URL"], agent.agent_id).get("online") == 1
