"""Writes to the `calls` and `call_legs` tables and the agents' on-call state, shared by the
REST layer and the ARI engine.

States only move forward (requested → agent_ringing → agent_answered → contact_ringing →
bridged → ended/failed): events can arrive late or twice, and the REST process and the engine
both write, so every transition is a conditional UPDATE that never moves a call backwards or
out of a final state. The one way back is explicit and conditional: an inbound call whose rung
agent did not answer returns from agent_ringing to requested (`release_agent`).

Each transition is one short transaction that also writes the legs it creates and its event
in the outbox (`outbox.record`), so the record of what happened can never disagree with the
rows.
"""
import logging
from datetime import datetime, timezone
from typing import NamedTuple, Optional

from flask import current_app
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError

from oml_server.database import run as _run
from oml_server.database import Prepared, prepared_text, run_alone, statements_commit_alone
from oml_server.extensions import db
from oml_server.models import FINAL_CALL_STATES, AgentSession, Call, CallLeg, Event

from . import outbox

log = logging.getLogger("oml.calls")

ORDER = ("requested", "agent_ringing", "agent_answered", "contact_ringing", "bridged")
EVENT_OF_STATE = {"requested": "call.requested", "agent_ringing": "call.agent_ringing",
                  "agent_answered": "call.answered", "contact_ringing": "call.contact_ringing",
                  "bridged": "call.bridged", "ended": "call.ended", "failed": "call.failed"}
# Every write below is a Core statement on the table, not on the mapped class: the ORM's bulk
# UPDATE path (compile state, session synchronisation) cost more CPU than the statement itself
# on the engine's per-event path. Each is committed at once, which expires the session's
# objects anyway, so nothing in the session needs updating.
_calls = Call.__table__
_legs = CallLeg.__table__
_sessions = AgentSession.__table__
_RETURNED = (_calls.c.agent_id, _calls.c.campaign_id, _calls.c.kind, _calls.c.number,
             _calls.c.contact_id)
# Statements are built once, with bind parameters, and run on the session's connection:
# building an UPDATE each time cost ~270 µs of CPU and the ORM session's execute path ~35 µs
# more, against ~60 µs to run a prepared one (tests/ measured with bench/engine_cpu.py); a
# click-to-call runs about 25 of them.
_prepared = {}


def prepared(key, build):
    """The statement `build()` makes, built once per process under `key`. A build that
    returns a database.Prepared is also planned once per connection on PostgreSQL (for the
    per-call statements; not for IN lists, which Prepared cannot expand, nor executemany)."""
    statement = _prepared.get(key)
    if statement is None:
        statement = _prepared[key] = build()
    return statement


def run(statement, params=None):
    """Execute a statement in the session's current transaction (database.run)."""
    return _run(statement, params or {})


def now():
    return datetime.now(timezone.utc)


def node():
    """The Asterisk node this process's engine drives (ASTERISK_NODE)."""
    return current_app.config.get("ASTERISK_NODE", "local")


def get(call_id):
    return db.session.get(Call, call_id)


def fate(call_id):
    """(state, agent_id) of a call, or None: one Core SELECT, no ORM object, committed alone
    (database.run_alone)."""
    return run_alone(prepared("fate", lambda: Prepared(select(
        _calls.c.state, _calls.c.agent_id).where(_calls.c.id == bindparam("cid")))),
        {"cid": call_id}).first()


def row(call_id):
    """The call's columns as a Core row (lighter than an ORM object), or None; committed
    alone (database.run_alone): no connection is held after it."""
    return run_alone(prepared("row", lambda: Prepared(select(_calls).where(
        _calls.c.id == bindparam("cid")))), {"cid": call_id}).first()


def release():
    """End the session's transaction and give its connection back to the pool, on every
    database: before waiting on ARI. A connection held across an ARI request is one the other
    calls cannot use; under load those requests take long enough to drain the pool (seen at
    100 concurrent calls: makeCall answered 503 while workers held connections, idle in
    transaction, across bridge requests). Nothing to do when none is open (run_alone)."""
    session = db.session()
    if session.in_transaction():
        session.commit()


