"""PostgreSQL: a disposition and its outbox event (and, for new_contact/disposition, the
contact) written by one statement.

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
from sqlalchemy import JSON, BigInteger, DateTime, Integer, String, Text

from ..database import prepared_text

# The parameters' types (PREPARE declares them): ids are BIGINT, as in database.Prepared.
_TYPES = {"oid": BigInteger, "cid": BigInteger, "aid": Integer, "callid": String(32),
          "comments": Text, "now": DateTime(timezone=True), "keep": BigInteger,
          "exclude": BigInteger, "database_id": BigInteger, "main_phone": String(32),
          "external_id": String(128), "unique_phone": String(32), "data": JSON,
          "assigned_agent_id": BigInteger, "search_text": Text}


def _prepared(sql):
    return prepared_text(sql, _TYPES)


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

# `written` returns the disposition's id and contact_id; `checked` the option's row.
_EVENT = """
event AS (
  INSERT INTO events (type, call_id, agent_id, campaign_id, data, created_at)
  SELECT '{type}', :callid, :aid, checked.campaign_id,
         json_build_object('disposition_id', written.id, 'contact_id', written.contact_id,
                           'option_id', checked.id, 'option_name', checked.name,
                           'crm_interaction', coalesce(checked.crm_interaction, false),
                           'callid', :callid, 'comments', :comments), :now
  FROM written, checked)"""

_INSERT_DISPOSITION = """
written AS (
  INSERT INTO dispositions (contact_id, campaign_id, agent_id, option_id, callid, comments,
                            created_at, updated_at)
  SELECT {contact}, checked.campaign_id, :aid, checked.id, :callid, :comments, :now, :now
  FROM {source} RETURNING id, contact_id)"""

# POST: the new disposition's id and the campaign's after-call work seconds.
CREATE = _prepared(f"""WITH {_CHECKED_OPTION},
{_INSERT_DISPOSITION.format(contact=":cid", source="checked")},
{_EVENT.format(type="disposition.created")}
SELECT written.id, checked.acw_seconds FROM written, checked""")

# PUT: every field of the agent's disposition `exclude` replaced; its id back.
UPDATE = _prepared(f"""WITH {_CHECKED_OPTION},
written AS (
  UPDATE dispositions SET contact_id = :cid, campaign_id = checked.campaign_id,
    option_id = checked.id, callid = :callid, comments = :comments, updated_at = :now
  FROM checked WHERE dispositions.id = :exclude AND dispositions.agent_id = :aid
  RETURNING dispositions.id, dispositions.contact_id),
{_EVENT.format(type="disposition.updated")}
SELECT written.id FROM written""")


def _create_with_contact(check_external_id, check_phone):
    """new_contact/disposition: the contact (unless its external id, or its phone in a
    no-duplicates campaign, is taken: contacts.insert_row's checks), its disposition with the
    option already checked visible, and the event; (contact id, disposition id, after-call
    work seconds) back, no row when a duplicate check failed (nothing written)."""
    taken = []
    if check_external_id:
        taken.append("NOT EXISTS (SELECT 1 FROM contacts WHERE database_id = :database_id"
                     " AND external_id = :external_id)")
    if check_phone:
        taken.append("NOT EXISTS (SELECT 1 FROM contacts WHERE database_id = :database_id"
                     " AND main_phone = :main_phone)")
    where = f"WHERE {' AND '.join(taken)}" if taken else ""
    # Every CTE runs whether or not the next one reads it: the contact is inserted FROM
    # `checked`, so an option gone since it was read leaves no contact without its rating.
    return _prepared(f"""WITH checked AS (
  SELECT o.id, o.campaign_id, o.name, o.crm_interaction, c.acw_seconds
  FROM disposition_options o JOIN campaigns c ON c.id = o.campaign_id WHERE o.id = :oid),
contact AS (
  INSERT INTO contacts (database_id, main_phone, external_id, unique_phone, data,
                        assigned_agent_id, search_text, created_at)
  SELECT :database_id, :main_phone, :external_id, :unique_phone, :data, :assigned_agent_id,
         :search_text, :now FROM checked {where}
  RETURNING id),
{_INSERT_DISPOSITION.format(contact="contact.id", source="contact, checked")},
{_EVENT.format(type="disposition.created")}
SELECT written.contact_id, written.id, checked.acw_seconds FROM written, checked""")


CREATE_WITH_CONTACT = {(ext, phone): _create_with_contact(ext, phone)
                       for ext in (False, True) for phone in (False, True)}
