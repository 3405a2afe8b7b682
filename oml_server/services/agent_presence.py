"""An agent's session: logged in, paused, ringing, and the activity log (contract §2.8, §2.10).

Each request is one transaction on the agent's `AgentSession` row (locked `FOR UPDATE` where
the database has it) plus one `AgentActivity` row when something changed. After the commit the
engine is asked to mirror the new state into Asterisk (`telephony.presence_changed`); that
mirror may fail without undoing the change: `mirrored_state` stays NULL ("still to write") and
the engine writes it when it (re)connects.

What each endpoint answers (chosen for an agent console, which retries and reloads freely):

* The rule: every endpoint names a *target* state. Reaching it, or already being in it, is OK
  (idempotent, and no activity row when nothing changed). ERROR means the request itself is
  bad (missing or unknown `pause_id`, a `ringing` that is not true/false) or the target makes no
  sense from where the agent is: pausing, unpausing or getting ready need a logged-in session.
* login: logged out → logged in, not paused, idle from now. Already logged in: OK, unchanged
  (a pause in progress is kept).
* logout: ends the session and any pause. Already logged out: OK.
* pause(pause_id): logged out → ERROR. Paused with the same id: OK, unchanged. Paused with
  another id: switches to the new pause (one "pause" row).
* unpause(pause_id): the id must still be valid; logged out → ERROR; not paused → OK. A pause id
  other than the current one still ends the current pause (the console wants to be ready);
  the activity row names the pause that ended.
* ready: unpause without a pause id (logged out → ERROR, not paused → OK).
* ringing(true|false): the phone's state, which does not depend on the session (a click-to-call
  rings a logged-out agent too). Same value again: OK, unchanged.
* reject_call: an event, always recorded, stops ringing, always OK.
* disabled: the phone became unusable; recorded, stops ringing, always OK (even if the write fails).
* after_call_work(seconds): not an endpoint: saving a call's disposition in a campaign with
  after-call work puts the agent in the ACW pause ("0") until `pause_until`; the engine then
  makes it ready (`end_after_call_work`, every second). A pause the agent chose is kept, and
  any other change of the session (ready, another pause, logout) ends the ACW's clock.
"""
import logging
from datetime import timedelta, timezone

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ..database import Prepared, is_unique_violation, run, statements_commit_alone, take_write_lock
from ..extensions import db
from ..models import SYSTEM_PAUSES, AgentActivity, AgentSession, Pause, User, utcnow
from . import outbox, telephony
from .lookup import parse_id

log = logging.getLogger(__name__)
ACW = "0"   # the system pause of after-call work


class _Refused(Exception):
    """The target state makes no sense from the current one: answer ERROR."""


def session_for(agent_id):
    """The agent's presence row, created on first use."""
    row = db.session.get(AgentSession, agent_id)
    if row is None:
        row = AgentSession(agent_id=agent_id)
        db.session.add(row)
    return row


def record(agent_id, event, pause_id=None):
    db.session.add(AgentActivity(agent_id=agent_id, event=event, pause_id=pause_id))


def pause_key(raw):
    """The stored id of a pause: a system pause ("0", "00", "OW") or an existing Pause's id as
    text; None when missing or unknown."""
    if isinstance(raw, str) and raw.strip() in SYSTEM_PAUSES:
        return raw.strip()
    if isinstance(raw, int) and not isinstance(raw, bool) and str(raw) in SYSTEM_PAUSES:
        return str(raw)  # JSON number 0: the after-call-work pause
    pause_id = parse_id(raw)
    if pause_id is None or db.session.get(Pause, pause_id) is None:
        return None
    return str(pause_id)


def parse_ringing(raw):
    """True/False from a JSON boolean or the form values "true"/"false" (also 1/0)."""
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        text = raw.strip().lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    return None


# --- the endpoints ---------------------------------------------------------------------------

def login(agent_id):
    def target(row):
        if row.logged_in:
            return None
        row.logged_in, row.paused, row.pause_id, row.idle_since = True, False, None, utcnow()
        row.pause_until = None
        return "login", None
    return _change(agent_id, target)


def logout(agent_id):
    def target(row):
        if not row.logged_in:
            return None
        row.logged_in, row.paused, row.pause_id, row.idle_since = False, False, None, None
        row.pause_until = None
        return "logout", None
    return _change(agent_id, target)


def pause(agent_id, raw_pause_id):
    key = pause_key(raw_pause_id)
    if key is None:
        return False

    def target(row):
        if not row.logged_in:
            raise _Refused()
        if row.paused and row.pause_id == key:
            return None
        row.paused, row.pause_id, row.idle_since, row.pause_until = True, key, None, None
        return "pause", key
    return _change(agent_id, target)


def unpause(agent_id, raw_pause_id):
    if pause_key(raw_pause_id) is None:
        return False
    return _change(agent_id, _unpaused)


def ready(agent_id):
    return _change(agent_id, _unpaused)


def _unpaused(row):
    if not row.logged_in:
        raise _Refused()
    if not row.paused:
        return None
    ended = row.pause_id
    row.paused, row.pause_id, row.idle_since, row.pause_until = False, None, utcnow(), None
    return "unpause", ended