def read_alone():
    """The reads that come next run without a transaction block on PostgreSQL when none is
    open (database.statements_commit_alone): a lone SELECT then costs one round trip, not
    three (BEGIN, the SELECT, COMMIT). For the engine's reads before an ARI request, which
    `release` ends anyway; nothing is written in that transaction. True when it applies (no
    transaction was open): the caller then ends it with `release` whatever it finds."""
    return statements_commit_alone(db.session)


def end_read():
    """End the session's read transaction before writing (or before a slow wait), on SQLite
    only. There (WAL) a read transaction that later writes fails at once with "database is
    locked" (SQLITE_BUSY_SNAPSHOT, no busy wait) if another greenlet committed meanwhile, e.g.
    while this one waited on ARI. PostgreSQL has no such failure (READ COMMITTED: each
    statement sees the latest commits), and there the extra COMMIT was a round trip plus a
    pool check-in/out per write."""
    if db.session.get_bind().dialect.name == "sqlite":
        db.session.commit()


# -- legs -------------------------------------------------------------------------------------

def _insert_ignoring_duplicates(table, rows):
    dialect = db.session.get_bind().dialect.name

    def build():
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table).on_conflict_do_nothing()
    run(prepared(("insert-ignore", table.name, dialect), build), rows)


def _add_legs(call_id, legs):
    """`legs`: (asterisk id, role) for channels, or (asterisk id, role, "bridge")."""
    if not legs:
        return
    here, moment = node(), now()
    _insert_ignoring_duplicates(_legs, [
        {"call_id": call_id, "asterisk_id": leg[0], "role": leg[1],
         "resource": leg[2] if len(leg) > 2 else "channel", "node": here, "state": "live",
         "created_at": moment} for leg in legs])


def add_legs(call_id, *legs):
    """Record channels or bridges the engine created or adopted for a call (own transaction)."""
    end_read()
    _add_legs(call_id, legs)
    db.session.commit()


def _mark_leg(asterisk_id, state, cause=None, resource="channel", alone=False):
    (run_alone if alone else run)(prepared("mark-leg", lambda: Prepared(update(_legs).where(
        _legs.c.node == bindparam("b_node"), _legs.c.resource == bindparam("b_resource"),
        _legs.c.asterisk_id == bindparam("aid"), _legs.c.state == "live")
        .values(state=bindparam("new_state"), hangup_cause=bindparam("cause"),
                ended_at=bindparam("ended")))),
        {"b_node": node(), "b_resource": resource, "aid": asterisk_id, "new_state": state,
         "cause": cause, "ended": now()})


def leg_gone(asterisk_id, cause=None, state="gone", resource="channel"):
    """The channel (or bridge) left Asterisk, or was handed back to the dialplan (`released`)."""
    end_read()
    _mark_leg(asterisk_id, state, cause, resource, alone=True)
    release()


def legs_to_clear(call_id):
    """Every channel and bridge a call ever had but those handed back to the dialplan: what to
    hang up when an event finds the call already ended (404s are cheap; a leftover is not)."""
    return [tuple(r) for r in db.session.execute(
        select(_legs.c.asterisk_id, _legs.c.role, _legs.c.resource).where(
            _legs.c.call_id == call_id, _legs.c.state != "released").order_by(_legs.c.id)).all()]


def legs_of(call_id, live_only=True):
    """[(asterisk id, role, resource)] of a call, oldest first."""
    query = select(_legs.c.asterisk_id, _legs.c.role, _legs.c.resource).where(
        _legs.c.call_id == call_id).order_by(_legs.c.id)
    if live_only:
        query = query.where(_legs.c.state == "live")
    return [tuple(r) for r in db.session.execute(query).all()]


def call_of_leg(asterisk_id, resource="channel"):
    """The call a channel (or bridge) of this node belongs to, or None."""
    return db.session.scalar(select(_legs.c.call_id).where(
        _legs.c.node == node(), _legs.c.resource == resource, _legs.c.asterisk_id == asterisk_id))


