"""[experiment, STREAM_WAKEUP=notify] PostgreSQL LISTEN/NOTIFY as the event stream's wake-up.

Writers send `NOTIFY oml_events` in the transaction that adds the event row (delivered at
commit, so the reader then sees the row); one listening connection per process wakes the
stream's poller, which still polls every STREAM_SAFETY_POLL_SECONDS as a safety net. The
default stays the short poll: bench/stream_wakeup_bench.py measured what each costs
(bench/README.md), and NOTIFY serialises the commits of every notifying transaction
(PostgreSQL takes one database-wide lock for the notification queue at commit).
"""
import logging

import gevent
import gevent.socket
from flask import current_app
from sqlalchemy import text

from oml_server.extensions import db

log = logging.getLogger("oml.events")
CHANNEL = "oml_events"
_NOTIFY = text(f"NOTIFY {CHANNEL}")


def enabled(app=None):
    """NOTIFY mode on, and a database that has it (SQLite keeps the poll)."""
    app = app or current_app
    cached = app.extensions.get("oml_stream_notify")
    if cached is None:
        with app.app_context():
            cached = (app.config.get("STREAM_WAKEUP") == "notify"
                      and db.engine.dialect.name == "postgresql")
        app.extensions["oml_stream_notify"] = cached
    return cached


def notify():
    """In the caller's transaction, beside the event row."""
    if enabled():
        db.session.execute(_NOTIFY)


def listen(app, wake, running):
    """Set `wake` on every notification while `running()`; reconnects after an error. Uses a
    connection of its own (detached from the pool) that waits on its socket, not a thread."""
    while running():
        raw = None
        try:
            with app.app_context():
                pooled = db.engine.raw_connection()
                raw = pooled.driver_connection
                pooled.detach()   # ours for good: the pool neither counts nor reuses it
            raw.autocommit = True
            with raw.cursor() as cursor:
                cursor.execute(f"LISTEN {CHANNEL}")
            wake.set()   # anything written before LISTEN took effect is read now
            while running():
                try:
                    gevent.socket.wait_read(raw.fileno(), timeout=5)
                except gevent.socket.timeout:
                    continue
                raw.poll()
                if raw.notifies:
                    raw.notifies.clear()
                    wake.set()
        except Exception:
            log.exception("event stream LISTEN failed; polling until it reconnects")
            gevent.sleep(1)
        finally:
            if raw is not None:
                try:
                    raw.close()
                except Exception:
                    pass
