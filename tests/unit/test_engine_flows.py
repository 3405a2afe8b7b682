"""The engine's call flows against a fake ARI (no Asterisk): the test feeds events, the fake
records the requests; the call rows and agent sessions are real (SQLite/PostgreSQL)."""
import uuid
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from ari_engine import call_store, ids, reasons, reconcile
from ari_engine.ari_client import AriError, AriNotFound
from ari_engine.click_to_call import ClickToCall
from ari_engine.handoff import Inbound
from oml_server.extensions import db
from oml_server.models import AgentSession, Call

SETTINGS = {"DIAL_TEMPLATE": "PJSIP/{number}@trunk", "CONTACT_ANSWER_TIMEOUT": 30,
            "AGENT_ANSWER_TIMEOUT": 20, "INBOUND_WAIT_SECONDS": 0}


class FakeAri:
    """Records every request as (name, args); `fail[name] = exc` makes that request raise.
    `channels_up` / `bridges_up` are what GET /channels and /bridges answer."""

    def __init__(self):
        self.requests = []
        self.fail = {}
        self.channels_up, self.bridges_up = [], []

    def _do(self, name, *args, **kwargs):
        self.requests.append((name, args, kwargs))
        if name in self.fail:
            raise self.fail[name]

    def __getattr__(self, name):
        if name in ("bridge_create", "bridge_add_channel", "channel_create", "dial", "hangup",
                    "bridge_destroy", "originate", "answer", "ring", "ring_stop", "request",
                    "device_state_put"):
            return lambda *a, **k: self._do(name, *a, **k)
        raise AttributeError(name)

    def channels(self):
        return [{"id": c} for c in self.channels_up]

    def bridges(self):
        return [{"id": b} for b in self.bridges_up]

    def names(self):
        return [r[0] for r in self.requests]

    def hung_up(self):
        return [r[1][0] for r in self.requests if r[0] == "hangup"]


@pytest.fixture
def ari():
    return FakeAri()


def new_call(agent=None, state="agent_ringing", kind="click_to_call", **fields):
    call_id = uuid.uuid4().hex
    call = Call(id=call_id, kind=kind, state=state, number="5551234",
                agent_id=agent.id if agent else None, active_agent_id=agent.id if agent else None,
                agent_channel_id=ids.agent_channel(call_id) if kind == "click_to_call" else None,
                **fields)
    db.session.add(call)
    if agent is not None:
        session = db.session.get(AgentSession, agent.id) or AgentSession(agent_id=agent.id)
        session.on_call = True
        db.session.add(session)
    db.session.commit()
    return call_id


def ev(type_, channel_id=None, **extra):
    event = {"type": type_, **extra}
    if channel_id:
        event["channel"] = {"id": channel_id, "state": extra.pop("state", "Up")}
    return event


def feed(flow, call_id, memo, *events):
    for event in events:
        flow.handle(call_store.get(call_id), event, memo)
    db.session.expire_all()
    return call_store.get(call_id)


# -- reasons ----------------------------------------------------------------------------------

@pytest.mark.parametrize("state,agent_leg,cause,dialstatus,expected", [
    ("bridged", True, 16, None, ("ended", "agent_hangup")),
    ("bridged", False, 16, None, ("ended", "contact_hangup")),
    ("agent_ringing", True, 0, None, ("failed", "agent_no_answer")),
    ("agent_ringing", True, None, None, ("failed", "agent_no_answer")),
    ("agent_ringing", True, 21, None, ("failed", "agent_rejected")),
    ("agent_ringing", True, 17, None, ("failed", "agent_rejected")),
    ("agent_ringing", True, 34, None, ("failed", "agent_unreachable")),
    ("contact_ringing", True, 16, None, ("failed", "agent_hangup")),
    ("contact_ringing", False, 17, "BUSY", ("failed", "contact_busy")),
    ("contact_ringing", False, 17, None, ("failed", "contact_busy")),
    ("contact_ringing", False, 0, "NOANSWER", ("failed", "contact_no_answer")),
    ("contact_ringing", False, 34, "CHANUNAVAIL", ("failed", "contact_unreachable")),
])
def test_reason_for_a_leg_gone(state, agent_leg, cause, dialstatus, expected):
    assert reasons.for_leg_gone(state, agent_leg, cause, dialstatus) == expected