# -- transitions ------------------------------------------------------------------------------

def create(call_id, kind, legs=(), **fields):
    """A new call row with its first legs and its event, in one transaction. Raises
    IntegrityError (rolled back) when the agent already has a live call."""
    end_read()
    fields.setdefault("state", "requested")
    fields.setdefault("number", "")
    try:
        db.session.execute(_calls.insert().values(
            id=call_id, kind=kind, node=node(), created_at=now(), **fields))
        _add_legs(call_id, legs)
        outbox.record(EVENT_OF_STATE[fields["state"]], call_id=call_id,
                      agent_id=fields.get("agent_id"), campaign_id=fields.get("campaign_id"),
                      state=fields["state"], kind=kind, number=fields["number"],
                      contact_id=fields.get("contact_id"), reason=fields.get("reason"))
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise
    _logged(call_id, fields["state"], kind=kind, reason=fields.get("reason"))


def _record(call_id, state, returned, **data):
    outbox.record(EVENT_OF_STATE[state], call_id=call_id, agent_id=returned.agent_id,
                  campaign_id=returned.campaign_id, state=state, kind=returned.kind,
                  number=returned.number, contact_id=returned.contact_id, **data)


def _logged(call_id, state, **extra):
    log.info("call %s %s%s", call_id, state,
             "".join(f" {k}={v}" for k, v in extra.items() if v is not None),
             extra={"call_id": call_id, "state": state, **extra})


def _advance_at_once(call_id, state, fields, legs, agent_on_call=None, runner=run):
    """PostgreSQL: the conditional UPDATE, the legs, the agent put on the call (ring_agent)
    and the event in one statement (data-modifying CTEs, as services/disposition_writes.py):
    a transition was BEGIN, UPDATE, INSERT legs, INSERT event, COMMIT, one round trip each, on
    every step of every call. The legs, the agent and the event are written FROM the moved
    row, so a call that did not move writes nothing. The moved call's columns (agent_id,
    campaign_id, kind, number, contact_id, bridge_id, created_at; on `bridged` also its
    campaign's `record`) when it moved, else None: what the flow's next step needs, without a
    read of its own (the agent's answer dials `number`; the bridged step starts a recording)."""
    names = tuple(sorted(fields))
    legs = [(leg[0], leg[1], leg[2] if len(leg) > 2 else "channel") for leg in legs]

    def build():
        earlier = ", ".join(f"'{s}'" for s in ORDER[:ORDER.index(state)])
        sets = "".join(f", {n} = :v_{n}" for n in names)
        parts = [f"""moved AS (
  UPDATE calls SET state = '{state}'{sets} WHERE id = :cid AND state IN ({earlier})
  RETURNING agent_id, campaign_id, kind, number, contact_id, bridge_id, created_at)"""]
        if legs:
            rows = ", ".join(f"(:l{i}_id, :l{i}_role, :l{i}_resource)" for i in range(len(legs)))
            parts.append(f"""added AS (
  INSERT INTO call_legs (call_id, asterisk_id, role, resource, node, state, created_at)
  SELECT :cid, l.asterisk_id, l.role, l.resource, :node, 'live', :now
  FROM moved, (VALUES {rows}) AS l (asterisk_id, role, resource)
  ON CONFLICT DO NOTHING)""")
        if agent_on_call is not None:   # _set_on_call(agent, True)
            parts.append("""on_call AS (
  UPDATE agent_sessions SET on_call = true, ringing = false, mirrored_state = NULL,
    status_since = :now
  WHERE agent_id = :aid AND EXISTS (SELECT 1 FROM moved))""")
        # The data's keys in _record's order (readers parse it; the values and order match).
        parts.append(f"""event AS (
  INSERT INTO events (type, call_id, agent_id, campaign_id, data, created_at)
  SELECT '{EVENT_OF_STATE[state]}', :cid, agent_id, campaign_id,
    json_build_object('state', '{state}', 'kind', kind, 'number', number,
                      'contact_id', contact_id), :now
  FROM moved)""")
        types = {"cid": _calls.c.id.type, "now": _legs.c.created_at.type, "node": _legs.c.node.type,
                 "aid": _sessions.c.agent_id.type,
                 **{f"v_{n}": _calls.c[n].type for n in names},
                 **{f"l{i}_{part}": _legs.c[column].type for i in range(len(legs))
                    for part, column in (("id", "asterisk_id"), ("role", "role"),
                                         ("resource", "resource"))}}
        record = (", (SELECT record FROM campaigns WHERE id = moved.campaign_id) AS record"
                  if state == "bridged" else "")
        return prepared_text("WITH " + ",\n".join(parts) + "\nSELECT agent_id, campaign_id, kind, "
                             f"number, contact_id, bridge_id, created_at{record} FROM moved", types)
    params = {"cid": call_id, "now": now(), **{f"v_{n}": fields[n] for n in names}}
    if legs:
        params["node"] = node()
        for i, (asterisk_id, role, resource) in enumerate(legs):
            params.update({f"l{i}_id": asterisk_id, f"l{i}_role": role, f"l{i}_resource": resource})
    if agent_on_call is not None:
        params["aid"] = agent_on_call
    moved = runner(prepared(("advance-at-once", state, names, len(legs),
                             agent_on_call is not None), build), params).first()
    if moved is not None:
        outbox.written()
    return moved


