"""The event outbox: what happened, written in the same transaction as the change itself.

Every call state change, agent status change and disposition adds one row to `events` through
`record`, before the caller commits: if the change is rolled back the event goes with it, and
if it is committed the event is there. Webhooks, external sites and the event stream read the
table in id order; nothing else writes it.
"""
from oml_server.database import run
from oml_server.models import Event, utcnow

from . import outbox_notify

_events = Event.__table__
_insert = _events.insert()  # built once: see call_state.prepared
# Set whenever this process writes an event: the delivery fan-out waits on these instead of
# polling the table every DELIVERY_POLL_SECONDS (oml_server/delivery_worker.py). Set before
# the commit; the fan-out reads DELIVERY_POLL_SECONDS later, and an event committed later
# still is read at its next look.
written_wakers = set()


def record(type_, call_id=None, agent_id=None, campaign_id=None, **data):
    """Add an event to the current transaction (the caller commits)."""
    run(_insert, {
        "type": type_, "call_id": call_id, "agent_id": agent_id, "campaign_id": campaign_id,
        "data": data, "created_at": utcnow()})
    written()
    outbox_notify.notify()   # STREAM_WAKEUP=notify only


def in_one_statement(session):
    """Whether a change and its event may be written by one statement (data-modifying CTEs):
    PostgreSQL, and no NOTIFY to send beside the event (STREAM_WAKEUP=notify keeps the
    transaction that carries it). The writer then calls `written`."""
    return session.get_bind().dialect.name == "postgresql" and not outbox_notify.enabled()


def written():
    """This process wrote an event: by `record`, or inside a statement of its own (the
    one-statement disposition writes, services/disposition_writes.py)."""
    for wake in written_wakers:
        wake.set()


# Activity events that change the agent's status (§4); ringing and the like are not status.
STATUS_EVENTS = ("login", "logout", "pause", "unpause", "online", "offline")


def agent_status(session, event):
    """`agent.status` from an AgentSession row just changed by `event` (same transaction)."""
    if event in STATUS_EVENTS:
        record("agent.status", agent_id=session.agent_id, event=event,
               online=bool(session.online), logged_in=bool(session.logged_in),
               paused=bool(session.paused), pause_id=session.pause_id)
