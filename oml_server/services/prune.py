"""Retention: old events and finished deliveries are removed in small batches.

What goes (EVENTS_RETENTION_DAYS / DELIVERIES_RETENTION_DAYS old, 0 keeps forever):
- a delivery that is `delivered` or `failed` (never a pending or sending one: it is still owed);
- an event the delivery fan-out has read (at or below its cursor: an unread one has not made its
  deliveries yet) and that no open delivery names. Without a cursor (deliveries never ran
  against this database) no event goes. The event stream resumes only within the retention:
  a client away longer than EVENTS_RETENTION_DAYS gets what is left.
Batches are short transactions in id order (old rows first), so writers are never held long.
"""
from datetime import timedelta

from sqlalchemy import delete, func, select

from oml_server.extensions import db
from oml_server.models import Delivery, Event, OutboxCursor, utcnow

from .crm_request import aware
from .deliveries import CURSOR

_events = Event.__table__
_deliveries = Delivery.__table__
FINISHED = ("delivered", "failed")


def _in_batches(pick, table, batch, progress):
    """Delete the ids `pick(batch)` returns until it returns none; the total removed."""
    total = 0
    while True:
        ids = pick(batch)
        if not ids:
            return total
        db.session.execute(delete(table).where(table.c.id.in_(ids)))
        db.session.commit()
        total += len(ids)
        if progress:
            progress(table.name, total)


def deliveries(days, batch=5000, progress=None):
    if not days:
        return 0
    cutoff = utcnow() - timedelta(days=days)

    def pick(limit):
        return db.session.scalars(select(_deliveries.c.id).where(
            _deliveries.c.state.in_(FINISHED), _deliveries.c.created_at < cutoff)
            .order_by(_deliveries.c.id).limit(limit)).all()
    return _in_batches(pick, _deliveries, batch, progress)


def event_bound():
    """The highest event id that may go: read by the fan-out, below every open delivery's."""
    cursor = db.session.get(OutboxCursor, CURSOR)
    if cursor is None:
        return 0
    oldest_open = db.session.scalar(select(func.min(_deliveries.c.event_id)).where(
        _deliveries.c.state.in_(("pending", "sending"))))
    bound = cursor.last_event_id
    if oldest_open is not None:
        bound = min(bound, oldest_open - 1)
    return bound


def events(days, batch=5000, progress=None):
    if not days:
        return 0
    cutoff = utcnow() - timedelta(days=days)
    bound = event_bound()

    def pick(limit):
        # Old rows have the low ids: the head of the id order, filtered by age (a row written
        # a moment out of order does not stop the rest).
        rows = db.session.execute(select(_events.c.id, _events.c.created_at).where(
            _events.c.id <= bound).order_by(_events.c.id).limit(limit)).all()
        db.session.commit()
        return [row.id for row in rows if aware(row.created_at) < cutoff]
    return _in_batches(pick, _events, batch, progress)


def prune(config, batch=5000, progress=None):
    """Both tables by the configured retention: {"deliveries": n, "events": n} removed.
    Deliveries first: a finished one removed may free no event, but never the reverse."""
    return {"deliveries": deliveries(config["DELIVERIES_RETENTION_DAYS"], batch, progress),
            "events": events(config["EVENTS_RETENTION_DAYS"], batch, progress)}
