"""Abuse limits: failed logins and click-to-call, counted in the database (`throttle_events`)
so every worker process sees the same numbers.

Login (per client address, per username *from that address*, and per username from anywhere):
- after `LOGIN_SLOW_AFTER` failures of one username from one address within
  `LOGIN_WINDOW_SECONDS`, each further attempt waits `LOGIN_SLOWDOWN_SECONDS` first;
- after `LOGIN_MAX_FAILURES` such failures, that username is refused from that address
  (429 `{"detail": ...}` with `Retry-After`) until the oldest counted failure leaves the window;
- after `LOGIN_MAX_FAILURES_PER_ADDRESS` failures from one address (any usernames) the address
  is refused the same way;
- failures of one username from *all* addresses only slow it down (never refuse it), so nobody
  can lock a user out from where the user really is. Refused attempts are not counted, so a
  lock-out always ends `LOGIN_WINDOW_SECONDS` after the failure that caused it.
A successful login clears the failures of that username from that address.

Click-to-call: at most `MAKECALL_MAX_PER_WINDOW` calls per agent in `MAKECALL_WINDOW_SECONDS`.
The count is read then written, so a burst of simultaneous requests may pass the limit by the
number that race (one live call per agent is a database constraint anyway).
"""
import math
import random
import time
from datetime import datetime, timedelta, timezone

from flask import current_app
from sqlalchemy import bindparam, delete, func, insert, select

from ..database import Prepared, commit_keeping_loaded, run, run_alone
from ..extensions import db
from ..models import ThrottleEvent

sleep = time.sleep  # gevent patches time.sleep; tests replace this
PRUNE_CHANCE = 0.01


class Refused(Exception):
    """Too many attempts; `retry_after` seconds until the next one may pass."""

    def __init__(self, retry_after):
        super().__init__(retry_after)
        self.retry_after = max(1, int(math.ceil(retry_after)))


def _now():
    return datetime.now(timezone.utc)


def _aware(moment):
    # SQLite hands back naive datetimes (stored as UTC).
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


_events = ThrottleEvent.__table__
# A login's three counts in one prepared read, run on its own: built and planned once (the
# ORM query built on every login was over a quarter of a login's CPU, bench/cpu_per_request.py).
_LOGIN_RECENT = Prepared(
    select(_events.c.key, func.count(_events.c.id), func.min(_events.c.created_at))
    .where(_events.c.key.in_([bindparam("pair"), bindparam("addr"), bindparam("user")]),
           _events.c.created_at > bindparam("since"))
    .group_by(_events.c.key))


def _recent(keys, window):
    """[(count, oldest), …] of a login's three keys (pair, address, user) within the last
    `window` seconds, in the order of `keys`, from one statement that commits on its own."""
    pair, addr, user = keys
    rows = run_alone(_LOGIN_RECENT, {"pair": pair, "addr": addr, "user": user,
                                     "since": _now() - timedelta(seconds=window)})
    found = {key: (count, _aware(oldest)) for key, count, oldest in rows}
    return [found.get(key, (0, None)) for key in keys]


# makeCall's count (one key per request) as prepared statements: built once, planned once
# per PostgreSQL connection (they were built on every request, the insert flushed through the
# ORM's unit of work).
_ONE_KEY_RECENT = Prepared(select(func.count(_events.c.id), func.min(_events.c.created_at))
                           .where(_events.c.key == bindparam("b_key"),
                                  _events.c.created_at > bindparam("since")))
_ONE_KEY_FORGET = Prepared(delete(_events).where(_events.c.key == bindparam("b_key"),
                                                 _events.c.created_at <= bindparam("before")))
_ONE_KEY_COUNT = Prepared(insert(_events).values(key=bindparam("b_key"),
                                                 created_at=bindparam("at")))


def _retry_after(oldest, window):
    return (oldest + timedelta(seconds=window) - _now()).total_seconds()


