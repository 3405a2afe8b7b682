"""[extension] The live event stream: one poller greenlet per process reads new outbox rows
(a short poll, STREAM_POLL_SECONDS; with STREAM_WAKEUP=notify on PostgreSQL, woken by
LISTEN/NOTIFY and polling every STREAM_SAFETY_POLL_SECONDS: services/outbox_notify.py) and
puts each into the queue of every subscriber allowed to see it. A client holds a queue and a
greenlet, no thread and no database connection; its request used the database only to
authenticate and to replay what it missed (Last-Event-ID).

Who sees what: Administrador and Gerente everything; a Supervisor the events of its campaigns
and the status of those campaigns' agents; an Agente its own calls and status.

A subscriber that falls QUEUE_SIZE events behind is dropped (its stream ends): the client
reconnects with Last-Event-ID and the replay catches it up, so memory stays bounded.
"""
import json
import logging
import weakref

import gevent
import gevent.event
import gevent.queue
from sqlalchemy import or_, select, true

from ..extensions import db
from ..models import AgentProfile, Event, campaign_agents, campaign_supervisors
from . import outbox_notify
from .deliveries import event_body
from .outbox_reader import OutboxReader, last_event_id

log = logging.getLogger("oml.events")
_events = Event.__table__
QUEUE_SIZE = 1000
REPLAY_LIMIT = 1000
IDLE_STOP_SECONDS = 60     # the poller stops after this long without subscribers
_CLOSE = object()
_hubs = weakref.WeakSet()   # every hub of this process: a stopping worker closes them all
_stopping = False           # set by close_all_hubs: a hub made afterwards starts closed


class Subscriber:
    def __init__(self, everything=False, agent_ids=(), campaign_ids=()):
        self.everything = everything
        self.agent_ids = frozenset(agent_ids)
        self.campaign_ids = frozenset(campaign_ids)
        self.queue = gevent.queue.Queue(QUEUE_SIZE)

    def wants(self, event):
        return self.everything or event.agent_id in self.agent_ids or (
            event.campaign_id is not None and event.campaign_id in self.campaign_ids)

    def condition(self):
        """The same rule as SQL, for the replay."""
        if self.everything:
            return true()
        return or_(_events.c.agent_id.in_(self.agent_ids), _events.c.campaign_id.in_(self.campaign_ids))


def subscriber_for(user):
    if user.role in ("Administrador", "Gerente"):
        return Subscriber(everything=True)
    if user.role == "Supervisor":
        campaigns = db.session.scalars(select(campaign_supervisors.c.campaign_id)
                                       .where(campaign_supervisors.c.user_id == user.id)).all()
        agents = db.session.scalars(select(campaign_agents.c.agent_id).where(
            campaign_agents.c.campaign_id.in_(campaigns))).all() if campaigns else []
        return Subscriber(agent_ids=agents, campaign_ids=campaigns)
    agent_id = db.session.scalar(select(AgentProfile.id).where(AgentProfile.user_id == user.id))
    return Subscriber(agent_ids=[agent_id] if agent_id else [])


def frame(event_id, type_, payload):
    return f"id: {event_id}\nevent: {type_}\ndata: {payload}\n\n"


def _framed(event):
    return event.id, frame(event.id, event.type, json.dumps(event_body(event), separators=(",", ":")))


class Hub:
    def __init__(self, app):
        self.app = app
        self.subscribers = set()
        self.poller = None
        self.closed = _stopping
        self.wake = gevent.event.Event()   # set: read the outbox now (NOTIFY, closing)
        self.poller_done = False

    def subscribe(self, sub):
        if self.closed:
            sub.queue.put(_CLOSE)
            return
        self.subscribers.add(sub)
        if self.poller is None or self.poller.dead:
            # Set before anything yields: clients arriving together must not start a poller each.
            self.poller = gevent.spawn(self._poll)

    def unsubscribe(self, sub):
        self.subscribers.discard(sub)

    def close_all(self):
        """Graceful stop: every stream ends now, so a draining server is not held open."""
        self.closed = True
        for sub in list(self.subscribers):
            _offer(sub, _CLOSE)
        self.subscribers.clear()
        self.wake.set()   # the poller (and its listener) end now, not after its interval

    def _poll(self):
        with self.app.app_context():
            try:
                reader = OutboxReader(last_event_id())
            finally:
                db.session.remove()
        interval = self.app.config["STREAM_POLL_SECONDS"]
        listener = None
        self.poller_done = False
        if outbox_notify.enabled(self.app):
            interval = self.app.config["STREAM_SAFETY_POLL_SECONDS"]
            listener = gevent.spawn(outbox_notify.listen, self.app, self.wake,
                                    lambda: not self.closed and not self.poller_done)
        try:
            self._poll_loop(reader, interval)
        finally:
            self.poller_done = True
            if listener is not None:
                listener.kill(block=False)

    def _poll_loop(self, reader, interval):
        idle_since = None
        while not self.closed:
            if self.subscribers:
                idle_since = None
            elif idle_since is None:
                idle_since = gevent.get_hub().loop.now()
            elif gevent.get_hub().loop.now() - idle_since > IDLE_STOP_SECONDS:
                return
            with self.app.app_context():
                try:
                    rows = reader.read(REPLAY_LIMIT)
                    db.session.commit()
                except Exception:
                    log.exception("event stream poll failed")
                    rows = []
                finally:
                    db.session.remove()
            for row in rows:
                framed = None
                for sub in list(self.subscribers):
                    if sub.wants(row):
                        framed = framed or _framed(row)
                        if not _offer(sub, framed):
                            self.subscribers.discard(sub)
            # Cleared after the wait, before the read: a wake-up during the read is not lost.
            self.wake.wait(interval)
            self.wake.clear()


def _offer(sub, item):
    try:
        sub.queue.put_nowait(item)
        return True
    except gevent.queue.Full:
        # Too far behind: end its stream (the client resumes from its Last-Event-ID).
        sub.queue.queue.clear()
        sub.queue.put_nowait(_CLOSE)
        return False


def hub(app):
    existing = app.extensions.get("oml_event_hub")
    if existing is None:
        existing = app.extensions["oml_event_hub"] = Hub(app)
        _hubs.add(existing)
    return existing


def close_all_hubs():
    """A graceful stop or restart (gunicorn.conf.py): end every open stream now, and any
    opened while the worker drains."""
    global _stopping
    _stopping = True
    for each in list(_hubs):
        each.close_all()


def replay(sub, after):
    """Events after `after` the subscriber may see (at most REPLAY_LIMIT), framed."""
    rows = db.session.execute(select(_events).where(_events.c.id > after, sub.condition())
                              .order_by(_events.c.id).limit(REPLAY_LIMIT)).all()
    return [_framed(row) for row in rows]


def stream(the_hub, sub, missed, heartbeat):
    """The response body: what was missed, then live events, a comment line every
    `heartbeat` seconds so proxies keep the connection open."""
    sent = {event_id for event_id, _ in missed}
    try:
        yield "retry: 2000\n\n"
        for _, text in missed:
            yield text
        while True:
            try:
                item = sub.queue.get(timeout=heartbeat)
            except gevent.queue.Empty:
                yield ": keep-alive\n\n"
                continue
            if item is _CLOSE:
                yield ": closing\n\n"   # the client reconnects (after `retry`) elsewhere
                return
            event_id, text = item
            if event_id in sent:   # replayed already (subscribed before the replay query)
                continue
            yield text
    finally:
        the_hub.unsubscribe(sub)
