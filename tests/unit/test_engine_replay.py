"""The engine's production path — websocket dispatch, per-call workers, dialplan starters,
flows and the sweep — driven by event sequences recorded from the lab Asterisk
(tests/recordings/, made with tests/recordings/make_recordings.py) against a fake ARI that
records the engine's requests. The call rows, legs, agent sessions and events are real.
"""
import json
import os
import re
import uuid
from types import SimpleNamespace

import gevent
import pytest
from sqlalchemy import select

from ari_engine import call_store, ids, reasons, sweep
from ari_engine.ari_client import AriError, AriNotFound
from ari_engine.backend import AriBackend
from ari_engine.call_control import CallControl
from ari_engine.click_to_call import ClickToCall
from ari_engine.dispatcher import Dispatcher
from ari_engine.inbound import Inbound
from ari_engine.outbound import Outbound
from ari_engine.presence import Presence
from oml_server.extensions import db
from oml_server.models import AgentSession, Call, CallLeg, Event
from oml_server.services import telephony
from .statements_sent import is_postgresql, statements_of

RECORDINGS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "recordings")
SETTINGS = {"DIAL_TEMPLATE": "PJSIP/{number}@trunk", "CONTACT_ANSWER_TIMEOUT": 30,
            "AGENT_ANSWER_TIMEOUT": 20, "INBOUND_WAIT_SECONDS": 30, "SWEEP_GRACE_SECONDS": 0,
            "ASTERISK_NODE": "local"}


class FakeAri:
    """Records every request as (name, args, kwargs); `fail[name] = exc` makes it raise.
    `channels_up` / `bridges_up` are what GET /channels and /bridges answer."""

    def __init__(self):
        self.requests, self.fail = [], {}
        self.channels_up, self.bridges_up = [], []
        self.variables = {}   # what GET /channels/<id>/variable answers (unset: 404)
        self.created = set()  # bridges created and not destroyed: Asterisk 16 refuses them again

    def _do(self, name, *args, **kwargs):
        self.requests.append((name, args, kwargs))
        if name in self.fail:
            raise self.fail[name]

    def __getattr__(self, name):
        if name in ("bridge_add_channel", "hangup", "originate", "answer", "ring", "ring_stop",
                    "request", "device_state_put", "bridge_start_moh", "bridge_stop_moh"):
            return lambda *a, **k: self._do(name, *a, **k)
        raise AttributeError(name)

    def bridge_create(self, bridge_id=None, **kwargs):
        self._do("bridge_create", bridge_id, **kwargs)
        if bridge_id in self.created:   # what the lab's Asterisk 16 answers
            raise AriError(500, "Supplying a bridge type when updating a bridge is not allowed.")
        self.created.add(bridge_id)

    def bridge(self, bridge_id):
        self._do("bridge", bridge_id)
        if bridge_id not in self.created:
            raise AriNotFound(404, "Bridge not found")
        return {"id": bridge_id, "channels": []}

    def bridge_destroy(self, bridge_id):
        self._do("bridge_destroy", bridge_id)
        self.created.discard(bridge_id)

    def channels(self):
        return [{"id": c} for c in self.channels_up]

    def channel_var(self, channel_id, name):
        self._do("channel_var", channel_id, name)
        if name not in self.variables:
            raise AriNotFound(404, "Provided variable was not found")
        return {"value": self.variables[name]}

    def bridges(self):
        return [{"id": b} for b in self.bridges_up]

    def names(self):
        return [r[0] for r in self.requests]

    def hung_up(self):
        return [r[1][0] for r in self.requests if r[0] == "hangup"]

    def originated(self):
        return [r[2].get("channelId") for r in self.requests if r[0] == "originate"]


