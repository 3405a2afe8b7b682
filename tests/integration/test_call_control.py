"""After the bridge (issue 9), end to end: the real server and engine, the lab Asterisk, SIPp
phones. Call data on the agent's INVITE, hold, blind transfers and their failure paths,
hangup-leg, the voicebot hand-off. After each: 0 channels, 0 bridges, no live row.

Run: ``.venv/bin/python -m pytest -m integration tests/integration/test_call_control.py -v``
"""
from __future__ import annotations

import glob
import os
import sqlite3
import subprocess
import time

import pytest

from conftest import IDLE_SECONDS, TRANSFER_TIMEOUT, Server
from lab import LAB_SH, SippPeer, wait_until
from test_engine_calls import (Agent, agent_session_row, assert_nothing_left, bridged_call,
                               caller)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def phones(lab):
    started = {
        "answer": SippPeer("agent_answer.xml", extra_args=["-trace_msg"]),
        "noanswer": SippPeer("agent_noanswer.xml"),
        "reject": SippPeer("agent_decline.xml"),
        "bot": SippPeer("voicebot_uas.xml", extra_args=["-trace_logs"]),
    }
    try:
        for peer in started.values():
            peer.start()
        yield started
    finally:  # also when one fails to start: none is left running
        for peer in started.values():
            if peer.proc is not None:
                peer.stop()


@pytest.fixture(scope="module")
def agents(server, lab, world):
    return {name: Agent(server, lab, info) for name, info in world.agents.items()}


@pytest.fixture(autouse=True)
def clean_after(lab, server, agents):
    yield
    lab.clean()
    for agent in agents.values():
        agent.session("logout")
    assert not live_rows(server), live_rows(server)


def live_rows(server):
    path = server.env["DATABASE_URL"][len("sqlite:///"):]
    time.sleep(0.3)
    with sqlite3.connect(path, timeout=5) as conn:
        calls = conn.execute("SELECT id, state FROM calls WHERE state NOT IN ('ended', 'failed')"
                             ).fetchall()
        legs = conn.execute("SELECT asterisk_id FROM call_legs WHERE state = 'live'").fetchall()
    return calls + legs


def command(server, who, path, body, lang="es"):
    r = server.http.post(server.url + path, json=body, timeout=10,
                         headers={"Authorization": f"Bearer {who.token}",
                                  "Accept-Language": lang})
    return r.status_code, r.json()


def wait_event(agent, call_id, type_, timeout=8.0, count=1):
    seen = {}

    def happened():
        seen["call"] = agent.call(call_id)
        return sum(e["type"] == type_ for e in seen["call"]["events"]) >= count
    try:
        wait_until(happened, timeout, f"{type_} on {call_id}", interval=0.02)
    except TimeoutError:
        pytest.fail(f"no {type_}: {seen.get('call')}")
    return seen["call"]


def events(call, type_):
    return [e for e in call["events"] if e["type"] == type_]


def bridge_channels(lab, bridge_id):
    return {b["id"]: set(b["channels"]) for b in lab.ari.bridges()}.get(bridge_id, set())


def waiting_with_music(lab, cid):
    """While a transfer's target rings or is consulted, the caller waits in the call's own
    bridge (so a recording of it goes on), the agent's leg is out of it, music plays."""
    channels = bridge_channels(lab, f"oml-{cid}")
    return (f"oml-{cid}-contact" in channels and f"oml-{cid}-agent" not in channels
            and "ARI_MOH" in lab.cli("core show channels concise"))


def invite_to(phone, *texts):
    """The INVITE a phone received that carries all `texts` (from its -trace_msg log)."""
    def found():
        for path in glob.glob(os.path.join(phone.log_dir, "*_messages.log")):
            for message in open(path, errors="replace").read().split("-" * 47):
                if "INVITE sip:" in message and all(t in message for t in texts):
                    return message.replace("\r\n", "\n")
        return None
    try:
        wait_until(lambda: found() is not None, 3, f"INVITE with {texts}")
    except TimeoutError:
        logs = {p: open(p, errors="replace").read()[-3000:]
                for p in glob.glob(os.path.join(phone.log_dir, "*"))}
        pytest.fail(f"no INVITE with {texts}; logs: {logs}")
    return found()


