"""Stasis(<app>,outbound,<number>) from an agent's phone (ari_engine/handoff.py Outbound)."""
from ari_engine.handoff import Outbound
from oml_server.extensions import db
from oml_server.models import AgentSession, Call

from .test_engine_flows import SETTINGS, FakeAri, engine_for, ev, feed


def start(flow, channel_id, extension, number):
    return flow.start({"type": "StasisStart", "args": ["outbound", number],
                       "channel": {"id": channel_id, "name": f"PJSIP/{extension}-00000001",
                                   "state": "Ring"}})


def test_agent_dials_a_number_and_it_is_bridged(app, make):
    ari = FakeAri()
    agent = make.agent(sip_extension=1101).agent
    flow = Outbound(engine_for(ari), SETTINGS)
    call_id = start(flow, "asterisk-chan-1", "1101", "3515550000")
    call = db.session.get(Call, call_id)
    assert (call.kind, call.agent_id, call.number) == ("outbound", agent.id, "3515550000")
    assert db.session.get(AgentSession, agent.id).on_call is True
    call = feed(flow, call_id, {}, ev("StasisStart", "asterisk-chan-1", state="Ring"))
    assert ari.names()[0] == "answer"  # the agent's own channel is answered first
    assert call.state in ("contact_ringing", "bridged")
    assert any(r[0] in ("channel_create", "originate") and r[1][0] == "PJSIP/3515550000@trunk"
               for r in ari.requests)


def test_second_call_from_a_busy_agent_is_refused(app, make):
    ari = FakeAri()
    make.agent(sip_extension=1102)
    flow = Outbound(engine_for(ari), SETTINGS)
    assert start(flow, "chan-a", "1102", "3515550001") is not None
    assert start(flow, "chan-b", "1102", "3515550002") is None
    assert ("hangup", ("chan-b",), {"reason": "busy"}) in ari.requests
    assert db.session.query(Call).count() == 1


def test_unknown_phone_is_hung_up(app, make):
    ari = FakeAri()
    flow = Outbound(engine_for(ari), SETTINGS)
    assert start(flow, "chan-x", "9999", "3515550003") is None
    assert "chan-x" in ari.hung_up()