class Harness:
    """The engine as `ari_engine.runner.Engine` wires it, minus the websocket and timers."""

    def __init__(self, app, idle_seconds=600):
        app.config.update(SETTINGS)
        self.ari = FakeAri()
        self.settings = app.config
        self.presence = Presence(self.ari)
        self.flows = {f.kind: f for f in (ClickToCall(self), Inbound(self), Outbound(self))}
        self.control = CallControl(self)
        self.dispatcher = Dispatcher(app, self.flows, self.presence, idle_seconds=idle_seconds,
                                     control=self.control)
        self.backend = AriBackend(self.ari, app.config)
        self.backend.on_teardown = self.dispatcher.torn_down_elsewhere
        self.backend.on_placed = self.dispatcher.placed_here
        self.ids = {}  # placeholder / recorded id -> the id of this run
        # Closed by the app fixture at the test's end (tests/conftest.py), whoever made it.
        app.extensions.setdefault("engine_harnesses", []).append(self)

    def close(self):
        """Nothing of this test runs on into the next one: its device-state mirrors (which
        wait for an idle moment) are written, its workers stopped."""
        self.backend.settle(timeout=5)
        self.dispatcher.stop()

    def feed(self, event):
        self.dispatcher.dispatch(event)
        self.settle()

    def settle(self):
        """Wait (without spinning) until every queued event was handled."""
        for _ in range(100):
            gevent.sleep(0)
            busy = [q for q in self.dispatcher.workers.values() if q.unfinished_tasks]
            if not busy and not self.dispatcher.resolving:
                return
            for queue in busy:
                queue.join(timeout=5)
            if self.dispatcher.resolving:
                gevent.sleep(0.001)
        raise AssertionError("the engine did not settle")

    def replay(self, name, call_id=None, campaign_id=None, stop=None, before=None):
        """Feed a recording. `call_id`: the id of a call the REST side created (None: the
        dialplan starts it). `stop(event)`: stop before that event (returns the rest).
        `before(event)`: called before each event is fed."""
        if call_id:
            self.ids["CALLID"] = call_id
        lines = open(os.path.join(RECORDINGS, name + ".jsonl")).read().splitlines()
        for n, line in enumerate(lines):
            event = json.loads(self._substitute(line))
            if event["type"] == "StasisStart" and (event.get("args") or [None])[0] == "inbound":
                event["args"][1] = str(campaign_id)
            if stop is not None and stop(event):
                return lines[n:]
            if before is not None:
                before(event)
            self.feed(event)
            if "CALLID" not in self.ids and event["type"] == "StasisStart":
                self.ids["CALLID"] = self.dispatcher.known[event["channel"]["id"]]
        return []

    def resume(self, lines):
        for line in lines:
            self.feed(json.loads(self._substitute(line)))

    def _substitute(self, line):
        if "CALLID" in self.ids:
            # An inbound call's agent legs and a transfer's target legs carry a random attempt
            # suffix: map each recorded one to the one this run originated, in order.
            for recorded in sorted(set(re.findall(
                    r"oml-CALLID-(?:agent|transfer_target)-[0-9a-f]{6}", line))):
                if recorded not in self.ids:
                    role = "-agent-" if "-agent-" in recorded else "-transfer_target-"
                    ours = [c for c in self.ari.originated() if c and role in c]
                    self.ids[recorded] = ours[len([k for k in self.ids if role in k])]
        for key in sorted(self.ids, key=len, reverse=True):
            line = line.replace(key, self.ids[key])
        return line


@pytest.fixture
def engine(app):
    return Harness(app)


def online(make, ext, campaign=None, idle=0):
    user = make.agent(sip_extension=ext)
    session = db.session.get(AgentSession, user.agent.id) or AgentSession(agent_id=user.agent.id)
    session.online = session.logged_in = True
    db.session.add(session)
    db.session.commit()
    return user.agent


def rest_click_to_call(engine, agent, number="5555000", campaign_id=None):
    """What makeCall does: the row, then the agent's leg recorded and originated."""
    call_id = uuid.uuid4().hex
    call_store.create(call_id, "click_to_call", agent_id=agent.id, active_agent_id=agent.id,
                      number=number, campaign_id=campaign_id)
    assert call_store.ring_agent(call_id, agent.id, agent_channel_id=ids.agent_channel(call_id))
    return call_id


def campaign_click_to_call(make, engine, agent, record=False):
    """rest_click_to_call for a call of a campaign (`record`: one that records its calls)."""
    campaign = make.campaign()
    campaign.record = record
    db.session.commit()
    return rest_click_to_call(engine, agent, campaign_id=campaign.id)


def fresh(call_id):
    db.session.expire_all()
    return db.session.get(Call, call_id)


def live_legs(call_id):
    return db.session.scalars(select(CallLeg.asterisk_id).where(
        CallLeg.call_id == call_id, CallLeg.state == "live")).all()


def event_types(call_id):
    return [e.type for e in db.session.scalars(
        select(Event).where(Event.call_id == call_id).order_by(Event.id))]


# -- whole recorded calls ---------------------------------------------------------------------

CLICK_TO_CALL = ["agent_hangup", "contact_hangup", "contact_busy", "agent_no_answer",
                 "agent_rejected"]


@pytest.mark.parametrize("reason", CLICK_TO_CALL)
def test_recorded_click_to_call_ends_with_its_reason(engine, make, reason):
    agent = online(make, "1001")
    call_id = rest_click_to_call(engine, agent)
    engine.replay(f"click_to_call-{reason}", call_id)
    call = fresh(call_id)
    assert (call.reason, call.active_agent_id) == (reason, None)
    assert call.state == ("ended" if reason.endswith("hangup") else "failed")
    assert live_legs(call_id) == []
    assert db.session.get(AgentSession, agent.id).on_call is False
    types = event_types(call_id)
    assert types[0] == "call.requested" and types[-1] == f"call.{call.state}"
    assert types.count(f"call.{call.state}") == 1


