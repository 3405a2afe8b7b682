"""The engine's side of in-call commands (issue 9) on the production path — dispatcher,
call worker, CallControl, the flows — with the fake ARI of test_engine_replay: a recorded
click-to-call brought to `bridged`, then commands and the target's events. The real Asterisk
runs the same in tests/integration/test_call_control.py."""
import gevent
import pytest

from ari_engine import ids
from oml_server.extensions import db
from oml_server.models import AgentSession

from .test_engine_replay import (Harness, event_types, fresh, live_legs, online,
                                 rest_click_to_call)


@pytest.fixture
def engine(app):
    # Workers leave a call after 10 ms: every command below reaches a call from its rows.
    return Harness(app, idle_seconds=0.01)


def bridged(engine, make):
    ana = online(make, "1001")
    call_id = rest_click_to_call(engine, ana)
    engine.replay("click_to_call-contact_hangup", call_id,
                  stop=lambda e: e["type"] == "ChannelHangupRequest")
    assert fresh(call_id).state == "bridged"
    engine.ari.requests.clear()
    return ana, call_id


def command(engine, call_id, name, **params):
    engine.settle()
    engine.dispatcher.enqueue(call_id, {"type": "OmlCommand", "command": name,
                                        "params": params})
    engine.settle()


def test_hold_parks_the_caller_in_the_holding_bridge_with_music(engine, make):
    _, call_id = bridged(engine, make)
    hold, contact = f"oml-{call_id}-hold", ids.contact_channel(call_id)
    command(engine, call_id, "hold")
    assert [r[:2] for r in engine.ari.requests] == [
        ("bridge_create", (hold,)), ("bridge_start_moh", (hold,)),
        ("bridge_add_channel", (hold, contact))]
    assert hold in live_legs(call_id)
    command(engine, call_id, "hold")  # already held: nothing more
    command(engine, call_id, "unhold")
    assert engine.ari.requests[-1][:2] == ("bridge_add_channel", (ids.bridge(call_id), contact))
    assert event_types(call_id)[-2:] == ["call.held", "call.unheld"]


def test_a_second_hold_after_the_calls_worker_left_uses_the_same_holding_bridge(engine, make):
    """The holding bridge outlives the worker that created it (a quiet call's worker leaves):
    the next hold, from a new worker, puts the caller in it again (Asterisk 16 refuses to create
    an existing bridge: the hold failed, the caller stayed with the agent), and starts the
    music again (Asterisk stopped it when the caller left)."""
    _, call_id = bridged(engine, make)
    hold, contact = f"oml-{call_id}-hold", ids.contact_channel(call_id)
    command(engine, call_id, "hold")
    command(engine, call_id, "unhold")
    wait_for_no_worker(engine, call_id)
    engine.ari.requests.clear()
    command(engine, call_id, "hold")
    assert [r[:2] for r in engine.ari.requests if r[0] != "bridge"][-3:] == [
        ("bridge_create", (hold,)), ("bridge_start_moh", (hold,)),
        ("bridge_add_channel", (hold, contact))]
    assert event_types(call_id)[-3:] == ["call.held", "call.unheld", "call.held"]


def wait_for_no_worker(engine, call_id):
    for _ in range(100):
        if call_id not in engine.dispatcher.workers:
            return
        gevent.sleep(0.01)
    raise AssertionError("the call's worker did not leave")