def queued(body, **extra):
    return {"status": "queued", "message": "Comando recibido", "subscribers": 1,
            "channel": "acd:commands:local", "node_id": "local", **extra}


def ready(agent, phone):
    agent.register(phone)
    assert agent.session("login") == {"status": "OK"}


# -- call data on the agent's phone (§1) ----------------------------------------------------

def test_the_agent_phone_sees_the_call_data(agents, world, lab, phones):
    ana = agents["ana"]
    ana.register(phones["answer"])
    call, _ = bridged_call(ana, world, lab, "5551000")
    invite = invite_to(phones["answer"], f"X-OML-CallID: {call['id']}")
    for header, value in {"X-OML-CampID": world.campaigns["manual"],
                          "X-OML-PhoneNumber": "5551000", "X-OML-CallType": "manual",
                          "X-OML-AgentID": ana.agent_id, "Omlcallid": call["id"],
                          "Idcamp": world.campaigns["manual"], "Omloutnum": "5551000",
                          "Omlcamptype": "3"}.items():
        assert f"{header}: {value}" in invite, (header, invite)
    assert "X-OML-Origin" not in invite
    assert ana.hangup() == {"status": "OK"}
    ana.wait_call(call["id"], ("ended",), 5)
    assert_nothing_left(lab)


# -- refusals (§0 [better]) -------------------------------------------------------------------

def test_commands_are_refused_at_once_with_a_reason(agents, world, lab, phones, server):
    ana, bob = agents["ana"], agents["bob"]
    ana.register(phones["answer"])
    assert command(server, ana, "/api/v1/transfer/blind-agent/", {"call_id": "x"}) == \
        (400, {"error": "Faltan parámetros: call_id, target_agent_id"})
    assert command(server, ana, "/api/v1/transfer/blind-campaign-agent/", {"call_id": "x"}) == \
        (400, {"error": "campaign_id es requerido."})
    assert command(server, ana, "/api/v1/call/hold/", {}) == \
        (400, {"error": "Falta callid o call_id, o el agente no tiene llamada activa"})
    unknown = {"call_id": "f" * 32, "target_agent_id": bob.agent_id}
    assert command(server, ana, "/api/v1/transfer/blind-agent/", unknown) == \
        (404, {"error": "La llamada no existe o ya terminó."})
    assert command(server, ana, "/api/v1/transfer/blind-agent/", unknown, lang="en") == \
        (404, {"error": "The call does not exist or has already ended."})
    call, _ = bridged_call(ana, world, lab, "5551001")
    cid = call["id"]
    # bob has no business with ana's call
    status, body = command(server, bob, "/api/v1/call/hold/", {"call_id": cid}, lang="en")
    assert (status, body) == (403, {"detail": "You do not have permission to perform this action."})
    assert command(server, ana, "/api/v1/transfer/blind-agent/",
                   {"call_id": cid, "target_agent_id": 999999}, lang="en") == \
        (404, {"error": "Target agent not found."})
    assert command(server, ana, "/api/v1/transfer/blind-endpoint/",
                   {"call_id": cid, "endpoint": "PJSIP/1000@trunk"}) == \
        (400, {"error": "El endpoint debe ser el interno de un agente o un número de teléfono "
                        "(3 a 25 dígitos, puede comenzar con +)."})
    assert command(server, ana, "/api/v1/call/hold/", {"call_id": cid, "action": "pause"},
                   lang="en") == (400, {"error": "action must be hold or unhold."})
    assert ana.hangup() == {"status": "OK"}
    ana.wait_call(cid, ("ended",), 5)
    assert_nothing_left(lab)


# -- hold (§3) --------------------------------------------------------------------------------