@pytest.mark.parametrize("reason", ["agent_hangup", "contact_hangup"])
def test_recorded_inbound_call(engine, make, reason):
    agent = online(make, "1005")
    campaign = make.campaign(agents=[agent.user], type="inbound")
    engine.replay(f"inbound-{reason}", campaign_id=campaign.id)
    call_id = engine.ids["CALLID"]
    call = fresh(call_id)
    assert (call.kind, call.state, call.reason, call.agent_id) == \
        ("inbound", "ended", reason, agent.id)
    [originate] = [r for r in engine.ari.requests if r[0] == "originate"]
    assert originate[1][0] == "PJSIP/1005"
    # The agent's phone is told which call it answers (contract-calls §1).
    headers = originate[2]["variables"]
    assert headers["PJSIP_HEADER(add,X-OML-CallID)"] == call_id
    assert headers["PJSIP_HEADER(add,Omlcallid)"] == call_id
    assert headers["PJSIP_HEADER(add,X-OML-CampID)"] == str(campaign.id)
    assert headers["PJSIP_HEADER(add,X-OML-AgentID)"] == str(agent.id)
    assert headers["PJSIP_HEADER(add,X-OML-CallType)"] == "inbound"
    assert headers["PJSIP_HEADER(add,Omlcamptype)"] == "1"
    assert "PJSIP_HEADER(add,X-OML-Origin)" not in headers
    assert live_legs(call_id) == []
    assert "call.bridged" in event_types(call_id)


def test_inbound_call_keeps_the_dialplan_variables_its_campaign_names(engine, make):
    agent = online(make, "1005")
    campaign = make.campaign(agents=[agent.user], type="inbound")
    campaign.crm_parameters = [{"name": "ticket", "type": "dialplan", "value": "OMLCRMTICKET"},
                               {"name": "other", "type": "dialplan", "value": "OMLCRMOTHER"}]
    db.session.commit()
    engine.ari.variables = {"OMLCRMTICKET": "T-42"}
    engine.replay("inbound-contact_hangup", campaign_id=campaign.id)
    call = fresh(engine.ids["CALLID"])
    assert call.crm_variables == {"OMLCRMTICKET": "T-42"}   # unset ones are left out
    [originate] = [r for r in engine.ari.requests if r[0] == "originate"]
    # contract-calls §1: OMLCRM… variables travel to the agent's phone as Omlcrm… headers.
    assert originate[2]["variables"]["PJSIP_HEADER(add,Omlcrmticket)"] == "T-42"


def test_inbound_call_of_a_campaign_without_dialplan_parameters_reads_no_variable(engine, make):
    agent = online(make, "1005")
    campaign = make.campaign(agents=[agent.user], type="inbound")
    engine.replay("inbound-contact_hangup", campaign_id=campaign.id)
    assert "channel_var" not in engine.ari.names()
    assert fresh(engine.ids["CALLID"]).crm_variables is None


@pytest.mark.parametrize("reason", ["agent_hangup", "contact_hangup"])
def test_recorded_agent_dialled_call(engine, make, reason):
    agent = online(make, "1004")
    engine.replay(f"outbound-{reason}")
    call = fresh(engine.ids["CALLID"])
    assert (call.kind, call.state, call.reason, call.agent_id) == \
        ("outbound", "ended", reason, agent.id)
    assert engine.ari.names()[0] == "answer"  # the agent's own channel is answered first
    assert live_legs(call.id) == []


def test_inbound_with_nobody_available_goes_back_to_the_dialplan(engine, make):
    campaign = make.campaign(type="inbound")
    engine.flows["inbound"].wait_seconds = 0
    engine.replay("inbound-no_agent_available", campaign_id=campaign.id)
    call = fresh(engine.ids["CALLID"])
    assert (call.state, call.reason) == ("failed", "no_agent_available")
    assert ("request", ("POST", "/channels/1700000000.1/continue"), {}) in engine.ari.requests
    assert "1700000000.1" not in engine.ari.hung_up()  # handed back, never hung up
    [leg] = db.session.scalars(select(CallLeg).where(CallLeg.call_id == call.id)).all()
    assert leg.state == "released"


# -- the idle worker --------------------------------------------------------------------------

def bridged_at(event, role="contact"):
    return event["type"] == "ChannelEnteredBridge" and event["channel"]["id"].endswith(role)


@pytest.mark.parametrize("flow, ext, reason", [
    ("click_to_call", "1001", "agent_hangup"), ("click_to_call", "1001", "contact_hangup"),
    ("inbound", "1005", "agent_hangup"), ("inbound", "1005", "contact_hangup"),
    ("outbound", "1004", "agent_hangup"), ("outbound", "1004", "contact_hangup")])
def test_a_call_outlives_its_idle_worker(engine, make, flow, ext, reason):
    """A quiet bridged call's worker ends; the hang-up still finds the call (Asterisk-named
    legs through call_legs) and ends it with its reason."""
    engine.dispatcher.idle_seconds = 0.02
    agent = online(make, ext)
    campaign = make.campaign(agents=[agent.user], type="inbound")
    call_id = rest_click_to_call(engine, agent) if flow == "click_to_call" else None
    rest = engine.replay(f"{flow}-{reason}", call_id, campaign_id=campaign.id,
                         stop=lambda e: e["type"] in ("ChannelHangupRequest", "StasisEnd"))
    call_id = engine.ids["CALLID"]
    assert fresh(call_id).state == "bridged"
    gevent.sleep(0.1)
    assert engine.dispatcher.workers == {} and engine.dispatcher.known == {}
    engine.resume(rest)
    call = fresh(call_id)
    assert (call.state, call.reason) == ("ended", reason)
    assert live_legs(call_id) == []


# -- hang-ups at every step: nothing is dialled or bridged afterwards -------------------------

