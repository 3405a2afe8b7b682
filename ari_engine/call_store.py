"""The engine's writes to the `calls` table and the agents' on-call state.

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
    """End a live call (state ended or failed) with a reason; frees the agent. Idempotent:
    False when the call was already final."""
    assert state in FINAL_CALL_STATES
    _fresh()
    call = db.session.scalar(select(Call).where(Call.id == call_id).with_for_update())
    if call is None or call.is_final:
        db.session.rollback()
        return False
    call.state = state
    call.reason = reason
    call.hangup_cause = hangup_cause
    call.ended_at = now()
    call.active_agent_id = None
    if call.agent_id is not None:
        _set_on_call(call.agent_id, False)
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
