"""PostgreSQL: a disposition and its outbox event written by one statement.

The disposition and its `disposition.created|updated` event must commit together. As two
statements that takes a transaction block: BEGIN, the write, the event, COMMIT, plus a query
for the option's name and `crm_interaction` the event carries (bench/README.md: POST 2.0 →
6.2 round trips with the outbox). Here one data-modifying CTE does it all: the option row
with the request's checks in its WHERE, the write fed by that row, and the event INSERT fed
by the write's RETURNING. One statement is atomic on its own, so the request runs in
autocommit (no BEGIN/COMMIT) and still never commits one without the other. No row back
means a check failed and nothing was written; the caller's checking query then says which.

The event's `data` is built by `json_build_object` with the keys in the order
`dispositions._record` gives them (readers parse the JSON: the spacing differs, the values
and order do not). SQLite has no DML inside a CTE: it keeps the two-statement path.
"""
from sqlalchemy import BigInteger, DateTime, Integer, String, Text, bindparam, text

from ..database import Prepared

_TYPES = (bindparam("oid", type_=BigInteger), bindparam("cid", type_=BigInteger),
          bindparam("aid", type_=Integer), bindparam("callid", type_=String(32)),
          bindparam("comments", type_=Text), bindparam("now", type_=DateTime(timezone=True)))

# The option, visible (or the one kept by a PUT), in the campaign whose database holds the
# contact, and the pair not rated yet (by another disposition than the one a PUT replaces).
_CHECKED_OPTION = """
checked AS (
  SELECT o.id, o.campaign_id, o.name, o.crm_interaction, c.acw_seconds
  FROM disposition_options o JOIN campaigns c ON c.id = o.campaign_id
  WHERE o.id = :oid AND (NOT o.hidden OR o.id = :keep)
    AND c.database_id = (SELECT database_id FROM contacts WHERE id = :cid)
    AND NOT EXISTS (SELECT 1 FROM dispositions d WHERE d.contact_id = :cid
                    AND d.campaign_id = o.campaign_id AND d.id IS DISTINCT FROM :exclude))"""

_EVENT = """
event AS (
  INSERT INTO events (type, call_id, agent_id, campaign_id, data, created_at)
  SELECT '{type}', :callid, :aid, checked.campaign_id,
         json_build_object('disposition_id', written.id, 'contact_id', :cid,
                           'option_id', checked.id, 'option_name', checked.name,
                           'crm_interaction', coalesce(checked.crm_interaction, false),
                           'callid', :callid, 'comments', :comments), :now
  FROM written, checked)"""

# POST: the new disposition's id and the campaign's after-call work seconds.
CREATE = Prepared(text(f"""WITH {_CHECKED_OPTION},
written AS (
  INSERT INTO dispositions (contact_id, campaign_id, agent_id, option_id, callid, comments,
                            created_at, updated_at)
  SELECT :cid, checked.campaign_id, :aid, checked.id, :callid, :comments, :now, :now
  FROM checked RETURNING id),
{_EVENT.format(type="disposition.created")}
SELECT written.id, checked.acw_seconds FROM written, checked""").bindparams(
    *_TYPES, bindparam("keep", type_=BigInteger), bindparam("exclude", type_=BigInteger)))

# PUT: every field of the agent's disposition `did` replaced; its id back.
UPDATE = Prepared(text(f"""WITH {_CHECKED_OPTION},
written AS (
  UPDATE dispositions SET contact_id = :cid, campaign_id = checked.campaign_id,
    option_id = checked.id, callid = :callid, comments = :comments, updated_at = :now
  FROM checked WHERE dispositions.id = :exclude AND dispositions.agent_id = :aid
  RETURNING dispositions.id),
{_EVENT.format(type="disposition.updated")}
SELECT written.id FROM written""").bindparams(
    *_TYPES, bindparam("keep", type_=BigInteger), bindparam("exclude", type_=BigInteger)))


def available(session):
    """Whether the one-statement writes apply: PostgreSQL, and no NOTIFY to send beside the
    event (STREAM_WAKEUP=notify keeps the transaction that carries it)."""
    from . import outbox_notify
    return session.get_bind().dialect.name == "postgresql" and not outbox_notify.enabled()
