"""The outbox reader never skips an event whose transaction commits after a later one."""
from oml_server.extensions import db
from oml_server.models import Event, utcnow
from oml_server.services.outbox_reader import OutboxReader


def _event(event_id):
    db.session.execute(Event.__table__.insert().values(id=event_id, type="call.requested",
                                                       data={}, created_at=utcnow()))
    db.session.commit()


def test_a_late_commit_below_a_seen_id_is_still_read(app):
    reader = OutboxReader(0, gap_seconds=3600)
    _event(1)
    _event(3)            # 2 is "still being written" by a slower transaction
    assert [r.id for r in reader.read()] == [1, 3]
    assert reader.after == 1   # the safe point stops below the hole
    _event(2)
    assert [r.id for r in reader.read()] == [2]
    assert reader.after == 3 and reader.read() == []


def test_a_hole_that_stays_empty_is_passed_after_the_gap_time(app):
    reader = OutboxReader(0, gap_seconds=0)
    _event(1)
    _event(3)            # 2 was rolled back: it never appears
    assert [r.id for r in reader.read()] == [1, 3]
    reader.read()
    assert reader.after == 3