STEPS = {
    "agent_ringing": lambda e: e["type"] == "StasisStart",
    "agent_answered": lambda e: e["type"] == "StasisStart" and e["channel"]["id"].endswith("contact"),
    "contact_ringing": lambda e: e["type"] == "StasisStart" and e["channel"]["id"].endswith("contact"),
    "bridged": lambda e: e["type"] in ("ChannelHangupRequest", "StasisEnd"),
}


@pytest.mark.parametrize("step", list(STEPS))
def test_hangup_call_at_each_step(engine, make, step):
    agent = online(make, "1001")
    call_id = rest_click_to_call(engine, agent)
    rest = engine.replay("click_to_call-contact_hangup", call_id, stop=STEPS[step])
    if step == "agent_answered":  # the engine answered the agent but had not dialled yet
        engine.ari.requests.clear()
    assert engine.backend.hangup_call(fresh(call_id)) is None
    done = len(engine.ari.requests)
    engine.resume(rest)
    call = fresh(call_id)
    assert (call.state, call.reason) == ("ended" if step == "bridged" else "failed",
                                         "hangup_requested")
    after = engine.ari.requests[done:]
    contact = ids.contact_channel(call_id)
    assert not any(r[0] == "originate" for r in after), after
    assert not any(r[0] == "bridge_add_channel" and contact in str(r[1]) for r in after), after
    if step in ("agent_answered", "contact_ringing"):  # the contact came up: hung up at once
        assert contact in engine.ari.hung_up()
    assert live_legs(call_id) == []


def _statements_on(table, run):
    """The SQL statements that touch `table` while `run()` runs (and what it spawned)."""
    from sqlalchemy import event
    seen = []

    def statement(conn, cursor, sql, *args, **kwargs):
        if f" {table} " in f" {sql} ".replace("\n", " "):
            seen.append(" ".join(sql.split()))
    event.listen(db.engine, "before_cursor_execute", statement)
    try:
        run()
        gevent.sleep(0.05)
    finally:
        event.remove(db.engine, "before_cursor_execute", statement)
    return seen


def test_hangup_call_frees_the_agent_and_its_trailing_events_read_nothing(engine, make):
    """hangupCall on a bridged call (what a CRM does): the agent's device state is NOT_INUSE
    again, the call ended once, and the legs' trailing events (StasisEnd, ChannelDestroyed of
    both legs) cost no read of the call row: the REST side ended and tore down the call."""
    agent = online(make, "1001")
    call_id = rest_click_to_call(engine, agent)
    rest = engine.replay("click_to_call-hangup_requested", call_id,
                         stop=lambda e: e["type"] == "ChannelHangupRequest")
    assert fresh(call_id).state == "bridged"
    engine.backend.hangup_call(fresh(call_id))
    engine.ari.requests.clear()
    reads = _statements_on("calls", lambda: engine.resume(rest))
    assert [r for r in reads if r.startswith("SELECT")] == []
    assert (fresh(call_id).state, fresh(call_id).reason) == ("ended", "hangup_requested")
    assert [r for r in engine.ari.requests if r[0] == "device_state_put"] == [
        ("device_state_put", ("Stasis:oml-agent-1001", "NOT_INUSE"), {})]
    assert db.session.get(AgentSession, agent.id).mirrored_state == "NOT_INUSE"
    assert event_types(call_id).count("call.ended") == 1


def test_a_leg_that_comes_up_after_hangup_call_is_hung_up(engine, make):
    """The contact answers after hangupCall tore the call down: its StasisStart still reaches
    the flow (trailing events are dropped, not a leg that is up), which hangs it up."""
    agent = online(make, "1001")
    call_id = rest_click_to_call(engine, agent)
    rest = engine.replay("click_to_call-contact_hangup", call_id,
                         stop=lambda e: e["type"] == "StasisStart"
                         and e["channel"]["id"].endswith("contact"))
    engine.backend.hangup_call(fresh(call_id))
    engine.ari.requests.clear()
    engine.resume(rest)
    assert ids.contact_channel(call_id) in engine.ari.hung_up()
    assert "bridge_add_channel" not in engine.ari.names()


def test_makecall_mirrors_inuse_without_reading_the_agent(engine, make, app):
    """After makeCall the agent is on a call: INUSE goes to Asterisk and is stored without a
    read of the agent's session; if the call ended before the mirror ran, the mirror writes
    the state the agent is in by then."""
    agent = online(make, "1001")
    call = Call(id=uuid.uuid4().hex, kind="click_to_call", state="requested", agent_id=agent.id,
                active_agent_id=agent.id, number="5555000")
    db.session.add(call)
    db.session.commit()
    engine.backend.supervisor = SimpleNamespace(connected=True)  # the engine's process
    reads = _statements_on("agent_sessions", lambda: engine.backend.place_click_to_call(
        call, telephony.KnownFacts()))
    assert [r for r in reads if r.startswith("SELECT")] == []
    assert ("device_state_put", ("Stasis:oml-agent-1001", "INUSE"), {}) in engine.ari.requests
    assert db.session.get(AgentSession, agent.id).mirrored_state == "INUSE"

    # The call ends between the INUSE request and its store: the agent ends NOT_INUSE.
    call_store.finish(call.id, "ended", "hangup_requested")
    engine.ari.requests.clear()
    assert engine.backend.presence.mirror_on_call(agent.id, "1001")
    assert [r[1][1] for r in engine.ari.requests if r[0] == "device_state_put"] == [
        "INUSE", "NOT_INUSE"]
    db.session.expire_all()
    assert db.session.get(AgentSession, agent.id).mirrored_state == "NOT_INUSE"


