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
# Every write below is a Core statement on the table, not on the mapped class: the ORM's bulk
# UPDATE path (compile state, session synchronisation) cost more CPU than the statement itself
# on the engine's per-event path. Each is committed at once, which expires the session's
# objects anyway, so nothing in the session needs updating.
_calls = Call.__table__
_sessions = AgentSession.__table__


def now():
    return datetime.now(timezone.utc)


def get(call_id):
    return db.session.get(Call, call_id)


def fate(call_id):
    """(state, agent_id) of a call, or None: one Core SELECT, no ORM object (the engine asks
    after each event whether the call just ended)."""
    return db.session.execute(select(_calls.c.state, _calls.c.agent_id)
                              .where(_calls.c.id == call_id)).first()


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
        update(_calls).where(_calls.c.id == call_id, _calls.c.state.in_(earlier))
        .values(state=state, **fields))
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
    db.session.execute(update(_calls).where(_calls.c.id == call_id).values(**fields))
    db.session.commit()


def finish(call_id, state, reason, hangup_cause=None):
    """End a live call (state ended or failed) with a reason and free its agent, in one
    conditional UPDATE so two enders racing cannot both win. False when already final."""
    assert state in FINAL_CALL_STATES
    end_read()
    ended = db.session.execute(
        update(_calls).where(_calls.c.id == call_id, _calls.c.state.not_in(FINAL_CALL_STATES))
        .values(state=state, reason=reason[:255] if reason else None, hangup_cause=hangup_cause,
                ended_at=now(), active_agent_id=None)
        .returning(_calls.c.agent_id)).first()
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
    db.session.execute(update(_sessions).where(_sessions.c.agent_id == agent_id)
                       .values(**values))


def live_calls():
    return db.session.scalars(select(Call).where(Call.state.not_in(FINAL_CALL_STATES))).all()
