"""Writes to the `calls` table and the agents' on-call state, shared by the REST layer and
the ARI engine.

States only move forward (requested → agent_ringing → agent_answered → contact_ringing →
bridged → ended/failed): events can arrive late or twice, and the REST process and the engine
both write, so every transition is a conditional UPDATE that never moves a call backwards or
out of a final state. Each transition is its own short transaction.
"""
from datetime import datetime, timezone

from sqlalchemy import select, update

from oml_server.extensions import db
from oml_server.models import FINAL_CALL_STATES, AgentSession, Call

ORDER = ("requested", "agent_ringing", "agent_answered", "contact_ringing", "bridged")


def now():
    return datetime.now(timezone.utc)


def get(call_id):
    return db.session.get(Call, call_id)


def _fresh():
    """End the session's read transaction before writing. On SQLite (WAL) a read transaction
    that later writes fails at once with "database is locked" (SQLITE_BUSY_SNAPSHOT, no busy
    wait) if another greenlet committed meanwhile, e.g. while this one waited on ARI."""
    db.session.commit()


def advance(call_id, state, **fields):
    """Move a live call forward to `state`; False when it is already there, past it, or final."""
    _fresh()
    earlier = ORDER[:ORDER.index(state)]
    result = db.session.execute(
        update(Call).where(Call.id == call_id, Call.state.in_(earlier))
        .values(state=state, **fields))
    db.session.commit()
    return result.rowcount == 1


def set_fields(call_id, **fields):
    _fresh()
    db.session.execute(update(Call).where(Call.id == call_id).values(**fields))
    db.session.commit()


def finish(call_id, state, reason, hangup_cause=None):
    """End a live call (state ended or failed) with a reason and free its agent, in one
    conditional UPDATE so two enders racing cannot both win. False when already final."""
    assert state in FINAL_CALL_STATES
    _fresh()
    ended = db.session.execute(
        update(Call).where(Call.id == call_id, Call.state.not_in(FINAL_CALL_STATES))
        .values(state=state, reason=reason[:255] if reason else None, hangup_cause=hangup_cause,
                ended_at=now(), active_agent_id=None)
        .returning(Call.agent_id)).first()
    if ended is None:
        db.session.rollback()
        return False
    if ended.agent_id is not None:
        _set_on_call(ended.agent_id, False)
    db.session.commit()
    return True


def mark_on_call(agent_id):
    _fresh()
    _set_on_call(agent_id, True)
    db.session.commit()


def _set_on_call(agent_id, on_call):
    values = {"on_call": on_call, "ringing": False, "mirrored_state": None}
    if not on_call:
        values["idle_since"] = now()
    db.session.execute(update(AgentSession).where(AgentSession.agent_id == agent_id).values(**values))


def live_calls():
    return db.session.scalars(select(Call).where(Call.state.not_in(FINAL_CALL_STATES))).all()