def _advance(call_id, state, fields, legs=(), agent_on_call=None):
    """The transition in the current transaction (one statement where it can be), putting
    `agent_on_call` on the call with it: the moved call's columns (truthy), or None/False."""
    if outbox.in_one_statement(db.session):
        return _advance_at_once(call_id, state, fields, legs, agent_on_call)
    names = tuple(sorted(fields))

    def build():
        earlier = ORDER[:ORDER.index(state)]
        return (update(_calls).where(_calls.c.id == bindparam("cid"), _calls.c.state.in_(earlier))
                .values(state=state, **{n: bindparam(f"v_{n}") for n in names})
                .returning(*_RETURNED))
    returned = run(prepared(("advance", state, names), build),
                   {"cid": call_id, **{f"v_{n}": fields[n] for n in names}}).first()
    if returned is None:
        return False
    _add_legs(call_id, legs)
    if agent_on_call is not None:
        _set_on_call(agent_on_call, True)
    _record(call_id, state, returned)
    return returned


def _step(call_id, state, fields, legs, agent_on_call=None):
    """A transition committed on its own; on PostgreSQL one statement, with no BEGIN/COMMIT
    when no transaction is open."""
    end_read()
    if outbox.in_one_statement(db.session):   # one statement, committed alone (run_alone)
        moved = _advance_at_once(call_id, state, fields, legs, agent_on_call, runner=run_alone)
        if db.session().in_transaction():   # one was open: run_alone ran the step in it
            if moved:
                db.session.commit()
            else:
                db.session.rollback()
        if moved:
            _logged(call_id, state, **({} if agent_on_call is None else {"agent": agent_on_call}))
        return moved
    moved = _advance(call_id, state, fields, legs, agent_on_call)
    if moved:
        db.session.commit()
        _logged(call_id, state, **({} if agent_on_call is None else {"agent": agent_on_call}))
    else:
        db.session.rollback()
    return moved


def advance(call_id, state, legs=(), **fields):
    """Move a live call forward to `state`, recording `legs` with it: the moved call's columns
    (a truthy row, see _advance_at_once), or a false value when it is already there, past it,
    or final (nothing is written then)."""
    return _step(call_id, state, fields, legs)


def ring_agent(call_id, agent_id, **fields):
    """The agent's leg is about to be originated: the call moves to `agent_ringing`, the leg is
    recorded and the agent is on a call, in one transaction. False (agent untouched) when the
    call is no longer live before that (ended meanwhile by hangupCall)."""
    legs = [(fields["agent_channel_id"], "agent")] if fields.get("agent_channel_id") else []
    return _step(call_id, "agent_ringing", fields, legs, agent_on_call=agent_id)