def test_hold_plays_music_to_the_caller_and_keeps_the_agent(agents, world, lab, phones, server):
    ana = agents["ana"]
    ana.register(phones["answer"])
    call, _ = bridged_call(ana, world, lab, "5551002")
    cid = call["id"]
    contact, agent_leg = f"oml-{cid}-contact", f"oml-{cid}-agent"
    status, body = command(server, ana, "/api/v1/call/hold/", {"call_id": cid})
    assert (status, body) == (202, queued(body, action="hold", call_id=cid))
    wait_until(lambda: bridge_channels(lab, f"oml-{cid}-hold") == {contact}, 3, "caller held")
    assert bridge_channels(lab, f"oml-{cid}") == {agent_leg}  # the agent's leg stays
    # music: Asterisk's MOH announcer plays into the holding bridge
    assert "ARI_MOH" in lab.cli("core show channels concise")
    # an explicit hold while held changes nothing; the toggle takes it back
    assert command(server, ana, "/api/v1/call/hold/", {"call_id": cid, "action": "hold"})[0] == 202
    status, body = command(server, ana, "/api/v1/call/hold/", {})  # default: the agent's call
    assert (status, body["action"]) == (202, "unhold")
    wait_until(lambda: bridge_channels(lab, f"oml-{cid}") == {contact, agent_leg}, 3, "unheld")
    record = wait_event(ana, cid, "call.unheld")
    assert len(events(record, "call.held")) == 1
    # Held again once the quiet call's worker has left: the next worker puts the caller in the
    # same holding bridge (it failed: Asterisk refused to create it again) with music (Asterisk
    # stopped it when the caller left: a second hold was silent).
    time.sleep(IDLE_SECONDS + 1)
    assert command(server, ana, "/api/v1/call/hold/", {"call_id": cid})[0] == 202
    wait_until(lambda: bridge_channels(lab, f"oml-{cid}-hold") == {contact}, 3, "held again")
    assert "ARI_MOH" in lab.cli("core show channels concise")
    assert ana.hangup() == {"status": "OK"}
    ana.wait_call(cid, ("ended",), 5)
    assert_nothing_left(lab)


def test_an_api_only_worker_hands_commands_to_the_engine(agents, world, lab, phones, server,
                                                         database_url, workdir):
    """Split deployment: the command reaches the engine's process through Asterisk (an ARI
    user event on the engine's websocket)."""
    api = Server(lab, database_url, workdir, engine=False)
    api.env = dict(server.env)  # the same secrets: tokens of one are good at the other
    api.start()
    try:
        ana = agents["ana"]
        ana.register(phones["answer"])
        call, _ = bridged_call(ana, world, lab, "5551013")
        cid = call["id"]
        status, body = command(api, ana, "/api/v1/call/hold/", {"call_id": cid})
        assert (status, body) == (202, queued(body, action="hold", call_id=cid))
        wait_until(lambda: bridge_channels(lab, f"oml-{cid}-hold") == {f"oml-{cid}-contact"},
                   3, "caller held by the engine")
        assert ana.hangup() == {"status": "OK"}
        ana.wait_call(cid, ("ended",), 5)
        assert_nothing_left(lab)
    finally:
        api.stop()


# -- blind transfers (§2) ---------------------------------------------------------------------

def test_blind_transfer_to_an_agent(agents, world, lab, phones, server):
    ana, bob = agents["ana"], agents["bob"]
    ana.register(phones["answer"])
    bob.register(phones["answer"])
    call, _ = bridged_call(ana, world, lab, "5551003")
    cid = call["id"]
    status, body = command(server, ana, "/api/v1/transfer/blind-agent/",
                           {"call_id": cid, "target_agent_id": bob.agent_id})
    assert (status, body) == (202, queued(body, target_agent_id=bob.agent_id))
    record = wait_event(ana, cid, "call.transferred")
    assert record["current_agent"] == bob.agent_id and record["state"] == "bridged"
    [target] = [leg for leg in record["legs"] if leg["role"] == "transfer_target"]
    assert bridge_channels(lab, f"oml-{cid}") == {f"oml-{cid}-contact", target["channel"]}
    assert not any(c["id"] == f"oml-{cid}-agent" for c in lab.ari.channels())
    assert agent_session_row(server.env["DATABASE_URL"], ana.agent_id)["on_call"] == 0
    assert agent_session_row(server.env["DATABASE_URL"], bob.agent_id)["on_call"] == 1
    invite = invite_to(phones["answer"], f"X-OML-CallID: {cid}", "X-OML-Origin: transfer")
    assert f"X-OML-AgentID: {bob.agent_id}" in invite and "X-OML-CallType: transfer" in invite
    requested = events(record, "call.transfer_requested")[0]
    assert requested["from_agent_id"] == ana.agent_id
    # the new agent owns the call: sees it, hangs it up like its own
    assert bob.call(cid)["current_agent"] == bob.agent_id
    assert bob.hangup() == {"status": "OK"}
    ended = bob.wait_call(cid, ("ended",), 5)
    assert ended["reason"] == "hangup_requested"
    assert_nothing_left(lab)