def test_soft_hangup_flags_are_not_q850_causes():
    memo = {}
    reasons.note_hangup(memo, "x", {"type": "ChannelHangupRequest", "cause": 16, "soft": True})
    assert memo == {}  # ARI DELETE (AST_SOFTHANGUP_EXPLICIT), not "normal clearing"
    reasons.note_hangup(memo, "x", {"type": "ChannelHangupRequest", "cause": 4, "soft": True})
    assert memo == {"shutdown": True}
    reasons.note_hangup(memo, "x", {"type": "ChannelDestroyed", "cause": 17})
    assert memo["causes"] == {"x": 17}
    assert reasons.for_leg_gone("bridged", True, 16, shutdown=True) == ("ended", "asterisk_lost")
    assert reasons.for_leg_gone("contact_ringing", False, shutdown=True) == ("failed", "asterisk_lost")


# -- click-to-call ----------------------------------------------------------------------------

def test_click_to_call_bridges_then_agent_hangs_up(app, make, ari):
    agent = make.agent().agent
    call_id = new_call(agent)
    flow, memo = ClickToCall(ari, SETTINGS), {}
    agent_leg, contact_leg, bridge = (ids.agent_channel(call_id), ids.contact_channel(call_id),
                                      ids.bridge(call_id))
    call = feed(flow, call_id, memo, ev("StasisStart", agent_leg))
    assert call.state == "contact_ringing" and call.bridge_id == bridge
    assert call.contact_channel_id == contact_leg and call.agent_answered_at is not None
    # The agent hears a ringing tone in the bridge while the contact is originated.
    assert ari.names() == ["bridge_create", "bridge_add_channel", "request", "originate"]
    assert ari.requests[2][1][2] == {"media": "tone:ring"}
    assert ari.requests[3][1] == ("PJSIP/5551234@trunk",)
    assert ari.requests[3][2]["timeout"] == 30 and ari.requests[3][2]["channelId"] == contact_leg

    call = feed(flow, call_id, memo, {"type": "Dial", "peer": {"id": contact_leg},
                                      "dialstatus": "RINGING"},
                ev("ChannelStateChange", contact_leg, state="Up"))
    assert call.state == "contact_ringing" and len(ari.requests) == 4
    call = feed(flow, call_id, memo, ev("StasisStart", contact_leg))
    assert ari.requests[-1] == ("bridge_add_channel", (bridge, contact_leg), {})
    assert call.state == "contact_ringing"  # not until the contact is really in the bridge
    call = feed(flow, call_id, memo, ev("ChannelEnteredBridge", contact_leg))
    assert call.state == "bridged" and call.bridged_at is not None
    assert ari.requests[-1][1][0] == "DELETE"  # ringback stopped

    call = feed(flow, call_id, memo, ev("ChannelHangupRequest", agent_leg, cause=16),
                ev("StasisEnd", agent_leg))
    assert (call.state, call.reason, call.active_agent_id) == ("ended", "agent_hangup", None)
    assert contact_leg in ari.hung_up() and ("bridge_destroy", (bridge,), {}) in ari.requests
    assert db.session.get(AgentSession, agent.id).on_call is False

    # The other leg's own events afterwards change nothing.
    before = len(ari.requests)
    call = feed(flow, call_id, memo, ev("StasisEnd", contact_leg), ev("ChannelDestroyed", contact_leg, cause=16))
    assert (call.state, call.reason) == ("ended", "agent_hangup") and len(ari.requests) == before


def test_contact_hangs_up_ends_the_agent_leg(app, make, ari):
    agent = make.agent().agent
    call_id = new_call(agent)
    flow, memo = ClickToCall(ari, SETTINGS), {}
    contact_leg = ids.contact_channel(call_id)
    feed(flow, call_id, memo, ev("StasisStart", ids.agent_channel(call_id)),
         ev("StasisStart", contact_leg), ev("ChannelEnteredBridge", contact_leg))
    call = feed(flow, call_id, memo, ev("StasisEnd", contact_leg))
    assert (call.state, call.reason) == ("ended", "contact_hangup")
    assert ids.agent_channel(call_id) in ari.hung_up()


def test_busy_contact(app, make, ari):
    agent = make.agent().agent
    call_id = new_call(agent)
    flow, memo = ClickToCall(ari, SETTINGS), {}
    contact_leg = ids.contact_channel(call_id)
    call = feed(flow, call_id, memo, ev("StasisStart", ids.agent_channel(call_id)),
                {"type": "Dial", "peer": {"id": contact_leg}, "dialstatus": "BUSY"},
                ev("ChannelHangupRequest", contact_leg, cause=17),
                ev("ChannelDestroyed", contact_leg, cause=17))
    assert (call.state, call.reason, call.hangup_cause) == ("failed", "contact_busy", 17)
    assert ids.agent_channel(call_id) in ari.hung_up()


