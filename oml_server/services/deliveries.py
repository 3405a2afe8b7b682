"""The deliveries table: every request to a CRM, stored before it is sent, and its log.

fan_out: outbox events → one delivery row per matching destination (webhooks; the campaign's
Servidor site when the agent answers; its Calificación site after a disposition whose option
has crm_interaction). Idempotent through the unique (destination, key): reading an event twice
(after a restart, or by two delivering processes) adds nothing.

claim / settle: a sender takes due rows of one destination by moving them to `sending` with a
lease, in one conditional UPDATE (re-checked on the row it locks), so two processes never send
the same row at once; a row whose earlier sibling (same destination and call) is not delivered
yet waits, which keeps a call's requests in order. A lease that runs out (the sender died) makes
the row claimable again: at least once.
"""
import json
import random
import time
from datetime import timedelta

from flask import current_app
from sqlalchemy import and_, bindparam, func, or_, select, text, update
from sqlalchemy.orm import aliased

from oml_server.database import Prepared, run, statements_commit_alone
from oml_server.extensions import db
from oml_server.models import Campaign, Delivery, ExternalSite, OutboxCursor, Webhook, utcnow

from . import crm_request
from .outbox_reader import OutboxReader

_deliveries = Delivery.__table__
CURSOR = "deliveries"
SERVER_TRIGGER, DISPOSITION_TRIGGER = 3, 4
# The agent takes the call: answered (click-to-call), bridged (inbound), or a transfer handed it
# to another agent (issue 9's `call.transferred`, whose agent_id is the new agent).
ANSWER_EVENTS = ("call.answered", "call.bridged", "call.transferred")


# -- what an event means for each destination ---------------------------------------------

def matches(patterns, type_):
    """Does a webhook's `events` list take `type_`? `*`, an exact type, or `prefix.*`."""
    for pattern in patterns or ():
        if pattern == "*" or pattern == type_ or (
                pattern.endswith(".*") and type_.startswith(pattern[:-1])):
            return True
    return False


def event_body(event):
    """The webhook body: {"id", "type", "time", "data"} (data holds the event's ids too)."""
    data = {key: value for key, value in (("call_id", event.call_id), ("agent_id", event.agent_id),
                                          ("campaign_id", event.campaign_id)) if value is not None}
    data.update(event.data or {})
    created = crm_request.aware(event.created_at)
    return {"id": str(event.id), "type": event.type,
            "time": created.isoformat().replace("+00:00", "Z"), "data": data}


def _order_key(event):
    if event.call_id:
        return f"call:{event.call_id}"[:48]
    if event.agent_id is not None:
        return f"agent:{event.agent_id}"
    return None


def _webhook_rows(event, webhooks):
    body = None
    for hook in webhooks:
        if matches(hook.events, event.type):
            body = body or json.dumps(event_body(event), separators=(",", ":")).encode()
            yield {"destination": f"webhook:{hook.id}", "key": f"event:{event.id}",
                   "event_id": event.id, "order_key": _order_key(event), "method": "POST",
                   "url": hook.url, "content_type": "application/json", "body": body,
                   "secret": hook.secret}


# The fan-out runs every DELIVERY_POLL_SECONDS while calls write events: its reads are
# prepared Core statements (the ORM loads they replace were a visible share of the server's
# CPU per call, with no webhook and no site configured at all).
_WEBHOOKS = Prepared(select(Webhook.id, Webhook.url, Webhook.events, Webhook.secret)
                     .where(Webhook.active.is_(True)).order_by(Webhook.id))
_SITE_TRIGGER = Prepared(select(ExternalSite.disparador).select_from(Campaign)
                         .join(ExternalSite, ExternalSite.id == Campaign.external_site_id)
                         .where(Campaign.id == bindparam("cid")))