def test_blind_transfer_moves_the_call_to_the_target(engine, make):
    ana, call_id = bridged(engine, make)
    bob = online(make, "1002")
    command(engine, call_id, "transfer", mode="agent", target_agent_id=bob.id)
    [originate] = [r for r in engine.ari.requests if r[0] == "originate"]
    target = originate[2]["channelId"]
    assert originate[1][0] == "PJSIP/1002"
    assert originate[2]["appArgs"] == f"transfer_target,{call_id}"
    assert originate[2]["variables"]["PJSIP_HEADER(add,X-OML-Origin)"] == "transfer"
    assert ids.agent_channel(call_id) in engine.ari.hung_up()
    call = fresh(call_id)
    assert (call.active_agent_id, call.agent_channel_id) == (bob.id, target)
    assert db.session.get(AgentSession, ana.id).on_call is False
    assert db.session.get(AgentSession, bob.id).on_call is True
    # The old agent leg goes: the call goes on.
    engine.feed({"type": "StasisEnd", "channel": {"id": ids.agent_channel(call_id)}})
    engine.feed({"type": "ChannelDestroyed", "cause": 16,
                 "channel": {"id": ids.agent_channel(call_id)}})
    assert fresh(call_id).state == "bridged"
    # The caller waits in the call's bridge with music (never alone with a recorder there).
    assert ("bridge_start_moh", (ids.bridge(call_id),), {}) in engine.ari.requests
    assert not [r for r in engine.ari.requests if r[0] == "bridge_add_channel"
                and r[1][1] == ids.contact_channel(call_id)]
    # The target answers: the music stops and it joins the call's bridge.
    engine.feed({"type": "StasisStart", "args": ["transfer_target", call_id],
                 "channel": {"id": target, "state": "Up"}})
    added = [r[1] for r in engine.ari.requests if r[0] == "bridge_add_channel"]
    assert (ids.bridge(call_id), target) in added
    assert ("bridge_stop_moh", (ids.bridge(call_id),), {}) in engine.ari.requests
    assert "call.transferred" in event_types(call_id)
    # The new agent hangs up: the call ends as an agent hang-up, everyone free.
    engine.feed({"type": "StasisEnd", "channel": {"id": target}})
    call = fresh(call_id)
    assert (call.state, call.reason) == ("ended", "agent_hangup")
    assert db.session.get(AgentSession, bob.id).on_call is False
    assert live_legs(call_id) == []


def test_consultation_keeps_the_caller_in_the_calls_bridge(engine, make):
    """The caller never leaves the call's bridge during a consultation (a recording of the
    bridge goes on); a hold meanwhile is only noted; cancel brings the agent back, music off."""
    _, call_id = bridged(engine, make)
    bob = online(make, "1002")
    bridge, consult = ids.bridge(call_id), f"oml-{call_id}-consult"
    agent, contact = ids.agent_channel(call_id), ids.contact_channel(call_id)
    command(engine, call_id, "consult_start", target_agent_id=bob.id)
    [originate] = [r for r in engine.ari.requests if r[0] == "originate"]
    target = originate[2]["channelId"]
    assert ("bridge_start_moh", (bridge,), {}) in engine.ari.requests
    assert ("bridge_add_channel", (consult, agent)) in [r[:2] for r in engine.ari.requests]
    command(engine, call_id, "hold")
    engine.feed({"type": "StasisStart", "args": ["consult", call_id],
                 "channel": {"id": target, "state": "Up"}})
    assert ("bridge_add_channel", (consult, target)) in [r[:2] for r in engine.ari.requests]
    assert not [r for r in engine.ari.requests if r[0] == "bridge_add_channel"
                and contact in r[1]]
    assert not [r for r in engine.ari.requests if r[0] == "bridge_create"
                and r[1][0].endswith("-hold")]
    engine.ari.requests.clear()
    command(engine, call_id, "consult_cancel")
    assert ("bridge_add_channel", (bridge, agent)) in [r[:2] for r in engine.ari.requests]
    assert ("bridge_stop_moh", (bridge,), {}) in engine.ari.requests
    assert target in engine.ari.hung_up()
    assert event_types(call_id)[-2:] == ["call.consult_cancelled", "call.unheld"]


def test_the_consult_bridge_is_kept_until_the_call_ends(engine, make):
    """Neither a cancelled nor a completed consultation destroys its bridge while a channel may
    still be leaving it (Asterisk can then list a bridge nobody can destroy: call_bridges); a
    second consultation, from another worker, uses it again; the call's end destroys it."""
    _, call_id = bridged(engine, make)
    bob, cid = online(make, "1002"), online(make, "1003")
    consult, agent = f"oml-{call_id}-consult", ids.agent_channel(call_id)
    command(engine, call_id, "consult_start", target_agent_id=bob.id)
    command(engine, call_id, "consult_cancel")
    wait_for_no_worker(engine, call_id)
    command(engine, call_id, "consult_start", target_agent_id=cid.id)
    assert [r[1] for r in engine.ari.requests if r[0] == "bridge_add_channel"].count(
        (consult, agent)) == 2
    target = engine.ari.originated()[-1]
    engine.feed({"type": "StasisStart", "args": ["consult", call_id],
                 "channel": {"id": target, "state": "Up"}})
    command(engine, call_id, "consult_complete")
    assert "call.transferred" in event_types(call_id)
    assert "bridge_destroy" not in engine.ari.names()
    engine.feed({"type": "StasisEnd", "channel": {"id": target}})
    assert fresh(call_id).state == "ended"
    assert ("bridge_destroy", (consult,), {}) in engine.ari.requests


