"""Retention: old events and finished deliveries go; an owed delivery, an event the fan-out has
not read or an open delivery names, and anything younger than the retention stay."""
import itertools
import json
from datetime import timedelta

import gevent
import pytest
from sqlalchemy import select

from oml_server import delivery_worker
from oml_server.extensions import db
from oml_server.models import Delivery, Event, OutboxCursor, utcnow
from oml_server.services import outbox, prune

_keys = itertools.count()
OLD, YOUNG = utcnow() - timedelta(days=40), utcnow() - timedelta(days=1)


@pytest.fixture(autouse=True)
def retention(app):
    app.config.update(EVENTS_RETENTION_DAYS=30, DELIVERIES_RETENTION_DAYS=30)


def event(created_at):
    outbox.record("agent.status", agent_id=1, event="login")
    db.session.commit()
    row = db.session.scalars(select(Event).order_by(Event.id.desc())).first()
    row.created_at = created_at
    db.session.commit()
    return row.id


def delivery(state, created_at, event_id=None, key=None):
    row = Delivery(destination="webhook:1", key=key or f"k{next(_keys)}",
                   event_id=event_id, url="http://127.0.0.1:9/", body=b"{}", state=state,
                   created_at=created_at)
    db.session.add(row)
    db.session.commit()
    return row.id


def cursor(last_event_id):
    db.session.merge(OutboxCursor(name="deliveries", last_event_id=last_event_id))
    db.session.commit()


def remaining(model):
    return set(db.session.scalars(select(model.id)))


def test_finished_deliveries_past_the_retention_go_and_owed_ones_never(app):
    gone = {delivery("delivered", OLD), delivery("failed", OLD)}
    kept = {delivery("pending", OLD), delivery("sending", OLD), delivery("delivered", YOUNG)}
    assert prune.prune(app.config, batch=1) == {"deliveries": 2, "events": 0}
    assert remaining(Delivery) == kept and not gone & remaining(Delivery)


def test_events_go_once_read_by_the_fan_out_and_no_open_delivery_names_them(app):
    read_old = [event(OLD) for _ in range(3)]
    named = event(OLD)                 # a pending delivery still names it
    after_named = event(OLD)           # read, but above an event an open delivery needs
    young = event(YOUNG)
    unread = event(OLD)                # the fan-out has not read it yet
    delivery("pending", OLD, event_id=named)
    delivery("delivered", YOUNG, event_id=read_old[0])   # a finished one does not hold it
    cursor(young)
    assert prune.prune(app.config, batch=2)["events"] == 3
    assert remaining(Event) == {named, after_named, young, unread}


def test_no_event_goes_before_the_fan_out_ever_ran(app):
    ids = {event(OLD), event(OLD)}
    assert prune.prune(app.config)["events"] == 0
    assert remaining(Event) == ids


def test_zero_days_keeps_everything(app):
    app.config.update(EVENTS_RETENTION_DAYS=0, DELIVERIES_RETENTION_DAYS=0)
    first = event(OLD)
    delivery("delivered", OLD)
    cursor(first)
    assert prune.prune(app.config) == {"deliveries": 0, "events": 0}


def test_the_prune_command_reports_progress_per_batch(app):
    for _ in range(5):
        delivery("delivered", OLD)
    last = event(OLD)
    cursor(last)
    result = app.test_cli_runner().invoke(args=["prune", "--batch", "2"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"deliveries": 5, "events": 1}
    assert result.stderr.splitlines() == ["deliveries: 2 removed", "deliveries: 4 removed",
                                          "deliveries: 5 removed", "events: 1 removed"]
    assert remaining(Delivery) == set() and remaining(Event) == set()


def no_delivery_left(timeout=5):
    for _ in range(int(timeout / 0.05)):
        if not remaining(Delivery):
            return True
        db.session.remove()
        gevent.sleep(0.05)
    return False


def test_the_delivery_worker_prunes_periodically(app):
    delivery("failed", OLD)
    app.config.update(PRUNE_INTERVAL_SECONDS=0.05, DELIVERY_POLL_SECONDS=0.05)
    worker = delivery_worker.DeliveryWorker(app).start()
    try:
        assert no_delivery_left()
        delivery("failed", OLD, key="later")     # and again one period later
        assert no_delivery_left()
    finally:
        worker.stop()
