"""makeCall's writes on PostgreSQL in one statement: the agent's click-to-call counted (the
throttle), the call's row and its `call.requested` event, as data-modifying CTEs (as
call_state's transitions and the disposition writes).

It was BEGIN, the throttle's count, the prune of the agent's old counts, the new count, the
row (an ORM flush), the event and COMMIT: seven round trips on every makeCall. The count and
the limit are checked in the statement, and the row and the event are written FROM the new
count, so a refused call writes nothing but the prune. The unique constraint on the agent's
live call still decides "already on a call" (the statement fails as a whole, count included,
and the caller counts it again on its own, as before).
"""
from datetime import timedelta

from flask import current_app
from sqlalchemy import Integer

from oml_server.database import prepared_text, run
from oml_server.models import Call, ThrottleEvent

from . import outbox, throttle

_calls, _counts = Call.__table__.c, ThrottleEvent.__table__.c
_STATEMENT = prepared_text("""
WITH recent AS (
  SELECT count(id) AS n FROM throttle_events
  WHERE key = :key AND created_at > :since),
forgotten AS (
  DELETE FROM throttle_events WHERE key = :key AND created_at <= :since),
counted AS (
  INSERT INTO throttle_events (key, created_at) SELECT :key, :now FROM recent WHERE n < :max
  RETURNING id),
placed AS (
  INSERT INTO calls (id, kind, state, campaign_id, agent_id, active_agent_id, contact_id, number,
                     node, created_at)
  SELECT :cid, 'click_to_call', 'requested', :campaign, :aid, :aid, :contact, :number, :node, :now
  FROM counted RETURNING id),
event AS (
  INSERT INTO events (type, call_id, agent_id, campaign_id, data, created_at)
  SELECT 'call.requested', :cid, :aid, :campaign,
    json_build_object('state', 'requested', 'kind', 'click_to_call',
                      'number', CAST(:number AS text)), :now
  FROM placed)
SELECT EXISTS (SELECT 1 FROM placed) AS placed
""", {"key": _counts.key.type, "since": _counts.created_at.type, "now": _calls.created_at.type,
      "max": Integer(), "cid": _calls.id.type, "campaign": _calls.campaign_id.type,
      "aid": _calls.agent_id.type, "contact": _calls.contact_id.type,
      "number": _calls.number.type, "node": _calls.node.type})


def place(call_id, agent_id, campaign_id, contact_id, number, node, now):
    """Write the call: True, or False when the agent is over the makeCall limit (nothing but
    the prune of its old counts is written then). Raises IntegrityError when the agent already
    has a live call (nothing written). The event's data has the keys outbox.record would give
    it, in its order."""
    cfg = current_app.config
    window = cfg["MAKECALL_WINDOW_SECONDS"]
    row = run(_STATEMENT, {
        "key": throttle.call_key(agent_id), "since": now - timedelta(seconds=window),
        "max": cfg["MAKECALL_MAX_PER_WINDOW"], "now": now, "cid": call_id, "aid": agent_id,
        "campaign": campaign_id, "contact": contact_id, "number": number, "node": node}).one()
    if row.placed:
        outbox.written()
    return row.placed