def test_transfer_not_answered_goes_back_to_the_transferring_agent(agents, world, lab, phones,
                                                                    server):
    ana, dan = agents["ana"], agents["dan"]
    ana.register(phones["answer"])
    dan.register(phones["noanswer"])
    call, _ = bridged_call(ana, world, lab, "5551004")
    cid = call["id"]
    t0 = time.monotonic()
    assert command(server, ana, "/api/v1/transfer/blind-agent/",
                   {"call_id": cid, "target_agent_id": dan.agent_id})[0] == 202
    wait_until(lambda: waiting_with_music(lab, cid), 3,
               "caller waits with music while the target rings")
    record = wait_event(ana, cid, "call.transferred", timeout=TRANSFER_TIMEOUT + 6)
    assert time.monotonic() - t0 >= TRANSFER_TIMEOUT - 0.5
    [failed] = events(record, "call.transfer_failed")
    assert failed["reason"] == "target_no_answer"
    assert record["current_agent"] == ana.agent_id
    assert agent_session_row(server.env["DATABASE_URL"], dan.agent_id)["on_call"] == 0
    assert ana.hangup() == {"status": "OK"}
    ana.wait_call(cid, ("ended",), 5)
    assert_nothing_left(lab)


def test_transfer_rejected_then_nobody_to_go_back_to_ends_cleanly(agents, world, lab, phones,
                                                                  server):
    """The target declines, the transferring agent has logged out of its phone meanwhile
    (offline) and the call's campaign has nobody: the call ends with a reason, no music
    left playing to nobody."""
    ana, cid_agent = agents["ana"], agents["cid"]
    ana.register(phones["answer"])
    cid_agent.register(phones["reject"])
    call, _ = bridged_call(ana, world, lab, "5551005")
    cid = call["id"]
    ana.register(phones["answer"], expires=0)  # ana's phone goes away after transferring
    try:
        assert command(server, ana, "/api/v1/transfer/blind-agent/",
                       {"call_id": cid, "target_agent_id": cid_agent.agent_id})[0] == 202
        ended = ana.wait_call(cid, ("ended", "failed"), 8)
        assert events(ended, "call.transfer_failed")[0]["reason"] == "target_rejected"
        assert ended["reason"] == "no_agent_available", ended
        assert_nothing_left(lab)
    finally:
        ana.register(phones["answer"])


def test_transfer_to_a_busy_agent_leaves_the_call_as_it_was(agents, world, lab, phones, server):
    ana, bob = agents["ana"], agents["bob"]
    ana.register(phones["answer"])
    bob.register(phones["answer"])
    first, _ = bridged_call(ana, world, lab, "5551006")
    second, _ = bridged_call(bob, world, lab, "5551007")
    assert command(server, ana, "/api/v1/transfer/blind-agent/",
                   {"call_id": first["id"], "target_agent_id": bob.agent_id})[0] == 202
    record = wait_event(ana, first["id"], "call.transfer_failed")
    assert events(record, "call.transfer_failed")[0]["reason"] == "target_busy"
    assert record["current_agent"] == ana.agent_id
    assert bridge_channels(lab, f"oml-{first['id']}") == {f"oml-{first['id']}-contact",
                                                          f"oml-{first['id']}-agent"}
    assert ana.hangup() == {"status": "OK"} and bob.hangup() == {"status": "OK"}
    ana.wait_call(first["id"], ("ended",), 5)
    bob.wait_call(second["id"], ("ended",), 5)
    assert_nothing_left(lab)


def test_caller_hangs_up_while_the_target_rings(agents, world, lab, phones, server):
    ana, dan = agents["ana"], agents["dan"]
    ana.register(phones["answer"])
    dan.register(phones["noanswer"])
    call, _ = bridged_call(ana, world, lab, "5551008")
    cid = call["id"]
    assert command(server, ana, "/api/v1/transfer/blind-agent/",
                   {"call_id": cid, "target_agent_id": dan.agent_id})[0] == 202
    wait_event(ana, cid, "call.transfer_requested")
    wait_until(lambda: any("transfer_target" in c["id"] for c in lab.ari.channels()), 3,
               "target ringing")
    lab.ari.hangup(f"oml-{cid}-contact")
    ended = ana.wait_call(cid, ("ended", "failed"), 5)
    assert ended["reason"] == "contact_hangup", ended
    assert_nothing_left(lab)
    assert agent_session_row(server.env["DATABASE_URL"], dan.agent_id)["on_call"] == 0