def _site_rows(event, triggers):
    """The campaign site's request this event triggers, if any. `triggers`: campaign id ->
    its site's trigger (None: no site), read once per fan-out batch."""
    if event.campaign_id is None:
        return
    server = event.type in ANSWER_EVENTS
    rated = event.type in ("disposition.created", "disposition.updated") and (
        event.data or {}).get("crm_interaction")
    if not (server or rated):
        return
    if event.campaign_id not in triggers:
        triggers[event.campaign_id] = run(_SITE_TRIGGER, {"cid": event.campaign_id}).scalar()
    if triggers[event.campaign_id] != (SERVER_TRIGGER if server else DISPOSITION_TRIGGER):
        return   # no site, or one this event does not trigger: nothing more to read
    campaign = db.session.get(Campaign, event.campaign_id)
    site = campaign.external_site if campaign is not None else None
    if site is None or site.disparador != (SERVER_TRIGGER if server else DISPOSITION_TRIGGER):
        return
    if server:
        # One request per agent taking the call (click-to-call answers, then bridges;
        # inbound bridges at once; a transfer hands it to another agent).
        key = f"answer:{event.call_id}:{event.agent_id}"
        sent, places = crm_request.parameters(campaign, crm_request.call_of(event.call_id),
                                              agent_id=event.agent_id)
    else:
        key = f"event:{event.id}"
        disposition = crm_request.disposition_of(event.data.get("disposition_id"))
        sent, places = crm_request.parameters(campaign, crm_request.call_of(event.call_id),
                                              disposition=disposition, agent_id=event.agent_id)
    method, url, content_type, body = crm_request.render(site, sent, places)
    auth = site.autenticacion
    yield {"destination": f"site:{site.id}", "key": key[:64], "event_id": event.id,
           "order_key": _order_key(event), "method": method, "url": url,
           "content_type": content_type, "body": body, "secret": site.signing_secret,
           "authentication_id": auth.id if auth else None,
           "verify_tls": auth.ssl_estricto if auth else True}


def rows_for(events):
    webhooks = run(_WEBHOOKS, {}).all()
    triggers = {}
    for event in events:
        yield from _webhook_rows(event, webhooks)
        yield from _site_rows(event, triggers)


def _insert_new(rows):
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    now = utcnow()
    for row in rows:
        row.setdefault("authentication_id", None)
        row.setdefault("verify_tls", True)
        row.update(state="pending", attempts=0, next_attempt_at=now, created_at=now)
    # executemany: one compiled statement, not a VALUES list compiled anew for every batch.
    db.session.execute(insert(_deliveries).on_conflict_do_nothing(
        index_elements=["destination", "key"]), rows)
    return len(rows)


class FanOut:
    """Reads the outbox after the persisted cursor and writes delivery rows."""

    # A batch that adds no delivery (no destination wants its events: the common case with
    # no webhook) moves the persisted cursor at most this often, not once per poll. After a
    # restart the few seconds since are read again: adding their rows is idempotent.
    CURSOR_SAVE_SECONDS = 2.0

    def __init__(self):
        self.reader = None
        self.saved = None  # the cursor this process last wrote (or read)
        self.saved_at = None   # when (monotonic); None: not written by this process yet

    def step(self, limit=500):
        """One batch; the number of delivery rows written (some may have been there)."""
        if self.reader is None:
            cursor = db.session.get(OutboxCursor, CURSOR)
            self.saved = cursor.last_event_id if cursor else 0
            self.reader = OutboxReader(self.saved)
        # The poll's reads alone, outside a transaction block on PostgreSQL (no BEGIN and
        # ROLLBACK round trips): this runs every DELIVERY_POLL_SECONDS, and the idle poll was
        # most of an idle server's CPU (~10% of it during calls).
        statements_commit_alone(db.session)
        events = self.reader.read(limit)
        if not events and self.reader.after == self.saved:
            db.session.commit()
            return 0   # nothing new: no destinations to read, no cursor to write
        try:
            rows = list(rows_for(events))
            db.session.commit()   # the writes below, if any, are one transaction of their own
            if not rows and self.saved_at is not None \
                    and time.monotonic() - self.saved_at < self.CURSOR_SAVE_SECONDS:
                return 0
            added = _insert_new(rows) if rows else 0
            _save_cursor(self.reader.after)
            db.session.commit()
            self.saved, self.saved_at = self.reader.after, time.monotonic()
        except Exception:
            db.session.rollback()
            self.reader = None    # re-read from the persisted cursor: inserts are idempotent
            raise
        return added


