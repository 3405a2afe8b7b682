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
# Every write below is committed at once, which expires the session's objects anyway: no need
# for SQLAlchemy to look for (and evaluate the WHERE against) matching objects in the session.
_NO_SYNC = {"synchronize_session": False}


def now():
    return datetime.now(timezone.utc)


def get(call_id):
    return db.session.get(Call, call_id)


def end_read():
    """End the session's read transaction before writing (or before a slow wait), on SQLite
    only. There (WAL) a read
    transaction that later writes fails at once with "database is locked" (SQLITE_BUSY_SNAPSHOT,
    no busy wait) if another greenlet committed meanwhile, e.g. while this one waited on ARI.
    PostgreSQL has no such failure (READ COMMITTED: each statement sees the latest commits), and
    there the extra COMMIT was a round trip plus a pool check-in/out per write."""
    if db.session.get_bind().dialect.name == "sqlite":
        db.session.commit()


def _advance(call_id, state, fields):
    earlier = ORDER[:ORDER.index(state)]
    result = db.session.execute(
        update(Call).where(Call.id == call_id, Call.state.in_(earlier))
        .values(state=state, **fields).execution_options(**_NO_SYNC))
    return result.rowcount == 1


def advance(call_id, state, **fields):
    """Move a live call forward to `state`; False when it is already there, past it, or final."""
    end_read()
    moved = _advance(call_id, state, fields)
    db.session.commit()
    return moved


def ring_agent(call_id, agent_id, **fields):
    """The agent's leg is about to be originated: the call moves to `agent_ringing` and the
    agent is on a call, in one transaction. False (agent untouched) when the call is no longer
    live before that (ended meanwhile by hangupCall)."""
    end_read()
    moved = _advance(call_id, "agent_ringing", fields)
    if moved:
        _set_on_call(agent_id, True)
    db.session.commit()
    return moved


def set_fields(call_id, **fields):
    end_read()
    db.session.execute(update(Call).where(Call.id == call_id).values(**fields)
                       .execution_options(**_NO_SYNC))
    db.session.commit()


def finish(call_id, state, reason, hangup_cause=None):
    """End a live call (state ended or failed) with a reason and free its agent, in one
    conditional UPDATE so two enders racing cannot both win. False when already final."""
    assert state in FINAL_CALL_STATES
    end_read()
    ended = db.session.execute(
        update(Call).where(Call.id == call_id, Call.state.not_in(FINAL_CALL_STATES))
        .values(state=state, reason=reason[:255] if reason else None, hangup_cause=hangup_cause,
                ended_at=now(), active_agent_id=None)
        .returning(Call.agent_id).execution_options(**_NO_SYNC)).first()
    if ended is None:
        db.session.rollback()
        return False
    if ended.agent_id is not None:
        _set_on_call(ended.agent_id, False)
    db.session.commit()
    return True


def mark_on_call(agent_id):
    end_read()
    _set_on_call(agent_id, True)
    db.session.commit()


def _set_on_call(agent_id, on_call):
    values = {"on_call": on_call, "ringing": False, "mirrored_state": None}
    if not on_call:
        values["idle_since"] = now()
    db.session.execute(update(AgentSession).where(AgentSession.agent_id == agent_id)
                       .values(**values).execution_options(**_NO_SYNC))


def live_calls():
    return db.session.scalars(select(Call).where(Call.state.not_in(FINAL_CALL_STATES))).all()