def set_fields(call_id, **fields):
    end_read()
    db.session.execute(update(_calls).where(_calls.c.id == call_id).values(**fields))
    db.session.commit()


class Freed(NamedTuple):
    """The agent a call's end freed, as its device state needs it (presence.mirror)."""
    extension: Optional[str]
    online: Optional[bool]
    logged_in: Optional[bool]
    paused: Optional[bool]
    on_call: bool = False
    ringing: bool = False


class Ended(NamedTuple):
    """What `finish` returns when it ended the call (always truthy)."""
    agent_id: Optional[int]
    legs: list  # (asterisk id, role, resource) of the legs that were still live: to hang up
    # The agent's session as the end left it (PostgreSQL's one statement returns it), or None
    # (not freed: on another call; or not known): the device state to mirror without a read.
    freed: Optional[Freed] = None


def finish(call_id, state, reason, hangup_cause=None, gone=None):
    """End a live call (state ended or failed) with a reason and free its agent, in one
    conditional UPDATE so two enders racing cannot both win; `gone` is the channel whose
    departure ended it (its leg keeps the cause). Every live leg is marked gone in the same
    transaction and returned (`Ended.legs`): the caller hangs them up next. False when already
    final."""
    assert state in FINAL_CALL_STATES
    end_read()
    reason = reason[:255] if reason else None
    if outbox.in_one_statement(db.session):
        return _finish_at_once(call_id, state, reason, hangup_cause, gone)
    moment = now()
    ended = run(prepared("finish", lambda: update(_calls).where(
        _calls.c.id == bindparam("cid"), _calls.c.state.not_in(FINAL_CALL_STATES))
        .values(state=bindparam("final"), reason=bindparam("reason"),
                hangup_cause=bindparam("cause"), ended_at=bindparam("ended"),
                active_agent_id=None).returning(*_RETURNED)),
        {"cid": call_id, "final": state, "reason": reason, "cause": hangup_cause,
         "ended": moment}).first()
    if ended is None:
        db.session.rollback()
        if gone:
            leg_gone(gone, hangup_cause)
        return False
    if ended.agent_id is not None:
        _set_on_call(ended.agent_id, False)
    if gone:
        _mark_leg(gone, "gone", hangup_cause)
    # The rest of its legs are hung up by whoever ends it (they are returned for that); one
    # still in Asterisk later is the sweep's to find (it looks up present channels, whatever
    # their leg state).
    legs = [tuple(r) for r in run(prepared("legs-gone", lambda: update(_legs).where(
        _legs.c.call_id == bindparam("cid"), _legs.c.state == "live")
        .values(state="gone", ended_at=bindparam("ended"))
        .returning(_legs.c.asterisk_id, _legs.c.role, _legs.c.resource)),
        {"cid": call_id, "ended": moment}).all()]
    _record(call_id, state, ended, reason=reason, hangup_cause=hangup_cause)
    db.session.commit()
    _logged(call_id, state, reason=reason, cause=hangup_cause)
    return Ended(ended.agent_id, legs)