@pytest.mark.parametrize("cause,reason", [(0, "agent_no_answer"), (21, "agent_rejected"),
                                          (17, "agent_rejected"), (38, "agent_unreachable")])
def test_agent_leg_never_answered(app, make, ari, cause, reason):
    agent = make.agent().agent
    call_id = new_call(agent)
    call = feed(ClickToCall(ari, SETTINGS), call_id, {},
                ev("ChannelDestroyed", ids.agent_channel(call_id), cause=cause))
    assert (call.state, call.reason) == ("failed", reason)
    assert "bridge_create" not in ari.names()
    assert db.session.get(AgentSession, agent.id).on_call is False


def test_contact_cannot_be_created(app, make, ari):
    agent = make.agent().agent
    call_id = new_call(agent)
    ari.fail["originate"] = AriError(500, "Allocation failed")
    call = feed(ClickToCall(ari, SETTINGS), call_id, {}, ev("StasisStart", ids.agent_channel(call_id)))
    assert (call.state, call.reason) == ("failed", "contact_unreachable")
    assert ids.agent_channel(call_id) in ari.hung_up() and "bridge_destroy" in ari.names()


def test_hung_up_before_the_agent_answered_is_not_bridged(app, make, ari):
    agent = make.agent().agent
    call_id = new_call(agent)
    call_store.finish(call_id, "failed", reasons.HANGUP_REQUESTED)
    call = feed(ClickToCall(ari, SETTINGS), call_id, {}, ev("StasisStart", ids.agent_channel(call_id)))
    assert call.reason == "hangup_requested"
    assert "originate" not in ari.names() and ids.agent_channel(call_id) in ari.hung_up()


def test_asterisk_shutdown_ends_with_asterisk_lost(app, make, ari):
    agent = make.agent().agent
    call_id = new_call(agent)
    flow, memo = ClickToCall(ari, SETTINGS), {}
    agent_leg = ids.agent_channel(call_id)
    contact_leg = ids.contact_channel(call_id)
    feed(flow, call_id, memo, ev("StasisStart", agent_leg), ev("StasisStart", contact_leg),
         ev("ChannelEnteredBridge", contact_leg))
    call = feed(flow, call_id, memo, ev("ChannelHangupRequest", agent_leg, cause=4, soft=True),
                ev("StasisEnd", agent_leg))
    assert (call.state, call.reason) == ("ended", "asterisk_lost")


# -- inbound ----------------------------------------------------------------------------------

def engine_for(ari):
    queued = []
    presence = SimpleNamespace(mirror=lambda agent_id: True)
    return SimpleNamespace(ari=ari, backend=SimpleNamespace(presence=presence),
                           dispatcher=SimpleNamespace(enqueue=lambda *a: queued.append(a)),
                           queued=queued)


def set_session(agent, **fields):
    session = db.session.get(AgentSession, agent.id) or AgentSession(agent_id=agent.id)
    values = {"online": True, "logged_in": True, "paused": False, "on_call": False}
    values.update(fields)
    for key, value in values.items():
        setattr(session, key, value)
    db.session.add(session)
    db.session.commit()


