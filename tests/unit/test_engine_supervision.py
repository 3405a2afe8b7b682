"""Spy, whisper, barge and take-call (ari_engine/supervision.py) on a bridged click-to-call
replayed from the lab recording, through the real dispatcher, against a fake ARI. Who hears
whom with real audio is proven against the lab in tests/integration/test_supervision_audio.py."""
import pytest

from ari_engine import ids
from ari_engine.supervision import Supervision, snoop_channel, spy_bridge
from oml_server.extensions import db
from oml_server.models import AgentSession, CallLeg
from oml_server.services import supervision as supervision_service
from oml_server.services import users
from sqlalchemy import select

from tests.unit.test_engine_replay import (FakeAri, Harness, event_types, fresh, live_legs,
                                           online, rest_click_to_call)


class SupervisionAri(FakeAri):
    app = "omnileads"

    def __getattr__(self, name):
        if name == "bridge_remove_channel":
            return lambda *a, **k: self._do(name, *a, **k)
        return super().__getattr__(name)


class SupervisedHarness(Harness):
    def __init__(self, app):
        super().__init__(app)
        self.ari = SupervisionAri()
        self.presence.ari = self.backend.ari = self.ari
        for flow in self.flows.values():
            flow.ari = self.ari
        self.flows["supervision"] = Supervision(self)
        self.dispatcher.flows = self.flows
        self.dispatcher.side_flows = {"supervisor": self.flows["supervision"],
                                      "snoop": self.flows["supervision"]}
        self.backend.engine_ready = lambda: True


def channel_event(kind, channel_id, args=None, **extra):
    event = {"type": kind, "channel": {"id": channel_id, "state": "Up"}, **extra}
    if args is not None:
        event["args"] = args
    return event


@pytest.fixture
def bridged(app, make):
    """A bridged click-to-call of agent 1001, and a supervisor of its campaign with a phone."""
    engine = SupervisedHarness(app)
    agent = online(make, "1001")
    call_id = rest_click_to_call(engine, agent)
    engine.replay("click_to_call-contact_hangup", call_id,
                  stop=lambda e: e["type"] == "ChannelHangupRequest")
    assert fresh(call_id).state == "bridged"
    supervisor = make.user("Supervisor")
    phone = users.ensure_supervisor_phone(supervisor, "1101")
    db.session.commit()
    return engine, call_id, agent, phone


def supervise(engine, call_id, phone, mode):
    """What action_on_agent does, then the supervisor's phone answering."""
    engine.backend.supervise(fresh(call_id), phone, mode)
    channel = [c for c in engine.ari.originated() if c and "-supervisor-" in c][-1]
    originate = [r for r in engine.ari.requests if r[0] == "originate"][-1]
    assert originate[1][0] == "PJSIP/1101"
    engine.feed(channel_event("StasisStart", channel, originate[2]["appArgs"].split(",")))
    return channel


def requests_after(engine, start):
    return engine.ari.requests[start:]


@pytest.mark.parametrize("mode,whisper", [("spy", "none"), ("whisper", "out")])
def test_spy_and_whisper_snoop_the_agent_into_a_bridge_of_their_own(bridged, mode, whisper):
    engine, call_id, agent, phone = bridged
    start = len(engine.ari.requests)
    sup = supervise(engine, call_id, phone, mode)
    attempt = sup.rsplit("-", 1)[1]
    snoop, bridge = snoop_channel(call_id, attempt), spy_bridge(call_id, attempt)
    done = requests_after(engine, start)
    snoops = [r for r in done if r[0] == "request" and r[1][1].endswith("/snoop")]
    assert snoops == [("request", ("POST", f"/channels/{ids.agent_channel(call_id)}/snoop",
                                   {"app": "omnileads", "appArgs": f"snoop,{call_id}",
                                    "snoopId": snoop, "spy": "both", "whisper": whisper}), {})]
    assert ("bridge_create", (bridge,), {"type": "mixing"}) in done
    assert ("bridge_add_channel", (bridge, [snoop, sup]), {}) in done
    # Nobody was added to the call's own bridge: the contact cannot hear the supervisor.
    assert not [r for r in done if r[0] == "bridge_add_channel" and r[1][0] == ids.bridge(call_id)]
    assert {sup, snoop, bridge} <= set(live_legs(call_id))
    assert "call.supervision_started" in event_types(call_id)
    # The supervisor hangs up: its snoop and bridge go, the call goes on.
    engine.feed(channel_event("StasisEnd", sup))
    assert snoop in engine.ari.hung_up()
    assert ("bridge_destroy", (bridge,), {}) in engine.ari.requests
    assert fresh(call_id).state == "bridged"
    assert not {sup, snoop, bridge} & set(live_legs(call_id))