def test_blind_transfer_to_an_outside_number_and_hangup_leg(agents, world, lab, phones,
                                                            server):
    ana = agents["ana"]
    ana.register(phones["answer"])
    call, _ = bridged_call(ana, world, lab, "5551009")
    cid = call["id"]
    status, body = command(server, ana, "/api/v1/transfer/blind-endpoint/",
                           {"call_id": cid, "endpoint": "5552000"})
    assert (status, body) == (202, queued(body, endpoint="5552000"))
    record = wait_event(ana, cid, "call.transferred")
    assert record["current_agent"] is None
    [target] = [leg for leg in record["legs"] if leg["role"] == "transfer_target"]
    assert bridge_channels(lab, f"oml-{cid}") == {f"oml-{cid}-contact", target["channel"]}
    # ana handed the call over: it is no longer hers to act on
    assert command(server, ana, "/api/v1/call/hangup-leg/",
                   {"channel_id": target["channel"]})[0] == 403
    lab.ari.hangup(target["channel"])
    ended = ana.wait_call(cid, ("ended",), 5)
    assert ended["reason"] == "agent_hangup"
    assert_nothing_left(lab)


def test_hangup_leg_hangs_up_that_leg(agents, world, lab, phones, server):
    ana = agents["ana"]
    ana.register(phones["answer"])
    call, _ = bridged_call(ana, world, lab, "5551010")
    cid = call["id"]
    status, body = command(server, ana, "/api/v1/call/hangup-leg/",
                           {"channel_id": f"oml-{cid}-contact"})
    assert (status, body) == (202, queued(body, target_id=f"oml-{cid}-contact", mode="auto"))
    ended = ana.wait_call(cid, ("ended",), 5)
    assert ended["reason"] == "contact_hangup"
    assert_nothing_left(lab)


def test_blind_transfer_to_a_campaign(agents, world, lab, phones, server):
    ana, eva = agents["ana"], agents["eva"]
    ana.register(phones["answer"])
    call, _ = bridged_call(ana, world, lab, "5551011")
    cid = call["id"]
    ready(eva, phones["answer"])
    status, body = command(server, ana, "/api/v1/transfer/blind-campaign/",
                           {"call_id": cid, "target_campaign_id": world.campaigns["inbound"]})
    expected = queued(body, target_campaign_id=world.campaigns["inbound"])
    del expected["message"]  # OMniLeads' blind-campaign answers without it
    assert (status, body) == (202, expected)
    record = wait_event(ana, cid, "call.transferred")
    assert record["current_agent"] == eva.agent_id
    assert record["campaign"] == world.campaigns["inbound"]
    assert eva.hangup() == {"status": "OK"}
    eva.wait_call(cid, ("ended",), 5)
    assert_nothing_left(lab)


# -- consultative transfer (§2) ---------------------------------------------------------------

CONSULT = "/api/v1/agent/transfer/consult/"