_MOVE_CURSOR = Prepared(update(OutboxCursor.__table__).where(
    OutboxCursor.__table__.c.name == bindparam("b_name"),
    OutboxCursor.__table__.c.last_event_id < bindparam("b_after"))
    .values(last_event_id=bindparam("b_after")))


def _save_cursor(after):
    """Never back: another process may be further on."""
    if run(_MOVE_CURSOR, {"b_name": CURSOR, "b_after": after}).rowcount:
        return
    if db.session.get(OutboxCursor, CURSOR) is None:
        db.session.add(OutboxCursor(name=CURSOR, last_event_id=after))


# -- sending ------------------------------------------------------------------------------

def _due(now):
    return or_(and_(_deliveries.c.state == "pending", _deliveries.c.next_attempt_at <= now),
               and_(_deliveries.c.state == "sending", _deliveries.c.lease_until < now))


# The destinations with a due row, walking the open-rows index one destination at a time (a
# loose index scan) and probing each for one due row. As `SELECT DISTINCT destination … WHERE
# due` it read every due row, every poll: a dead CRM's backlog (all due: rows handed back
# untried are due at once) cost PostgreSQL 7 ms per poll at 10,000 rows and 85 ms at
# 100,000, growing for as long as the CRM stays dead; this is 0.05 ms at both
# (bench/due_destinations_bench.py).
_DUE_DESTINATIONS = Prepared(text("""
WITH RECURSIVE open_destinations(destination) AS (
  SELECT * FROM (SELECT destination FROM deliveries WHERE state IN ('pending', 'sending')
                 ORDER BY destination LIMIT 1) AS first
  UNION ALL
  SELECT (SELECT d.destination FROM deliveries d WHERE d.state IN ('pending', 'sending')
          AND d.destination > o.destination ORDER BY d.destination LIMIT 1)
  FROM open_destinations o WHERE o.destination IS NOT NULL)
SELECT destination FROM open_destinations o WHERE destination IS NOT NULL AND EXISTS (
  SELECT 1 FROM deliveries x WHERE x.destination = o.destination
  AND x.state IN ('pending', 'sending')
  AND ((x.state = 'pending' AND x.next_attempt_at <= :now)
       OR (x.state = 'sending' AND x.lease_until < :now)))
""").bindparams(bindparam("now", type_=Delivery.__table__.c.next_attempt_at.type)))


def due_destinations():
    # Polled every second by each process: parsed and planned once per connection (Prepared).
    statements_commit_alone(db.session)
    rows = run(_DUE_DESTINATIONS, {"now": utcnow()}).all()
    db.session.commit()
    return [row.destination for row in rows]


def claim(destination, limit, lease_seconds):
    """Take up to `limit` due rows of `destination` (oldest first, one per call at a time)."""
    now = utcnow()
    earlier = aliased(Delivery)
    # A row goes when it is the oldest open one of its call at this destination. Written as a
    # correlated min() (one probe of ix_deliveries_open per row): as NOT EXISTS, PostgreSQL
    # planned an anti join comparing every open row with every other (90 ms at 1,000 rows).
    head = (select(func.min(earlier.id))
            .where(earlier.destination == _deliveries.c.destination,
                   earlier.order_key == _deliveries.c.order_key,
                   earlier.state.in_(("pending", "sending"))).scalar_subquery())
    candidates = (select(_deliveries.c.id).where(_deliveries.c.destination == destination,
                                                 _due(now), or_(_deliveries.c.order_key.is_(None),
                                                                _deliveries.c.id == head))
                  .order_by(_deliveries.c.id).limit(limit))
    if db.session.get_bind().dialect.name == "postgresql":
        # A materialized CTE: as a plain `IN (subquery … LIMIT)` PostgreSQL may run the
        # subquery more than once and update more rows than the limit.
        picked = candidates.with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED")
    else:
        picked = candidates.cte("picked")
    claimed = db.session.execute(
        update(_deliveries).where(_deliveries.c.id.in_(select(picked.c.id)), _due(now))
        .values(state="sending", lease_until=now + timedelta(seconds=lease_seconds),
                attempts=_deliveries.c.attempts + 1, last_attempt_at=now)
        .returning(_deliveries)).all()
    db.session.commit()
    return sorted(claimed, key=lambda row: row.id)


