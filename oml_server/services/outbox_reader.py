"""Reading the outbox in id order without ever skipping an event that commits late.

Ids come from a sequence, taken when the row is inserted, not when its transaction commits:
id 11 may be visible while id 10 is still being written by a slower transaction. A reader that
jumped to 11 would never see 10. So the reader returns every row it has not returned yet, but
only moves its safe point (`after`: everything at or below it was handled) over ids it has
seen, or over a hole that stayed empty for GAP_SECONDS (a rolled-back transaction's id never
appears). Used by the delivery fan-out (which persists `after`) and the event stream.
"""
import time

from sqlalchemy import bindparam, select

from oml_server.database import Prepared, run
from oml_server.extensions import db
from oml_server.models import Event

_events = Event.__table__
GAP_SECONDS = 10.0
_NEW_EVENTS = {}  # limit -> the prepared read (polled several times a second)


def _new_events(limit):
    statement = _NEW_EVENTS.get(limit)
    if statement is None:
        statement = _NEW_EVENTS[limit] = Prepared(
            select(_events).where(_events.c.id > bindparam("after"))
            .order_by(_events.c.id).limit(limit))
    return statement


class OutboxReader:
    def __init__(self, after=0, gap_seconds=GAP_SECONDS):
        self.after = after
        self.gap_seconds = gap_seconds
        self._seen = set()     # ids above `after` already returned
        self._holes = {}       # id missing below a seen one -> when it was first missed

    def read(self, limit=500):
        """New events (Core rows, id order), at most `limit`."""
        rows = run(_new_events(limit), {"after": self.after}).all()
        fresh = [row for row in rows if row.id not in self._seen]
        self._seen.update(row.id for row in fresh)
        self._advance()
        return fresh

    def _advance(self):
        now = time.monotonic()
        top = max(self._seen, default=self.after)
        for missing in range(self.after + 1, top):
            if missing not in self._seen:
                self._holes.setdefault(missing, now)
        while True:
            nxt = self.after + 1
            if nxt in self._seen:
                self._seen.discard(nxt)
            elif nxt in self._holes and now - self._holes[nxt] >= self.gap_seconds:
                pass   # nothing committed under that id in time: a rolled-back write
            else:
                break
            self._holes.pop(nxt, None)
            self.after = nxt


def last_event_id():
    return db.session.scalar(select(db.func.max(_events.c.id))) or 0