def _record(*keys, window, commit=True):
    now = _now()
    if len(keys) == 1:  # makeCall's count
        run(_ONE_KEY_FORGET, {"b_key": keys[0], "before": now - timedelta(seconds=window)})
    else:
        db.session.execute(delete(ThrottleEvent).where(
            ThrottleEvent.key.in_(keys),
            ThrottleEvent.created_at <= now - timedelta(seconds=window)))
    prune_sometimes(now)
    if len(keys) == 1:
        run(_ONE_KEY_COUNT, {"b_key": keys[0], "at": now})
    else:
        db.session.add_all(ThrottleEvent(key=key, created_at=now) for key in keys)
    if commit:
        db.session.commit()


def prune_sometimes(now):
    """Now and then (PRUNE_CHANCE) remove every count older than the longest window: keys never
    seen again (old addresses) go too."""
    if random.random() < PRUNE_CHANCE:
        cfg = current_app.config
        longest = max(cfg["LOGIN_WINDOW_SECONDS"], cfg["MAKECALL_WINDOW_SECONDS"])
        db.session.execute(delete(ThrottleEvent).where(
            ThrottleEvent.created_at <= now - timedelta(seconds=longest)))


def call_key(agent_id):
    return f"call:{agent_id}"


def _login_keys(username, address):
    name = (username or "").strip().lower()[:150]
    address = (address or "unknown")[:100]
    return f"login-pair:{name}@{address}", f"login-addr:{address}", f"login-user:{name}"


def before_login(username, address):
    """Refuse (Refused) or slow down a login attempt before the password is checked.
    Returns the failures counted for this username from this address (a success clears them:
    none counted, nothing to clear)."""
    cfg = current_app.config
    window = cfg["LOGIN_WINDOW_SECONDS"]
    pair, addr, user = _login_keys(username, address)
    (pair_count, pair_oldest), (addr_count, addr_oldest), (user_count, _) = _recent(
        (pair, addr, user), window)
    if pair_count >= cfg["LOGIN_MAX_FAILURES"]:
        raise Refused(_retry_after(pair_oldest, window))
    if addr_count >= cfg["LOGIN_MAX_FAILURES_PER_ADDRESS"]:
        raise Refused(_retry_after(addr_oldest, window))
    if pair_count >= cfg["LOGIN_SLOW_AFTER"] or user_count >= cfg["LOGIN_SLOW_AFTER_PER_USER"]:
        sleep(cfg["LOGIN_SLOWDOWN_SECONDS"])   # holding no connection: the read ran alone
    return pair_count


def login_failed(username, address):
    _record(*_login_keys(username, address), window=current_app.config["LOGIN_WINDOW_SECONDS"])


def login_succeeded(username, address):
    """Clear the failures of this username from this address. A failure recorded while the
    password was being checked may be cleared too, as it was before; one the caller skips
    this for (none counted before) stays counted: stricter, never looser."""
    pair, _, _ = _login_keys(username, address)
    db.session.execute(delete(ThrottleEvent).where(ThrottleEvent.key == pair))
    commit_keeping_loaded(db.session)   # the logged-in user is answered as loaded


def count_call(agent_id, commit=True):
    """Count one click-to-call for `agent_id`, or raise Refused when over the limit.

    `commit=False` leaves the count in the session's transaction: makeCall commits it with the
    call's row (one transaction per call, not two), and calls `record_call` if that fails."""
    cfg = current_app.config
    window = cfg["MAKECALL_WINDOW_SECONDS"]
    key = call_key(agent_id)
    count, oldest = run(_ONE_KEY_RECENT, {"b_key": key,
                                          "since": _now() - timedelta(seconds=window)}).one()
    if count >= cfg["MAKECALL_MAX_PER_WINDOW"]:
        db.session.rollback()
        raise Refused(_retry_after(_aware(oldest), window))
    _record(key, window=window, commit=commit)


def record_call(agent_id):
    """Count a click-to-call whose uncommitted count was rolled back (the agent was busy): a
    request refused that way still counts against the limit, in its own transaction."""
    _record(call_key(agent_id), window=current_app.config["MAKECALL_WINDOW_SECONDS"])
