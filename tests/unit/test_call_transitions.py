"""A call's state transitions (services/call_state.py): what they write, and on PostgreSQL in
how many statements. The engine runs one on every step of every call; the rows, the legs, the
agent's state and the event must be the same whichever path wrote them."""
import uuid

import pytest
from sqlalchemy import select

from oml_server.extensions import db
from oml_server.models import AgentSession, Call, CallLeg, Event
from oml_server.services import call_state

from .statements_sent import is_postgresql, statements_of


def _events(call_id):
    db.session.expire_all()
    return [(e.type, e.agent_id, e.campaign_id, e.data) for e in db.session.scalars(
        select(Event).where(Event.call_id == call_id).order_by(Event.id))]


def _legs(call_id):
    return sorted((leg.asterisk_id, leg.role, leg.resource, leg.state, leg.node)
                  for leg in db.session.scalars(select(CallLeg).where(CallLeg.call_id == call_id)))


@pytest.fixture(params=[True, False], ids=["prepared", "planned"])
def prepared_or_not(request, app):
    """PostgreSQL runs the steps as prepared statements, or planned each time behind a pooler
    that cannot keep them (DB_PREPARED_STATEMENTS=0): the same rows either way."""
    app.config["DB_PREPARED_STATEMENTS"] = request.param
    yield request.param
    app.config["DB_PREPARED_STATEMENTS"] = True


@pytest.fixture
def call(make):
    agent = make.agent()
    campaign = make.campaign(agents=[agent])
    call_id = uuid.uuid4().hex
    call_state.create(call_id, "click_to_call", agent_id=agent.agent.id, campaign_id=campaign.id,
                      number="3515550000", active_agent_id=agent.agent.id)
    return call_id, agent.agent.id, campaign.id


def test_each_step_writes_its_row_legs_agent_and_event(call, prepared_or_not):
    call_id, agent_id, campaign_id = call
    assert call_state.ring_agent(call_id, agent_id, agent_channel_id=f"{call_id}-agent")
    assert db.session.get(AgentSession, agent_id).on_call is True
    assert call_state.advance(call_id, "agent_answered", agent_answered_at=call_state.now(),
                              bridge_id=f"{call_id}-b",
                              legs=[(f"{call_id}-b", "main", "bridge"), (f"{call_id}-c", "contact")])
    assert call_state.advance(call_id, "contact_ringing", contact_channel_id=f"{call_id}-c")
    assert call_state.advance(call_id, "bridged", bridged_at=call_state.now())
    # Late or repeated events never move a call backwards, and write nothing.
    assert not call_state.advance(call_id, "contact_ringing")
    assert not call_state.advance(call_id, "bridged", legs=[("late", "contact")])
    row = db.session.get(Call, call_id)
    assert (row.state, row.bridge_id, row.contact_channel_id) == (
        "bridged", f"{call_id}-b", f"{call_id}-c")
    assert row.agent_answered_at is not None and row.bridged_at is not None
    assert _legs(call_id) == [(f"{call_id}-agent", "agent", "channel", "live", "local"),
                              (f"{call_id}-b", "main", "bridge", "live", "local"),
                              (f"{call_id}-c", "contact", "channel", "live", "local")]
    common = {"kind": "click_to_call", "number": "3515550000", "contact_id": None}
    assert _events(call_id) == [
        ("call.requested", agent_id, campaign_id, {"state": "requested", **common, "reason": None})
    ] + [(f"call.{name}", agent_id, campaign_id, {"state": state, **common})
         for name, state in (("agent_ringing", "agent_ringing"), ("answered", "agent_answered"),
                             ("contact_ringing", "contact_ringing"), ("bridged", "bridged"))]


def test_a_step_of_an_ended_call_writes_nothing(call):
    call_id, agent_id, _ = call
    ended = call_state.finish(call_id, "ended", "hangup_requested")
    assert ended
    before = _events(call_id)
    assert not call_state.ring_agent(call_id, agent_id, agent_channel_id=f"{call_id}-agent")
    assert not call_state.advance(call_id, "agent_answered", legs=[(f"{call_id}-c", "contact")])
    assert _events(call_id) == before and _legs(call_id) == []
    assert db.session.get(AgentSession, agent_id).on_call is False