def test_inbound_rings_the_idlest_available_agent_and_retries(app, make, ari):
    users = [make.agent() for _ in range(6)]
    idle, newer, paused, logged_out, offline, busy = (u.agent for u in users)
    campaign = make.campaign(agents=users, type="inbound")
    now = datetime.now(timezone.utc)
    set_session(idle, idle_since=now - timedelta(minutes=10))
    set_session(newer, idle_since=now - timedelta(minutes=1))
    set_session(paused, paused=True, idle_since=now - timedelta(hours=1))
    set_session(logged_out, logged_in=False, idle_since=now - timedelta(hours=1))
    set_session(offline, online=False, idle_since=now - timedelta(hours=1))
    set_session(busy, on_call=True, idle_since=now - timedelta(hours=1))
    flow = Inbound(engine_for(ari), {**SETTINGS, "INBOUND_WAIT_SECONDS": 30})
    call_id = flow.start({"channel": {"id": "caller-1", "state": "Ring", "caller": {"number": "3511"}},
                          "args": ["inbound", str(campaign.id)]})
    memo = {}
    call = feed(flow, call_id, memo, ev("StasisStart", "caller-1", state="Ring"))
    originate = [r for r in ari.requests if r[0] == "originate"]
    assert originate[-1][1] == (f"PJSIP/{idle.sip_extension}",)
    assert call.agent_id == idle.id and call.state == "agent_ringing"
    assert db.session.get(AgentSession, idle.id).on_call is True
    first_leg = call.agent_channel_id

    # The first agent does not answer: freed, and the next one (newer) rings on a new channel.
    call = feed(flow, call_id, memo, ev("ChannelDestroyed", first_leg, cause=0))
    assert db.session.get(AgentSession, idle.id).on_call is False
    assert [r for r in ari.requests if r[0] == "originate"][-1][1] == (f"PJSIP/{newer.sip_extension}",)
    assert call.agent_id == newer.id and call.agent_channel_id != first_leg

    # It answers: caller answered and both bridged.
    call = feed(flow, call_id, memo, ev("StasisStart", call.agent_channel_id))
    assert call.state == "bridged"
    assert ("bridge_add_channel", (ids.bridge(call_id), ["caller-1", call.agent_channel_id]), {}) \
        in ari.requests

    # The caller hangs up: the agent leg goes too, and a caller re-entering Stasis changes nothing.
    agent_leg = call.agent_channel_id
    call = feed(flow, call_id, memo, ev("StasisEnd", "caller-1"))
    assert (call.state, call.reason) == ("ended", "contact_hangup") and agent_leg in ari.hung_up()
    before = len(ari.requests)
    feed(flow, call_id, memo, ev("StasisStart", "caller-1", state="Up"))
    assert len(ari.requests) == before


def test_inbound_with_nobody_available_returns_to_the_dialplan(app, make, ari):
    user = make.agent()
    campaign = make.campaign(agents=[user], type="inbound")
    set_session(user.agent, paused=True)
    engine = engine_for(ari)
    flow = Inbound(engine, SETTINGS)  # INBOUND_WAIT_SECONDS = 0: give up at once
    call_id = flow.start({"channel": {"id": "caller-2", "state": "Ring"},
                          "args": ["inbound", str(campaign.id)]})
    call = feed(flow, call_id, {}, ev("StasisStart", "caller-2", state="Ring"))
    assert (call.state, call.reason) == ("failed", "no_agent_available")
    assert ("request", ("POST", "/channels/caller-2/continue"), {}) in ari.requests
    assert "originate" not in ari.names()


# -- reconcile --------------------------------------------------------------------------------

def test_reconcile_ends_calls_whose_channels_are_gone_and_hangs_up_orphans(app, make, ari):
    agent_a, agent_b = make.agent().agent, make.agent().agent
    gone = new_call(agent_a, state="bridged")
    call_store.set_fields(gone, contact_channel_id=ids.contact_channel(gone), bridge_id=ids.bridge(gone))
    alive = new_call(agent_b, state="bridged")
    call_store.set_fields(alive, contact_channel_id=ids.contact_channel(alive), bridge_id=ids.bridge(alive))
    ari.channels_up = [ids.agent_channel(alive), ids.contact_channel(alive), "oml-deadbeef-agent",
                       "someone-elses"]
    ari.bridges_up = [ids.bridge(alive), "oml-deadbeef", "not-ours"]
    summary = reconcile.reconcile(ari)
    assert summary == {"calls_ended": 1, "calls_kept": 1, "channels_hung_up": 1,
                       "bridges_destroyed": 1}
    db.session.expire_all()
    assert (call_store.get(gone).state, call_store.get(gone).reason) == ("ended", "asterisk_lost")
    assert call_store.get(alive).state == "bridged"
    assert ari.hung_up() == ["oml-deadbeef-agent"]
    assert [r[1][0] for r in ari.requests if r[0] == "bridge_destroy"] == [ids.bridge(gone), "oml-deadbeef"]
    assert db.session.get(AgentSession, agent_a.id).on_call is False


def test_reconcile_treats_404_as_done(app, make, ari):
    ari.channels_up, ari.bridges_up = ["oml-abc-contact"], ["oml-abc"]
    ari.fail["hangup"] = AriNotFound(404, "Channel not found")
    ari.fail["bridge_destroy"] = AriNotFound(404, "Bridge not found")
    assert reconcile.reconcile(ari)["channels_hung_up"] == 1