# finish() on PostgreSQL: every CTE sees the rows as they were before the statement, so the
# agent is freed unless another call (not this one, whose active_agent_id is being cleared)
# still has it, and the leg whose departure ended the call keeps its cause in the same UPDATE
# that marks the others gone (one row cannot be updated twice in one statement).
_FINISH_AT_ONCE = """WITH ended AS (
  UPDATE calls SET state = :final, reason = :reason, hangup_cause = :cause, ended_at = :now,
    active_agent_id = NULL
  WHERE id = :cid AND state NOT IN ('ended', 'failed')
  RETURNING agent_id, campaign_id, kind, number, contact_id),
freed AS (
  UPDATE agent_sessions SET on_call = false, ringing = false, mirrored_state = NULL,
    status_since = :now, idle_since = :now
  WHERE agent_id = (SELECT agent_id FROM ended)
    AND NOT EXISTS (SELECT 1 FROM calls WHERE active_agent_id = agent_sessions.agent_id
                    AND id <> :cid)
  RETURNING online, logged_in, paused, true AS was_freed,
    (SELECT sip_extension FROM agents WHERE id = agent_sessions.agent_id) AS extension),
legs AS (
  UPDATE call_legs SET state = 'gone', ended_at = :now,
    hangup_cause = CASE WHEN asterisk_id = :gone AND resource = 'channel' AND node = :node
                        THEN :cause ELSE hangup_cause END
  WHERE call_id = :cid AND state = 'live' AND EXISTS (SELECT 1 FROM ended)
  RETURNING asterisk_id, role, resource,
    (asterisk_id = :gone AND resource = 'channel' AND node = :node) AS departed),
event AS (
  INSERT INTO events (type, call_id, agent_id, campaign_id, data, created_at)
  SELECT :type, :cid, agent_id, campaign_id,
    json_build_object('state', :final, 'kind', kind, 'number', number,
                      'contact_id', contact_id, 'reason', :reason, 'hangup_cause', :cause), :now
  FROM ended)
SELECT ended.agent_id, legs.asterisk_id, legs.role, legs.resource,
  freed.extension, freed.online, freed.logged_in, freed.paused,
  COALESCE(freed.was_freed, false) AS freed
FROM ended LEFT JOIN legs ON NOT legs.departed LEFT JOIN freed ON true"""


def _finish_at_once(call_id, state, reason, hangup_cause, gone):
    """finish() in one statement (PostgreSQL): it was BEGIN, the call's UPDATE, the agent's,
    the departed leg's, the other legs', the event's INSERT and COMMIT, at the end of every
    call. The same rows and event; the same answer."""
    rows = run_alone(prepared("finish-at-once", lambda: prepared_text(_FINISH_AT_ONCE, {
        "cid": _calls.c.id.type, "final": _calls.c.state.type, "reason": _calls.c.reason.type,
        "cause": _calls.c.hangup_cause.type, "now": _calls.c.ended_at.type,
        "gone": _legs.c.asterisk_id.type, "node": _legs.c.node.type,
        "type": Event.__table__.c.type.type})), {
        "cid": call_id, "final": state, "reason": reason, "cause": hangup_cause, "now": now(),
        "gone": gone or "", "node": node(), "type": EVENT_OF_STATE[state]}).all()
    if db.session().in_transaction():   # one was open: run_alone ran the statement in it
        db.session.commit()
    if not rows:
        if gone:
            leg_gone(gone, hangup_cause)
        return False
    outbox.written()
    _logged(call_id, state, reason=reason, cause=hangup_cause)
    first = rows[0]
    freed = Freed(first.extension, first.online, first.logged_in, first.paused) \
        if first.freed else None
    return Ended(first.agent_id, [(r.asterisk_id, r.role, r.resource)
                                  for r in rows if r.asterisk_id is not None], freed)


def claim_agent(call_id, candidates, channel_id):
    """Take the first of `candidates` (agent ids, best first) that is still free for a waiting
    (requested) call and ring it on `channel_id`: the agent is on the call, the call is
    agent_ringing, the leg is recorded, in one transaction. An agent someone else took first
    (another inbound call, or a makeCall whose row already names it: the unique live-call
    constraint) is skipped. The agent id, or None."""
    for agent_id in candidates:
        end_read()
        claimed = db.session.execute(
            update(_sessions).where(_sessions.c.agent_id == agent_id,
                                    _sessions.c.on_call.is_(False))
            .values(on_call=True, ringing=False, mirrored_state=None, status_since=now()))
        if claimed.rowcount != 1:
            db.session.rollback()
            continue
        try:
            moved = _advance(call_id, "agent_ringing", {
                "agent_id": agent_id, "active_agent_id": agent_id,
                "agent_channel_id": channel_id}, [(channel_id, "agent")])
            if not moved:  # the call ended meanwhile: nobody is rung
                db.session.rollback()
                return None
            db.session.commit()
        except IntegrityError:  # the agent's makeCall row won the race
            db.session.rollback()
            continue
        _logged(call_id, "agent_ringing", agent=agent_id)
        return agent_id
    return None