def test_consult_then_complete(agents, world, lab, phones, server):
    ana, bob, dan = agents["ana"], agents["bob"], agents["dan"]
    ana.register(phones["answer"])
    bob.register(phones["answer"])
    dan.register(phones["noanswer"])
    call, _ = bridged_call(ana, world, lab, "5551020")
    cid = call["id"]
    contact, agent_leg = f"oml-{cid}-contact", f"oml-{cid}-agent"
    assert command(server, ana, CONSULT + "complete/", {"call_id": cid}, "en") == \
        (400, {"error": "There is no consultation under way on this call."})
    assert command(server, ana, CONSULT + "start/", {"call_id": cid}) == \
        (400, {"error": "Debe proporcionar endpoint o target_agent_id"})
    # dan does not answer: complete is refused until it does; cancel takes the caller back
    status, body = command(server, ana, CONSULT + "start/",
                           {"call_id": cid, "target_agent_id": dan.agent_id})
    assert (status, body) == (202, queued(body, target_agent_id=dan.agent_id))
    # the caller waits with music in the call's own bridge (a recording goes on), the agent
    # waits for the target in the consult bridge, out of the caller's hearing
    wait_until(lambda: waiting_with_music(lab, cid), 3, "caller waits with music")
    wait_until(lambda: bridge_channels(lab, f"oml-{cid}-consult") == {agent_leg}, 3,
               "agent in the consult bridge")
    assert command(server, ana, CONSULT + "complete/", {"call_id": cid}, "en") == \
        (400, {"error": "The consulted party has not answered yet."})
    assert command(server, ana, CONSULT + "start/",
                   {"call_id": cid, "target_agent_id": bob.agent_id}, "en") == \
        (400, {"error": "A consultation is already under way on this call."})
    assert command(server, ana, CONSULT + "cancel/", {"call_id": cid})[0] == 202
    wait_event(ana, cid, "call.consult_cancelled")
    wait_until(lambda: bridge_channels(lab, f"oml-{cid}") == {contact, agent_leg}, 3,
               "caller back with the agent")
    wait_until(lambda: "ARI_MOH" not in lab.cli("core show channels concise"), 3, "music off")
    wait_until(lambda: not any("consult" in c["id"] for c in lab.ari.channels()), 3,
               "consulted phone hung up")
    # bob answers: ana and bob talk privately, then bob takes the caller
    assert command(server, ana, CONSULT + "start/",
                   {"call_id": cid, "endpoint": bob.ext})[0] == 202
    record = wait_event(ana, cid, "call.consult_answered")
    [leg] = [l["channel"] for l in record["legs"] if l["role"] == "consult" and
             l["resource"] == "channel" and l["state"] == "live"]
    wait_until(lambda: bridge_channels(lab, f"oml-{cid}-consult") == {agent_leg, leg}, 3,
               "agent and target together")
    assert bridge_channels(lab, f"oml-{cid}") == {contact}
    assert command(server, ana, CONSULT + "complete/", {"call_id": cid})[0] == 202
    record = wait_event(ana, cid, "call.transferred")
    assert record["current_agent"] == bob.agent_id
    wait_until(lambda: bridge_channels(lab, f"oml-{cid}") == {contact, leg}, 3, "bob has it")
    wait_until(lambda: "ARI_MOH" not in lab.cli("core show channels concise"), 3, "music off")
    assert agent_session_row(server.env["DATABASE_URL"], ana.agent_id)["on_call"] == 0
    assert bob.hangup() == {"status": "OK"}
    bob.wait_call(cid, ("ended",), 5)
    assert_nothing_left(lab)


def test_agent_hangs_up_during_the_consult(agents, world, lab, phones, server):
    ana, bob = agents["ana"], agents["bob"]
    ana.register(phones["answer"])
    bob.register(phones["answer"])
    call, _ = bridged_call(ana, world, lab, "5551021")
    cid = call["id"]
    assert command(server, ana, CONSULT + "start/",
                   {"call_id": cid, "target_agent_id": bob.agent_id})[0] == 202
    wait_event(ana, cid, "call.consult_answered")
    lab.ari.hangup(f"oml-{cid}-agent")  # the first agent hangs up: bob takes the caller
    record = wait_event(ana, cid, "call.transferred")
    assert record["state"] == "bridged" and record["current_agent"] == bob.agent_id
    assert bob.hangup() == {"status": "OK"}
    bob.wait_call(cid, ("ended",), 5)
    assert_nothing_left(lab)


def test_consulted_agent_does_not_answer(agents, world, lab, phones, server):
    ana, dan = agents["ana"], agents["dan"]
    ana.register(phones["answer"])
    dan.register(phones["noanswer"])
    call, _ = bridged_call(ana, world, lab, "5551022")
    cid = call["id"]
    assert command(server, ana, CONSULT + "start/",
                   {"call_id": cid, "target_agent_id": dan.agent_id})[0] == 202
    record = wait_event(ana, cid, "call.consult_failed", timeout=TRANSFER_TIMEOUT + 5)
    assert events(record, "call.consult_failed")[0]["reason"] == "target_no_answer"
    wait_until(lambda: bridge_channels(lab, f"oml-{cid}") ==
               {f"oml-{cid}-contact", f"oml-{cid}-agent"}, 3, "caller back with the agent")
    assert agent_session_row(server.env["DATABASE_URL"], dan.agent_id)["on_call"] == 0
    assert ana.hangup() == {"status": "OK"}
    ana.wait_call(cid, ("ended",), 5)
    assert_nothing_left(lab)