def test_an_inuse_mirror_that_runs_after_the_calls_end_leaves_the_agent_free(engine, make):
    """Both mirrors of a short call wait for the process to be idle, so the end's may run
    first: the INUSE written after it is overwritten with the agent's state at once."""
    agent = online(make, "1001")
    call_id = rest_click_to_call(engine, agent)
    ended = call_store.finish(call_id, "failed", "agent_hangup")
    engine.ari.requests.clear()
    assert engine.backend.presence.mirror(agent.id, ended.freed)   # the end's mirror first
    engine.backend.presence.mirror_on_call(agent.id, "1001")       # then makeCall's
    assert [r[1][1] for r in engine.ari.requests if r[0] == "device_state_put"] == [
        "NOT_INUSE", "INUSE", "NOT_INUSE"]
    db.session.expire_all()
    assert db.session.get(AgentSession, agent.id).mirrored_state == "NOT_INUSE"


def test_the_ring_tone_stops_as_the_contact_is_added_and_the_bridged_step_asks_nothing(
        engine, make):
    """The tone the agent hears stops with the contact's addition to the bridge, so the step
    to `bridged` (what setup latency is measured to) waits for no ARI request."""
    agent = online(make, "1001")
    call_id = rest_click_to_call(engine, agent)
    contact = ids.contact_channel(call_id)
    rest = engine.replay("click_to_call-contact_hangup", call_id,
                         stop=lambda e: e["type"] == "ChannelEnteredBridge"
                         and e["channel"]["id"] == contact)
    added = engine.ari.requests.index(
        next(r for r in engine.ari.requests if r[0] == "bridge_add_channel" and contact in r[1]))
    assert [r[1] for r in engine.ari.requests[added + 1:]] == [
        ("DELETE", f"/playbacks/{ids.bridge(call_id)}-ringback")]
    engine.ari.requests.clear()
    engine.resume(rest[:1])
    assert fresh(call_id).state == "bridged"
    assert engine.ari.requests == []


def test_makecall_hands_the_call_over_without_reading_again_what_its_checks_read(
        engine, make, client, app):
    """makeCall's checks read the agent's extension and the campaign's type and recording flag;
    the engine rings the agent with them: after the call's row and its event, the request sends
    one statement on PostgreSQL (the agent ringing, its leg and the agent put on the call) and
    reads nothing again on either database (it was: the extension, the whole call row, expired
    by the ring's commit, and the campaign)."""
    agent = make.agent(sip_extension="1001")
    campaign = make.campaign(agents=[agent])
    campaign.record = True
    headers = make.headers(agent)
    db.session.commit()
    engine.backend.supervisor = SimpleNamespace(connected=True)  # the engine's process
    previous = telephony.set_backend(engine.backend)
    try:
        response, sent = statements_of(lambda: client.post("/api/v1/makeCall/", headers=headers, json={
            "idCampaign": campaign.id, "idAgent": agent.agent.id, "phone": "3512222222"}),
            whole=True)
    finally:
        telephony.set_backend(previous)
    assert response.get_json()["status"] == "OK", response.get_json()
    written = max(i for i, (sql, _) in enumerate(sent) if "INSERT INTO calls " in sql)
    after = [sql for sql, _ in sent[written + 1:]]
    assert not [sql for sql in after if sql.startswith("SELECT")], after
    if is_postgresql(app):
        assert len(after) == 1, after
    [(_, (endpoint,), sent_with)] = [r for r in engine.ari.requests if r[0] == "originate"]
    assert endpoint == "PJSIP/1001"
    headers_sent = sent_with["variables"]
    assert headers_sent["PJSIP_HEADER(add,X-OML-CampID)"] == str(campaign.id)
    assert "PJSIP_HEADER(add,Omlrecfilename)" in headers_sent   # the campaign records
    assert headers_sent["PJSIP_HEADER(add,Omlcamptype)"]


def test_hangupcall_ends_the_call_in_three_statements_without_a_transaction_block(
        engine, make, client, app):
    """hangupCall on PostgreSQL: the token check, the agent's live call and its end (one
    statement), each committing alone (it was BEGIN, the three, COMMIT); the call is ended
    and the agent freed all the same."""
    agent = online(make, "1001")
    headers = make.headers(agent.user)
    call_id = rest_click_to_call(engine, agent)
    engine.replay("click_to_call-hangup_requested", call_id,
                  stop=lambda e: e["type"] == "ChannelHangupRequest")
    previous = telephony.set_backend(engine.backend)
    try:
        response, sent = statements_of(lambda: client.post("/api/v1/hangupCall/", headers=headers))
    finally:
        telephony.set_backend(previous)
    assert response.get_json() == {"status": "OK"}
    row = fresh(call_id)
    assert (row.state, row.reason, row.active_agent_id) == ("ended", reasons.HANGUP_REQUESTED, None)
    assert not db.session.get(AgentSession, agent.id).on_call
    if is_postgresql(app):
        assert len(sent) == 3 and not any(in_block for _, in_block in sent), sent