def release_agent(call_id, channel_id, cause=None):
    """The agent rung on `channel_id` did not take the inbound call: the call waits for an
    agent again (agent_ringing → requested) and the agent is free. Only while that leg is still
    the call's ringing agent leg: never moves a call that was answered or ended. Returns the
    released agent id, or None."""
    end_read()
    ringing = (_calls.c.id == call_id, _calls.c.state == "agent_ringing",
               _calls.c.agent_channel_id == channel_id)
    agent_id = db.session.scalar(select(_calls.c.agent_id).where(*ringing))
    released = agent_id is not None and db.session.execute(
        update(_calls).where(*ringing, _calls.c.agent_id == agent_id)
        .values(state="requested", agent_id=None, active_agent_id=None,
                agent_channel_id=None)).rowcount == 1
    _mark_leg(channel_id, "gone", cause)
    if released:
        _set_on_call(agent_id, False)
        outbox.record("call.agent_released", call_id=call_id, agent_id=agent_id,
                      hangup_cause=cause)
    db.session.commit()
    if released:
        _logged(call_id, "requested", released_agent=agent_id, cause=cause)
    return agent_id if released else None


def mark_on_call(agent_id):
    end_read()
    _set_on_call(agent_id, True)
    db.session.commit()


def _set_on_call(agent_id, on_call):
    def build():
        values = {"on_call": on_call, "ringing": False, "mirrored_state": None,
                  "status_since": bindparam("now")}
        where = [_sessions.c.agent_id == bindparam("aid")]
        if not on_call:
            values["idle_since"] = bindparam("now")
            # Never free an agent who is on another live call by now: a call taken over by a
            # supervisor freed its agent early, and the agent may be on a new call when it ends.
            where.append(~select(_calls.c.id).where(
                _calls.c.active_agent_id == bindparam("aid")).exists())
        return update(_sessions).where(*where).values(**values)
    run(prepared(("on-call", on_call), build), {"aid": agent_id, "now": now()})


# -- supervision (ari_engine/supervision.py) ---------------------------------------------------

def note(call_id, event_type, legs=(), **data):
    """Record legs a supervisor's listening adds to a call and its event, in one transaction."""
    end_read()
    _add_legs(call_id, legs)
    returned = db.session.execute(select(*_RETURNED).where(_calls.c.id == call_id)).first()
    outbox.record(event_type, call_id=call_id, agent_id=returned.agent_id if returned else None,
                  campaign_id=returned.campaign_id if returned else None, **data)
    db.session.commit()
    _logged(call_id, event_type, **{k: v for k, v in data.items() if isinstance(v, (str, int))})


def take_over(call_id, channel_id, supervisor_id=None):
    """Take-call: the supervisor's leg `channel_id` replaces the agent's on the bridged call.
    The agent is free at once (its leg is hung up next); the call keeps `agent_id` (who
    handled it) but no longer holds the agent (`active_agent_id` NULL). The released agent's
    id, or None when the call is not bridged any more."""
    end_read()
    returned = db.session.execute(
        update(_calls).where(_calls.c.id == call_id, _calls.c.state == "bridged",
                             _calls.c.active_agent_id.is_not(None))
        .values(agent_channel_id=channel_id, active_agent_id=None)
        .returning(*_RETURNED)).first()
    if returned is None:
        db.session.rollback()
        return None
    _set_on_call(returned.agent_id, False)
    outbox.record("call.taken_over", call_id=call_id, agent_id=returned.agent_id,
                  campaign_id=returned.campaign_id, supervisor_id=supervisor_id,
                  channel=channel_id)
    db.session.commit()
    _logged(call_id, "taken_over", agent=returned.agent_id, supervisor=supervisor_id)
    return returned.agent_id