def after_call_work(agent_id, seconds):
    """The ACW pause for `seconds` (from now), for a logged-in agent not in a pause of its own."""
    def target(row):
        if not row.logged_in or (row.paused and row.pause_id != ACW):
            return None
        row.pause_until = utcnow() + timedelta(seconds=seconds)
        if row.paused:   # already in ACW: the clock starts again
            return None
        row.paused, row.pause_id, row.idle_since = True, ACW, None
        return "pause", ACW
    return _change(agent_id, target)


# Polled once a second by the engine: prepared, and read outside a transaction block on
# PostgreSQL (one round trip, not BEGIN, SELECT, COMMIT).
_ACW_OVER = Prepared(select(AgentSession.agent_id).where(
    AgentSession.pause_until <= bindparam("now")))


def end_after_call_work(now=None):
    """Make ready every agent whose after-call work is over; how many were."""
    now = now or utcnow()
    statements_commit_alone(db.session)
    due = [row[0] for row in run(_ACW_OVER, {"now": now}).all()]
    db.session.commit()

    def target(row):
        until = row.pause_until
        if until is None:
            return None   # ended meanwhile (ready, another pause, logout)
        if not row.logged_in or not row.paused:
            row.pause_until = None
            return None
        if until.tzinfo is None:   # SQLite hands back naive UTC
            until = until.replace(tzinfo=timezone.utc)
        return _unpaused(row) if until <= now else None
    return sum(1 for agent_id in due if _change(agent_id, target))


def ringing(agent_id, raw_value):
    value = parse_ringing(raw_value)
    if value is None:
        return False

    def target(row):
        if bool(row.ringing) == value:
            return None
        row.ringing = value
        return ("ringing" if value else "ringing_stopped"), None
    return _change(agent_id, target)


def reject_call(agent_id):
    def target(row):
        row.ringing = False
        return "reject_call", None
    return _change(agent_id, target)


def disabled(agent_id):
    def target(row):
        row.ringing = False
        return "disabled", None
    try:
        _change(agent_id, target)
    except SQLAlchemyError:
        log.warning("could not record agent %s's phone as disabled", agent_id, exc_info=True)
        db.session.rollback()
    return True


def logout_user_id(user_id):
    """End the Asterisk session of the user's agent, if it is one and is logged in."""
    user = db.session.get(User, user_id)
    if user is None or user.agent is None:
        return
    logout(user.agent.id)


# --- one transaction per change, then the mirror ---------------------------------------------

def _locked_row(agent_id):
    take_write_lock(db.session)
    row = db.session.scalar(select(AgentSession).where(AgentSession.agent_id == agent_id)
                            .with_for_update())
    if row is None:
        row = AgentSession(agent_id=agent_id)
        db.session.add(row)
        db.session.flush()  # a concurrent first use collides here on the primary key
    return row


def _change(agent_id, target):
    """Apply `target(row)` -> None (nothing to change) or (event, pause_id) in one transaction.

    Returns True (OK) or False (refused).
    """
    for attempt in (1, 2):
        try:
            row = _locked_row(agent_id)
            outcome = target(row)
        except _Refused:
            db.session.rollback()
            return False
        except IntegrityError as exc:
            db.session.rollback()
            if attempt == 1 and is_unique_violation(exc):
                continue  # another request created the row first: now it exists
            raise
        if outcome is None:
            pending, version = row.mirrored_state is None, row.updated_at
            db.session.commit()  # releases the row lock
            if pending:  # an earlier mirror failed: a retry costs nothing
                _mirror(agent_id, version)
            return True
        event, pause_id = outcome
        version = utcnow()
        row.mirrored_state = None
        row.updated_at = version
        row.status_since = version  # supervision's `tiempo` counts from here
        record(agent_id, event, pause_id)
        outbox.agent_status(row, event)
        db.session.commit()
        _mirror(agent_id, version)
        return True
    return False  # pragma: no cover (the loop always returns or raises)


def _mirror(agent_id, version):
    """Ask the engine to mirror the row; store what it wrote unless the row changed since."""
    try:
        state = telephony.presence_changed(agent_id)
    except Exception:
        log.warning("presence of agent %s not mirrored to Asterisk; the engine will write it "
                    "when it reconnects", agent_id, exc_info=True)
        return
    if not isinstance(state, str) or not state:
        return
    try:
        db.session.execute(
            update(AgentSession)
            .where(AgentSession.agent_id == agent_id, AgentSession.updated_at == version,
                   AgentSession.mirrored_state.is_(None))
            .values(mirrored_state=state[:16], updated_at=version))
        db.session.commit()
    except SQLAlchemyError:
        db.session.rollback()
        log.warning("could not record the mirrored state of agent %s", agent_id, exc_info=True)


# --- the console heartbeat (contract-calls §5) -------------------------------------------------

def heartbeat(agent_id, lost_before):
    """A console of the agent is alive: one UPDATE of `heartbeat_at`. A beat after the timeout
    ran out (`lost_before`) ends the agent's UNAVAILABLE time: its status starts again now."""
    from sqlalchemy import case
    now = utcnow()
    sessions = AgentSession.__table__
    was_lost = sessions.c.heartbeat_at < lost_before
    done = db.session.execute(update(sessions).where(sessions.c.agent_id == agent_id).values(
        heartbeat_at=now,
        status_since=case((was_lost, now), else_=sessions.c.status_since))).rowcount
    if not done:
        session_for(agent_id).heartbeat_at = now
    db.session.commit()
    return now