def settle(row, status=None, error=None, retry=False):
    """Record an attempt's outcome: delivered (no error, no retry), retry later (with
    exponential backoff while within CRM_RETRY_HOURS), or failed for good. Only while the row
    is still this attempt's (same attempts count, still sending)."""
    config = current_app.config
    now = utcnow()
    values = {"last_status": status, "last_error": error[:2000] if error else None,
              "lease_until": None}
    if error is None and not retry:
        values.update(state="delivered", delivered_at=now)
    elif retry and now - crm_request.aware(row.created_at) < timedelta(
            hours=config["CRM_RETRY_HOURS"]):
        delay = min(config["CRM_RETRY_BASE_SECONDS"] * 2 ** (row.attempts - 1),
                    config["CRM_RETRY_MAX_SECONDS"])
        values.update(state="pending",
                      next_attempt_at=now + timedelta(seconds=delay * random.uniform(0.8, 1.2)))
    else:
        values.update(state="failed")
    db.session.execute(update(_deliveries).where(
        _deliveries.c.id == row.id, _deliveries.c.attempts == row.attempts,
        _deliveries.c.state == "sending").values(**values))
    db.session.commit()
    return values["state"]


_DELIVERED = (update(_deliveries)
              .where(_deliveries.c.id == bindparam("row_id"),
                     _deliveries.c.attempts == bindparam("row_attempts"),
                     _deliveries.c.state == "sending")
              .values(state="delivered", delivered_at=bindparam("moment"),
                      last_status=bindparam("status"), last_error=None, lease_until=None))


_RELEASED = (update(_deliveries)
             .where(_deliveries.c.id == bindparam("row_id"),
                    _deliveries.c.attempts == bindparam("row_attempts"),
                    _deliveries.c.state == "sending")
             .values(state="pending", attempts=_deliveries.c.attempts - 1, lease_until=None))


def release(rows):
    """Hand claimed rows back untried (their slot stopped at a failing CRM): the attempt their
    claim counted is taken back, and they are due at once. One statement (executemany)."""
    if rows:
        db.session.execute(_RELEASED, [{"row_id": row.id, "row_attempts": row.attempts}
                                       for row in rows])
        db.session.commit()


def cancel(destination, reason):
    """A webhook or site removed: its requests not yet delivered are failed now (they were
    retried for CRM_RETRY_HOURS, a dead CRM's backlog with them). One already being sent may
    still arrive; its log then says failed."""
    db.session.execute(update(_deliveries).where(
        _deliveries.c.destination == destination,
        _deliveries.c.state.in_(("pending", "sending"))).values(
            state="failed", last_error=reason, lease_until=None))


def cancel_webhook(pk):
    cancel(f"webhook:{pk}", "webhook deleted")


def cancel_site(pk):
    cancel(f"site:{pk}", "external site deleted")


def settle_delivered(done):
    """Many deliveries that got a 2xx, `done` [(row, status)], in one statement."""
    if done:
        moment = utcnow()
        db.session.execute(_DELIVERED, [{"row_id": row.id, "row_attempts": row.attempts,
                                         "moment": moment, "status": status} for row, status in done])
        db.session.commit()


# -- the log ------------------------------------------------------------------------------

def log_of(destination, before=None, limit=100):
    """A destination's deliveries as JSON, newest first; `before` (an id) pages back."""
    query = select(Delivery).where(Delivery.destination == destination)
    if before is not None:
        query = query.where(Delivery.id < before)
    return [representation(d) for d in
            db.session.scalars(query.order_by(Delivery.id.desc()).limit(limit))]


def representation(delivery):
    def iso(moment):
        moment = crm_request.aware(moment)
        return moment.isoformat() if moment else None
    return {"id": str(delivery.id), "event_id": delivery.event_id, "state": delivery.state,
            "attempts": delivery.attempts, "last_status": delivery.last_status,
            "last_error": delivery.last_error, "method": delivery.method, "url": delivery.url,
            "created_at": iso(delivery.created_at), "last_attempt_at": iso(delivery.last_attempt_at),
            "next_attempt_at": iso(delivery.next_attempt_at) if delivery.state == "pending" else None,
            "delivered_at": iso(delivery.delivered_at)}