def test_a_held_call_consulted_waits_in_its_own_bridge(engine, make):
    """A consultation started on a held call brings the caller back from the holding bridge
    into the call's (music there); when it is over the call is not held any more."""
    _, call_id = bridged(engine, make)
    bob = online(make, "1002")
    bridge, contact = ids.bridge(call_id), ids.contact_channel(call_id)
    command(engine, call_id, "hold")
    engine.ari.requests.clear()
    command(engine, call_id, "consult_start", target_agent_id=bob.id)
    calls = [r[:2] for r in engine.ari.requests]
    assert calls.index(("bridge_add_channel", (bridge, contact))) < \
        calls.index(("bridge_start_moh", (bridge,)))
    command(engine, call_id, "consult_cancel")
    assert event_types(call_id)[-2:] == ["call.consult_cancelled", "call.unheld"]
    command(engine, call_id, "hold")  # held again: the holding bridge as usual
    assert engine.ari.requests[-1][:2] == ("bridge_add_channel", (f"oml-{call_id}-hold", contact))


def test_target_not_answering_goes_back_to_the_transferring_agent(engine, make):
    ana, call_id = bridged(engine, make)
    bob = online(make, "1002")
    command(engine, call_id, "transfer", mode="agent", target_agent_id=bob.id)
    first = [r for r in engine.ari.requests if r[0] == "originate"][-1][2]["channelId"]
    engine.feed({"type": "ChannelDestroyed", "cause": 19, "channel": {"id": first}})
    back = [r for r in engine.ari.requests if r[0] == "originate"][-1]
    assert back[1][0] == "PJSIP/1001" and back[2]["channelId"] != first
    types = event_types(call_id)
    assert types.count("call.transfer_requested") == 2 and "call.transfer_failed" in types
    call = fresh(call_id)
    assert (call.state, call.active_agent_id) == ("bridged", ana.id)
    assert db.session.get(AgentSession, bob.id).on_call is False


# -- recorded from the lab (tests/recordings/make_recordings.py) ------------------------------

def replay_transfer(engine, make, recording):
    """A recorded click-to-call transferred to bob (extension 1002) and finally hung up by
    bob's hangupCall; the recording's command line gets this run's target."""
    ana, bob = online(make, "1001"), online(make, "1002")
    call_id = rest_click_to_call(engine, ana)
    state = {"transferred": False, "hung": False}

    def before(event):
        if event["type"] == "OmlCommand":
            engine.dispatcher.enqueue(call_id, {"type": "OmlCommand", "command": "transfer",
                                                "params": {"mode": "agent",
                                                           "target_agent_id": bob.id}})
            engine.settle()
            state["transferred"] = True
        elif (state["transferred"] and not state["hung"]
              and event["type"] == "ChannelHangupRequest"
              and event["channel"]["id"].endswith("-contact")):
            state["hung"] = True  # the recording's end: the new agent's hangupCall
            engine.backend.hangup_call(fresh(call_id))
    engine.replay(recording, call_id, before=before)
    return ana, bob, call_id


def targets(engine):
    return [r[1][0] for r in engine.ari.requests
            if r[0] == "originate" and "transfer_target" in r[2]["appArgs"]]


def test_recorded_blind_transfer(engine, make):
    ana, bob, call_id = replay_transfer(engine, make,
                                        "click_to_call-transferred-hangup_requested")
    call = fresh(call_id)
    assert (call.state, call.reason, call.agent_id) == ("ended", "hangup_requested", bob.id)
    types = event_types(call_id)
    assert types.index("call.transfer_requested") < types.index("call.transferred")
    assert targets(engine) == ["PJSIP/1002"]
    assert live_legs(call_id) == []
    for agent in (ana, bob):
        assert db.session.get(AgentSession, agent.id).on_call is False


def test_recorded_transfer_not_answered_goes_back(engine, make):
    ana, bob, call_id = replay_transfer(
        engine, make, "click_to_call-transfer_failed-transferred-hangup_requested")
    call = fresh(call_id)
    # back with ana, who then hung up (the recording's hangupCall)
    assert (call.state, call.reason, call.agent_id) == ("ended", "hangup_requested", ana.id)
    assert targets(engine) == ["PJSIP/1002", "PJSIP/1001"]
    types = event_types(call_id)
    assert types.count("call.transfer_requested") == 2
    assert "call.transfer_failed" in types and types[-2] == "call.transferred"
    assert live_legs(call_id) == []