def test_device_state_mirrors_write_without_a_transaction_block(engine, make, app):
    """Both mirrors of a call (INUSE after makeCall, the agent's state after its end) store
    what they wrote with one statement each, committing alone on PostgreSQL (each was BEGIN,
    UPDATE, COMMIT)."""
    agent = online(make, "1001")
    agent_id, call_id = agent.id, rest_click_to_call(engine, agent)
    db.session.commit()
    _, on_call = statements_of(lambda: engine.backend.presence.mirror_on_call(agent_id, "1001"))
    call_store.finish(call_id, "ended", reasons.HANGUP_REQUESTED)
    _, freed = statements_of(lambda: engine.backend.presence.mirror(agent_id))
    assert [r[1][1] for r in engine.ari.requests if r[0] == "device_state_put"] == [
        "INUSE", "NOT_INUSE"]
    db.session.expire_all()
    assert db.session.get(AgentSession, agent_id).mirrored_state == "NOT_INUSE"
    assert (len(on_call), len(freed)) == (1, 2), (on_call, freed)   # the UPDATE; read, UPDATE
    if is_postgresql(app):
        assert not any(in_block for _, in_block in on_call + freed), (on_call, freed)


def test_on_postgresql_a_call_reads_nothing_its_own_steps_returned(engine, make, app):
    """The agent's answer dials the number its conditional step returned, the bridged step
    returns its campaign's recording flag, and the call's end returns the freed agent's
    session: on PostgreSQL none of them reads first (each was a SELECT on every call)."""
    if not is_postgresql(app):
        pytest.skip("PostgreSQL only: SQLite's steps are several statements")
    agent = online(make, "1001")
    # makeCall in the engine's process: a campaign's call, placed here (no node check).
    call_id = campaign_click_to_call(make, engine, agent)
    engine.dispatcher.placed_here(call_id)
    rest = engine.replay("click_to_call-contact_hangup", call_id,
                         stop=lambda e: e["type"] == "StasisStart"
                         and e["channel"]["id"] == ids.agent_channel(call_id))

    def reads_of(lines):
        _, sent = statements_of(lambda: engine.resume(lines), whole=True, every_greenlet=True)
        run_texts = [text.split(" -- ")[-1] for text, _ in sent]   # a prepared one's own text
        return [text for text in run_texts if text.startswith("SELECT")]
    answered = reads_of(rest[:1])   # the agent's StasisStart: the contact is dialled
    assert "originate" in engine.ari.names()
    assert answered == [], answered
    after = reads_of(rest[1:])      # the contact answers, is bridged, hangs up
    assert not [r for r in after if "agent_sessions" in r or "campaigns" in r], after
    assert (fresh(call_id).state, fresh(call_id).reason) == ("ended", "contact_hangup")
    assert [r[1] for r in engine.ari.requests if r[0] == "device_state_put"][-1] == (
        "Stasis:oml-agent-1001", "NOT_INUSE")
    assert db.session.get(AgentSession, agent.id).mirrored_state == "NOT_INUSE"


@pytest.mark.parametrize("paused", [False, True])
def test_the_end_mirrors_the_state_the_agent_is_left_in(engine, make, paused):
    """The device state written at a call's end is the freed agent's: NOT_INUSE, or ONHOLD
    for an agent who paused during the call."""
    agent = online(make, "1001")
    call_id = rest_click_to_call(engine, agent)
    if paused:
        db.session.get(AgentSession, agent.id).paused = True
        db.session.commit()
    engine.replay("click_to_call-contact_hangup", call_id)
    state = "ONHOLD" if paused else "NOT_INUSE"
    assert [r[1] for r in engine.ari.requests if r[0] == "device_state_put"][-1] == (
        "Stasis:oml-agent-1001", state)
    db.session.expire_all()
    assert db.session.get(AgentSession, agent.id).mirrored_state == state


def test_a_recording_campaigns_call_is_recorded_once_bridged(engine, make):
    """The bridged step starts the recording of a campaign with `record` (on PostgreSQL from
    what the step returned, elsewhere from a read): the bridge is recorded under the call's
    day and id, and the row names the file."""
    agent = online(make, "1001")
    call_id = campaign_click_to_call(make, engine, agent, record=True)
    engine.replay("click_to_call-contact_hangup", call_id)
    row = fresh(call_id)
    name = f"{row.created_at:%Y-%m-%d}/{call_id}"
    assert [r for r in engine.ari.requests if r[0] == "request" and r[1][1].endswith("/record")
            ] == [("request", ("POST", f"/bridges/{ids.bridge(call_id)}/record",
                               {"name": name, "format": "wav", "ifExists": "overwrite",
                                "beep": "false", "terminateOn": "none"}), {})]
    assert row.recording_file == name + ".wav"