def test_barge_joins_the_call_bridge_and_the_call_ending_hangs_up_the_supervisor(bridged):
    engine, call_id, agent, phone = bridged
    start = len(engine.ari.requests)
    sup = supervise(engine, call_id, phone, "barge")
    assert ("bridge_add_channel", (ids.bridge(call_id), sup), {}) in requests_after(engine, start)
    engine.feed(channel_event("StasisEnd", ids.contact_channel(call_id)))
    assert fresh(call_id).state == "ended"
    assert sup in engine.ari.hung_up()


def test_take_call_frees_the_agent_and_the_call_is_the_supervisors(bridged, make):
    engine, call_id, agent, phone = bridged
    sup = supervise(engine, call_id, phone, "take_call")
    agent_leg = ids.agent_channel(call_id)
    assert ("bridge_add_channel", (ids.bridge(call_id), sup), {}) in engine.ari.requests
    assert agent_leg in engine.ari.hung_up()
    engine.feed(channel_event("StasisEnd", agent_leg))
    engine.feed(channel_event("ChannelDestroyed", agent_leg, cause=16))
    call = fresh(call_id)
    assert (call.state, call.agent_id, call.active_agent_id, call.agent_channel_id) == \
        ("bridged", agent.id, None, sup)
    assert db.session.get(AgentSession, agent.id).on_call is False
    assert ids.contact_channel(call_id) not in engine.ari.hung_up()
    assert "call.taken_over" in event_types(call_id)
    # The supervisor hangs up: the call ends and the contact is hung up.
    engine.feed(channel_event("StasisEnd", sup))
    call = fresh(call_id)
    assert (call.state, call.reason) == ("ended", "agent_hangup")
    assert ids.contact_channel(call_id) in engine.ari.hung_up()


def test_a_taken_call_ending_does_not_free_the_agent_from_its_next_call(bridged, make):
    engine, call_id, agent, phone = bridged
    supervise(engine, call_id, phone, "take_call")
    next_call = rest_click_to_call(engine, agent)  # the freed agent is on a new call
    assert db.session.get(AgentSession, agent.id).on_call is True
    engine.feed(channel_event("StasisEnd", ids.contact_channel(call_id)))
    assert fresh(call_id).state == "ended"
    db.session.expire_all()
    assert db.session.get(AgentSession, agent.id).on_call is True
    assert fresh(next_call).active_agent_id == agent.id


def test_supervisor_answering_after_the_call_ended_is_hung_up(bridged):
    engine, call_id, agent, phone = bridged
    engine.backend.supervise(fresh(call_id), phone, "spy")
    sup = [c for c in engine.ari.originated() if c and "-supervisor-" in c][-1]
    engine.feed(channel_event("StasisEnd", ids.contact_channel(call_id)))
    engine.feed(channel_event("StasisStart", sup, ["supervision", call_id, "spy", "1"]))
    assert sup in engine.ari.hung_up()
    assert not [r for r in engine.ari.requests if r[0] == "request" and r[1][1].endswith("/snoop")]


def test_action_on_agent_rings_the_supervisor_through_the_engine(bridged, client, make):
    engine, call_id, agent, phone = bridged
    from oml_server.services import telephony
    previous = telephony.set_backend(engine.backend)
    try:
        campaign = make.campaign(agents=[agent.user], supervisors=[phone.user])
        fresh(call_id).campaign_id = campaign.id
        db.session.commit()
        response = client.post(f"/api/v1/supervision/action_on_agent/{agent.id}/",
                               json={"accion": "CHANSPY"}, headers=make.headers(phone.user))
        assert response.get_json() == {"status": "OK"}
    finally:
        telephony.set_backend(previous)
    legs = db.session.scalars(select(CallLeg).where(CallLeg.call_id == call_id,
                                                    CallLeg.role == "supervisor")).all()
    assert len(legs) == 1 and legs[0].asterisk_id in engine.ari.originated()
    assert supervision_service.live_call_of(agent.id).id == call_id