# -- three-way (§2 3way) ----------------------------------------------------------------------

def test_three_way_then_the_agent_leaves(agents, world, lab, phones, server):
    ana, bob = agents["ana"], agents["bob"]
    ana.register(phones["answer"])
    bob.register(phones["answer"])
    call, _ = bridged_call(ana, world, lab, "5551030")
    cid = call["id"]
    contact, agent_leg = f"oml-{cid}-contact", f"oml-{cid}-agent"
    status, body = command(server, ana, "/api/v1/transfer/3way/",
                           {"call_id": cid, "endpoint": bob.ext})
    expected = queued(body, endpoint=bob.ext)
    del expected["message"]  # OMniLeads' 3way answers without it
    assert (status, body) == (202, expected)
    record = wait_event(ana, cid, "call.third_party_joined")
    [third] = [l["channel"] for l in record["legs"] if l["role"] == "third_party"]
    assert bridge_channels(lab, f"oml-{cid}") == {contact, agent_leg, third}
    lab.ari.hangup(agent_leg)  # the agent leaves: caller and bob go on
    record = wait_event(ana, cid, "call.agent_left")
    assert record["state"] == "bridged" and record["current_agent"] == bob.agent_id
    wait_until(lambda: bridge_channels(lab, f"oml-{cid}") == {contact, third}, 3, "two left")
    assert agent_session_row(server.env["DATABASE_URL"], ana.agent_id)["on_call"] == 0
    assert bob.hangup() == {"status": "OK"}
    bob.wait_call(cid, ("ended",), 5)
    assert_nothing_left(lab)


def test_three_way_the_caller_and_then_the_third_party_leave(agents, world, lab, phones, server):
    ana = agents["ana"]
    ana.register(phones["answer"])
    call, _ = bridged_call(ana, world, lab, "5551031")
    cid = call["id"]
    contact, agent_leg = f"oml-{cid}-contact", f"oml-{cid}-agent"
    assert command(server, ana, "/api/v1/transfer/3way/",
                   {"call_id": cid, "endpoint": "5553000"})[0] == 202
    record = wait_event(ana, cid, "call.third_party_joined")
    [third] = [l["channel"] for l in record["legs"] if l["role"] == "third_party"]
    lab.ari.hangup(contact)  # the caller leaves: agent and third party go on
    record = wait_event(ana, cid, "call.contact_left")
    assert record["state"] == "bridged"
    wait_until(lambda: bridge_channels(lab, f"oml-{cid}") == {agent_leg, third}, 3, "two left")
    lab.ari.hangup(third)  # the last two: the call ends
    ended = ana.wait_call(cid, ("ended",), 5)
    assert ended["reason"] == "contact_hangup"
    assert_nothing_left(lab)


def test_three_way_the_third_party_leaves(agents, world, lab, phones, server):
    ana = agents["ana"]
    ana.register(phones["answer"])
    call, _ = bridged_call(ana, world, lab, "5551032")
    cid = call["id"]
    assert command(server, ana, "/api/v1/transfer/3way/",
                   {"call_id": cid, "endpoint": "5553001"})[0] == 202
    record = wait_event(ana, cid, "call.third_party_joined")
    [third] = [l["channel"] for l in record["legs"] if l["role"] == "third_party"]
    lab.ari.hangup(third)
    wait_event(ana, cid, "call.third_party_left")
    assert bridge_channels(lab, f"oml-{cid}") == {f"oml-{cid}-contact", f"oml-{cid}-agent"}
    assert ana.hangup() == {"status": "OK"}
    ana.wait_call(cid, ("ended",), 5)
    assert_nothing_left(lab)


# -- the voicebot hand-off --------------------------------------------------------------------

def _disposition_option_and_contact(server, campaign_id):
    path = server.env["DATABASE_URL"][len("sqlite:///"):]
    with sqlite3.connect(path, timeout=5) as conn:
        database_id = conn.execute("SELECT database_id FROM campaigns WHERE id = ?",
                                   (campaign_id,)).fetchone()[0]
        option = conn.execute("INSERT INTO disposition_options (campaign_id, name, type, hidden) "
                              "VALUES (?, 'Derivado a humano', 'no_action', 0)", (campaign_id,)).lastrowid
        contact = conn.execute(
            "INSERT INTO contacts (database_id, main_phone, data, created_at) "
            "VALUES (?, '5557777', '{}', CURRENT_TIMESTAMP)", (database_id,)).lastrowid
    return option, contact