def test_another_nodes_call_is_left_to_its_engine(engine, make):
    """Two engines on one Asterisk (a lab's split deployment): this engine sees the channel
    events of a call another node runs (routed here by the channel's name). It neither ends
    the call nor touches Asterisk; the call's own engine does (a lab run had the wrong engine
    end a split call as contact_hangup while its own engine was down)."""
    agent = online(make, "1001")
    call_id = rest_click_to_call(engine, agent)
    db.session.execute(Call.__table__.update().where(Call.id == call_id).values(node="other"))
    db.session.commit()
    engine.ari.requests.clear()
    engine.replay("click_to_call-contact_hangup", call_id)
    row = fresh(call_id)
    assert (row.state, row.reason) == ("agent_ringing", None)
    assert engine.ari.requests == []


def test_no_contact_is_dialled_when_the_call_ended_during_the_agents_answer(engine, make):
    """hangupCall lands between the agent's answer and the contact's originate."""
    agent = online(make, "1001")
    call_id = rest_click_to_call(engine, agent)
    hung = {}

    def hang_up_once(event):
        if event["type"] == "StasisStart" and not hung:
            hung["done"] = engine.backend.hangup_call(fresh(call_id)) or True
    engine.replay("click_to_call-contact_hangup", call_id, before=hang_up_once,
                  stop=lambda e: e["channel"]["id"].endswith("contact")
                  if "channel" in e else False)
    assert "originate" not in engine.ari.names()
    assert fresh(call_id).reason == "hangup_requested"


# -- races ------------------------------------------------------------------------------------

def test_inbound_skips_an_agent_whose_makecall_won_the_race(engine, make):
    """makeCall committed its row (active_agent_id) but has not marked the agent on a call
    yet: the inbound claim hits the unique constraint and rings the next agent."""
    first, second = online(make, "1005"), online(make, "1006")
    campaign = make.campaign(agents=[first.user, second.user], type="inbound")
    db.session.add(Call(id=uuid.uuid4().hex, kind="click_to_call", state="requested",
                        agent_id=first.id, active_agent_id=first.id, number="1"))
    db.session.commit()
    engine.replay("inbound-agent_hangup", campaign_id=campaign.id,
                  stop=lambda e: e["type"] != "StasisStart")
    call = fresh(engine.ids["CALLID"])
    assert (call.state, call.agent_id) == ("agent_ringing", second.id)
    assert [r[1][0] for r in engine.ari.requests if r[0] == "originate"] == ["PJSIP/1006"]


def test_release_never_moves_an_answered_call_back(engine, make):
    agent = online(make, "1005")
    campaign = make.campaign(agents=[agent.user], type="inbound")
    engine.replay("inbound-agent_hangup", campaign_id=campaign.id,
                  stop=lambda e: e["type"] in ("ChannelHangupRequest", "StasisEnd"))
    call = fresh(engine.ids["CALLID"])
    assert call.state == "bridged"
    assert call_store.release_agent(call.id, call.agent_channel_id) is None
    assert fresh(call.id).state == "bridged"


# -- agent-dialled refusals are calls on the record ---------------------------------------------

def outbound_start(engine, channel_id, extension, number):
    engine.feed({"type": "StasisStart", "args": ["outbound", number],
                 "channel": {"id": channel_id, "name": f"PJSIP/{extension}-00000001",
                             "state": "Ring"}})
    return db.session.scalars(select(Call).where(Call.agent_channel_id == channel_id)).first()


@pytest.mark.parametrize("number", ["55512; Dial(PJSIP/evil)", "12", "5551234x", ""])
def test_agent_dialled_number_must_pass_the_phone_rule(engine, make, number):
    online(make, "1102")
    call = outbound_start(engine, "chan-x", "1102", number)
    assert (call.state, call.reason) == ("failed", "invalid_number")
    assert "chan-x" in engine.ari.hung_up()
    assert "originate" not in engine.ari.names()


def test_second_dial_from_a_busy_agent_is_refused_and_recorded(engine, make):
    online(make, "1103")
    assert outbound_start(engine, "chan-a", "1103", "3515550001").state == "contact_ringing"
    busy = outbound_start(engine, "chan-b", "1103", "3515550002")
    assert (busy.state, busy.reason, busy.active_agent_id) == ("failed", "agent_busy", None)
    assert ("hangup", ("chan-b",), {"reason": "busy"}) in engine.ari.requests


def test_unknown_phone_is_refused_and_recorded(engine, make):
    call = outbound_start(engine, "chan-z", "9999", "3515550003")
    assert (call.state, call.reason) == ("failed", "agent_unreachable")
    assert "chan-z" in engine.ari.hung_up()


# -- the sweep --------------------------------------------------------------------------------

def test_sweep_ends_a_call_that_lost_a_leg_while_nobody_listened(engine, make):
    """Reconnect with one leg gone: the contact hung up while the websocket was down."""
    agent = online(make, "1001")
    call_id = rest_click_to_call(engine, agent)
    engine.replay("click_to_call-contact_hangup", call_id,
                  stop=lambda e: e["type"] in ("ChannelHangupRequest", "StasisEnd"))
    engine.ari.channels_up = [ids.agent_channel(call_id)]
    engine.ari.bridges_up = [ids.bridge(call_id)]
    summary = sweep.sweep(engine.ari, engine.dispatcher, engine.settings)
    engine.settle()
    assert summary["legs_lost"] == 1
    call = fresh(call_id)
    assert (call.state, call.reason) == ("ended", "contact_hangup")
    assert ids.agent_channel(call_id) in engine.ari.hung_up()
    assert ("bridge_destroy", (ids.bridge(call_id),), {}) in engine.ari.requests