def test_on_postgresql_a_step_is_one_statement_outside_a_transaction_block(app, call):
    """BEGIN, UPDATE, INSERT legs, INSERT event, COMMIT were five round trips per step; now one
    prepared statement (planned once per connection)."""
    if not is_postgresql(app):
        pytest.skip("PostgreSQL only: SQLite has no data-modifying CTEs")
    call_id, agent_id, _ = call
    db.session.commit()
    _, sent = statements_of(lambda: call_state.ring_agent(
        call_id, agent_id, agent_channel_id=f"{call_id}-agent"))
    assert sent == [("EXECUTE", False)]
    _, sent = statements_of(lambda: call_state.advance(
        call_id, "agent_answered", agent_answered_at=call_state.now(),
        legs=[(f"{call_id}-b", "main", "bridge"), (f"{call_id}-c", "contact")]))
    assert sent == [("EXECUTE", False)]


def test_the_end_frees_the_agent_marks_every_leg_and_tells_once(call, prepared_or_not):
    call_id, agent_id, campaign_id = call
    call_state.ring_agent(call_id, agent_id, agent_channel_id=f"{call_id}-agent")
    call_state.advance(call_id, "agent_answered", bridge_id=f"{call_id}-b",
                       legs=[(f"{call_id}-b", "main", "bridge"), (f"{call_id}-c", "contact")])
    ended = call_state.finish(call_id, "ended", "contact_hangup", hangup_cause=16,
                              gone=f"{call_id}-c")
    # The departed leg is not returned (nothing to hang up); the others are, to be torn down.
    assert ended.agent_id == agent_id
    assert sorted(ended.legs) == [(f"{call_id}-agent", "agent", "channel"),
                                  (f"{call_id}-b", "main", "bridge")]
    db.session.expire_all()
    causes = {leg.asterisk_id: (leg.state, leg.hangup_cause, leg.ended_at is not None)
              for leg in db.session.scalars(select(CallLeg).where(CallLeg.call_id == call_id))}
    assert causes == {f"{call_id}-agent": ("gone", None, True), f"{call_id}-b": ("gone", None, True),
                      f"{call_id}-c": ("gone", 16, True)}
    row = db.session.get(Call, call_id)
    assert (row.state, row.reason, row.hangup_cause, row.active_agent_id) == (
        "ended", "contact_hangup", 16, None)
    session = db.session.get(AgentSession, agent_id)
    assert (session.on_call, session.idle_since is not None) == (False, True)
    assert _events(call_id)[-1] == ("call.ended", agent_id, campaign_id, {
        "state": "ended", "kind": "click_to_call", "number": "3515550000", "contact_id": None,
        "reason": "contact_hangup", "hangup_cause": 16})
    # A second ender loses: nothing written, the departed channel's leg still marked.
    events = len(_events(call_id))
    assert call_state.finish(call_id, "failed", "asterisk_lost", gone=f"{call_id}-agent") is False
    assert len(_events(call_id)) == events


def test_the_end_leaves_an_agent_already_on_another_call_busy(make, call):
    """A call taken over by a supervisor freed its agent early; if the agent is on a new call
    by the time the old one ends, the old one's end must not mark the agent free."""
    call_id, agent_id, campaign_id = call
    call_state.ring_agent(call_id, agent_id, agent_channel_id=f"{call_id}-agent")
    db.session.get(Call, call_id).active_agent_id = None   # freed early (take-call)
    db.session.commit()
    other = uuid.uuid4().hex
    call_state.create(other, "click_to_call", agent_id=agent_id, campaign_id=campaign_id,
                      number="3515550001", active_agent_id=agent_id)
    call_state.ring_agent(other, agent_id, agent_channel_id=f"{other}-agent")
    assert call_state.finish(call_id, "ended", "contact_hangup")
    db.session.expire_all()
    assert db.session.get(AgentSession, agent_id).on_call is True


def test_on_postgresql_the_end_is_one_statement(app, call):
    if not is_postgresql(app):
        pytest.skip("PostgreSQL only: SQLite has no data-modifying CTEs")
    call_id, agent_id, _ = call
    call_state.ring_agent(call_id, agent_id, agent_channel_id=f"{call_id}-agent")
    db.session.commit()
    _, sent = statements_of(lambda: call_state.finish(call_id, "ended", "hangup_requested"))
    assert sent == [("EXECUTE", False)]