def test_voicebot_hands_the_caller_to_a_human(agents, world, lab, phones, server, workdir):
    bot, human = agents["gus"], agents["hal"]
    campaign = world.campaigns["inbound"]
    ready(bot, phones["bot"])
    human.register(phones["answer"])
    option, contact = _disposition_option_and_contact(server, campaign)
    log_dir = os.path.join(workdir, "caller-voicebot")
    os.makedirs(log_dir, exist_ok=True)
    peer = caller(lab, campaign, log_dir)
    try:
        # the bot answered and read the call's id from its INVITE
        def bot_line():
            for path in glob.glob(os.path.join(phones["bot"].log_dir, "*_logs.log")):
                lines = [l for l in open(path, errors="replace") if l.startswith("BOT ")]
                if lines:
                    return lines[-1]
            return None
        wait_until(lambda: bot_line() is not None, 5, "the bot answered")
        fields = dict(kv.split("=", 1) for kv in bot_line().split()[1:])
        call_id = fields["call_id"]
        bot.wait_call(call_id, ("bridged",), 5)
        # the bot files its disposition, then hands over to a human of the campaign
        r = server.http.post(server.url + "/api/v1/disposition/", timeout=10,
                             headers={"Authorization": f"Bearer {bot.token}"},
                             json={"idContact": contact, "idDispositionOption": option,
                                   "callid": call_id, "comments": "bot"})
        assert r.status_code == 201, r.text
        assert human.session("login") == {"status": "OK"}
        status, body = command(server, bot, "/api/v1/transfer/blind-campaign-agent/",
                               {"call_id": call_id, "campaign_id": campaign})
        assert (status, body) == (202, queued(body, target_agent_id=human.agent_id,
                                              campaign_id=campaign))
        record = wait_event(human, call_id, "call.transferred")
        assert record["current_agent"] == human.agent_id
        [target] = [l for l in record["legs"] if l["role"] == "transfer_target"]
        caller_leg = record["contact_channel_id"]
        assert bridge_channels(lab, f"oml-{call_id}") == {caller_leg, target["channel"]}
        bot_legs = [l for l in record["legs"] if l["role"] == "agent"]
        assert bot_legs and all(l["state"] != "live" for l in bot_legs)
        assert not any(c["id"] == bot_legs[0]["channel"] for c in lab.ari.channels())
        assert human.hangup() == {"status": "OK"}
        wait_until(lambda: not peer.alive(), 5, "caller got BYE")
        assert_nothing_left(lab)
    finally:
        peer.stop()


# -- Asterisk restart mid-transfer (last: it disturbs everything) -----------------------------

def test_asterisk_restart_mid_transfer(agents, world, lab, phones, server):
    ana, dan = agents["ana"], agents["dan"]
    ana.register(phones["answer"])
    dan.register(phones["noanswer"])
    call, _ = bridged_call(ana, world, lab, "5551012")
    cid = call["id"]
    assert command(server, ana, "/api/v1/transfer/blind-agent/",
                   {"call_id": cid, "target_agent_id": dan.agent_id})[0] == 202
    wait_until(lambda: any("transfer_target" in c["id"] for c in lab.ari.channels()), 3,
               "target ringing")
    env = lab._env()
    subprocess.run([LAB_SH, "stop", lab.dir], env=env, capture_output=True, timeout=30, check=True)
    subprocess.run([LAB_SH, "start", lab.dir], env=env, capture_output=True, timeout=30, check=True)
    ended = ana.wait_call(cid, ("ended", "failed"), 10)
    assert ended["reason"] == "asterisk_lost", ended

    def engine_back():
        return server.http.get(server.url + "/api/v1/health/", timeout=2).json()["ari"] == "ok"
    wait_until(engine_back, 8, "engine reconnected")
    assert_nothing_left(lab)
    for name in ("ana", "dan"):
        assert agent_session_row(server.env["DATABASE_URL"], agents[name].agent_id)["on_call"] == 0