def test_sweep_ends_calls_whose_channels_are_all_gone_and_stuck_requests(engine, make):
    agent, other = online(make, "1001"), online(make, "1002")
    lost = rest_click_to_call(engine, agent)
    stuck = uuid.uuid4().hex  # makeCall committed, then the process died before originating
    call_store.create(stuck, "click_to_call", agent_id=other.id, active_agent_id=other.id)
    db.session.execute(Call.__table__.update().where(Call.id == stuck).values(
        created_at=call_store.now().replace(year=2020)))
    db.session.commit()
    summary = sweep.sweep(engine.ari, engine.dispatcher, engine.settings)
    assert summary["calls_ended"] == 2
    assert (fresh(lost).state, fresh(lost).reason) == ("failed", reasons.ASTERISK_LOST)
    assert (fresh(stuck).state, fresh(stuck).reason) == ("failed", reasons.SETUP_LOST)
    assert db.session.get(AgentSession, other.id).on_call is False
    assert fresh(stuck).active_agent_id is None  # the agent can call again


def test_sweep_hangs_up_orphans_and_keeps_live_calls(engine, make):
    agent = online(make, "1001")
    live = rest_click_to_call(engine, agent)
    engine.ari.channels_up = [ids.agent_channel(live), "oml-deadbeef-agent", "someone-else"]
    engine.ari.bridges_up = ["oml-deadbeef", "not-ours"]
    summary = sweep.sweep(engine.ari, engine.dispatcher, engine.settings)
    assert (summary["channels_hung_up"], summary["bridges_destroyed"]) == (1, 1)
    assert engine.ari.hung_up() == ["oml-deadbeef-agent"]
    assert fresh(live).state == "agent_ringing"


def test_sweep_treats_404_as_done(engine, make):
    engine.ari.channels_up = ["oml-deadbeef-agent"]
    engine.ari.fail["hangup"] = AriNotFound(404, "Channel not found")
    assert sweep.sweep(engine.ari, engine.dispatcher, engine.settings)["channels_hung_up"] == 1


def test_a_bridge_asterisk_refuses_to_destroy_is_tried_once_not_on_every_sweep(engine, caplog):
    """A bridge no application owns any more (409) cannot be destroyed through ARI: the sweep
    says so once instead of failing and warning every ENGINE_SWEEP_SECONDS."""
    refused = f"oml-{uuid.uuid4().hex}-consult"
    engine.ari.bridges_up = [refused]
    engine.ari.fail["bridge_destroy"] = AriError(409, "Bridge not in Stasis application")
    for _ in range(3):
        assert sweep.sweep(engine.ari, engine.dispatcher, engine.settings)[
            "bridges_destroyed"] == 0
    assert engine.ari.names().count("bridge_destroy") == 1
    assert len([r for r in caplog.records if "not tried again" in r.getMessage()]) == 1
    engine.ari.bridges_up = []  # Asterisk restarted: a bridge of that id is ours again
    sweep.sweep(engine.ari, engine.dispatcher, engine.settings)
    engine.ari.bridges_up = [refused]
    del engine.ari.fail["bridge_destroy"]
    assert sweep.sweep(engine.ari, engine.dispatcher, engine.settings)["bridges_destroyed"] == 1


def test_a_bridge_destroy_that_failed_otherwise_is_tried_again(engine):
    failing = f"oml-{uuid.uuid4().hex}"
    engine.ari.bridges_up = [failing]
    engine.ari.fail["bridge_destroy"] = AriError(500, "Internal Server Error")
    for _ in range(2):
        sweep.sweep(engine.ari, engine.dispatcher, engine.settings)
    assert engine.ari.names().count("bridge_destroy") == 2


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


def test_the_event_reader_never_touches_the_database(engine, make, monkeypatch):
    """dispatch() only queues: with the database unreachable it still returns at once, and
    the events wait in order for their worker."""
    agent = online(make, "1001")
    call_id = rest_click_to_call(engine, agent)
    calls = []

    def refuse(*a, **k):
        calls.append(1)
        raise AssertionError("database used by the reader")
    monkeypatch.setattr(db.session, "execute", refuse)
    engine.dispatcher.dispatch({"type": "StasisStart", "args": ["inbound", "1"],
                                "channel": {"id": "caller-1", "state": "Ring"}})
    engine.dispatcher.dispatch({"type": "StasisEnd", "channel": {"id": "unknown-chan"}})
    engine.dispatcher.dispatch({"type": "EndpointStateChange",
                                "endpoint": {"technology": "PJSIP", "resource": "1001",
                                             "state": "online"}})
    engine.dispatcher.dispatch({"type": "ChannelDestroyed",
                                "channel": {"id": ids.agent_channel(call_id)}, "cause": 16})
    assert calls == []  # nothing ran yet: the workers have not been scheduled
    assert set(engine.dispatcher.workers) == {call_id, engine.dispatcher.known["caller-1"]}
