"""Dispositions: an agent's rating of a contact in a campaign (contract §2.6), and the contact
plus disposition created at once by new_contact/disposition (§2.7).

Every failure is `{"status": "ERROR", <field>: "<message>"}` with HTTP 400. Checks run in
OMniLeads' order (option, contact, duplicate, then the fields OMniLeads only trips over when
saving); one disposition per (contact, campaign) is the database's unique constraint, so two
agents racing for the same contact get one 201 and one 400, never two rows.
"""
import logging

from sqlalchemy import Integer, bindparam, exists, false, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from .. import messages as M
from ..database import Prepared, is_unique_violation, run as _run, statements_in_transaction
from ..errors import ContractError, business_error, not_found
from ..extensions import db
from ..models import Campaign, Contact, Disposition, DispositionOption, utcnow
from . import agent_presence, contacts, disposition_writes, outbox
from .lookup import external_system, parse_id, visible_option_campaign

log = logging.getLogger(__name__)
CALLID_MAX_LENGTH = 32
MAX_INTEGER = 2**31 - 1   # the id columns are INTEGER


class AgentRef:
    """The calling agent as these functions use it: its id only (no profile load per request)."""
    __slots__ = ("id",)

    def __init__(self, agent_id):
        self.id = agent_id


# ---------------------------------------------------------------------------------- reading

def representation(disposition):
    return {"id": disposition.id, "idContact": disposition.contact_id,
            "callid": disposition.callid, "idDispositionOption": disposition.option_id,
            "comments": disposition.comments}


def list_for(agent):
    """The calling agent's dispositions only."""
    rows = db.session.scalars(select(Disposition).where(Disposition.agent_id == agent.id)
                              .order_by(Disposition.id))
    return [representation(d) for d in rows]


def own(agent, raw_id):
    """The agent's disposition `raw_id`; another agent's, unknown or malformed id → 404."""
    disposition_id = parse_id(raw_id)
    disposition = db.session.get(Disposition, disposition_id) if disposition_id is not None else None
    if disposition is None or disposition.agent_id != agent.id:
        raise not_found()
    return disposition


# ----------------------------------------------------------------------------- field checks

# Statements built once: the POST is a hot path, and building a statement costs about as
# much CPU as running it on SQLite. Rows, not ORM objects, for the same reason.
_OPTION = (select(DispositionOption.id, DispositionOption.hidden, DispositionOption.campaign_id,
                  Campaign.database_id)
           .join(Campaign, Campaign.id == DispositionOption.campaign_id)
           .where(DispositionOption.id == bindparam("oid")))
_CONTACT_DATABASE = select(Contact.database_id).where(Contact.id == bindparam("cid"))
_CONTACT_BY_EXTERNAL_ID = select(Contact.id).where(Contact.database_id == bindparam("db"),
                                                   Contact.external_id == bindparam("ext"))
_TAKEN = (select(Disposition.id).where(Disposition.contact_id == bindparam("contact"),
                                       Disposition.campaign_id == bindparam("campaign")).limit(1))
_INSERT = insert(Disposition).returning(Disposition.id)   # columns follow the parameters: not Prepared
# POST's usual case (an internal contact id) in one round trip: the option and its campaign's
# database, the named contact's database, and whether that pair is already rated.
_CONTACT_DATABASE_ID = (select(Contact.database_id).where(Contact.id == bindparam("cid"))
                        .scalar_subquery())
_PAIR_TAKEN = exists().where(Disposition.contact_id == bindparam("cid"),
                             Disposition.campaign_id == DispositionOption.campaign_id)
_OPTION_CONTACT_TAKEN = Prepared(_OPTION.add_columns(_CONTACT_DATABASE_ID, _PAIR_TAKEN))
# The same for PUT, where the disposition being replaced does not count as taken; with the
# option's name and crm_interaction, which its outbox event carries (no query for them).
_OPTION_CONTACT_TAKEN_BY_OTHER = Prepared(_OPTION.add_columns(
    _CONTACT_DATABASE_ID, _PAIR_TAKEN.where(Disposition.id != bindparam("exclude")),
    DispositionOption.name, DispositionOption.crm_interaction))
# POST in one statement: the INSERT writes a row only when every check of
# _option_contact_taken passes (a visible option, the contact in its campaign's database,
# the pair not rated yet); no row back means one failed, and that query then says which.
_INSERT_CHECKED = Prepared(insert(Disposition).from_select(
    ["contact_id", "campaign_id", "agent_id", "option_id", "callid", "comments"],
    select(bindparam("cid", type_=Integer), DispositionOption.campaign_id,
           bindparam("aid", type_=Integer), DispositionOption.id,
           bindparam("callid", type_=Disposition.__table__.c.callid.type),
           bindparam("comments", type_=Disposition.__table__.c.comments.type))
    .select_from(DispositionOption)
    .join(Campaign, Campaign.id == DispositionOption.campaign_id)
    .where(DispositionOption.id == bindparam("oid"), DispositionOption.hidden == false(),
           Campaign.database_id == _CONTACT_DATABASE_ID, ~_PAIR_TAKEN)
).returning(Disposition.id))


def _option(raw, keep=None):
    """The option a body names, as a row (id, hidden, campaign_id, database_id). Missing,
    null, non-numeric, unknown and hidden options are all "not found"; `keep` (the
    disposition's current option) stays allowed once hidden."""
    option_id = parse_id(raw)
    option = _run(_OPTION, {"oid": option_id}).first() if option_id is not None else None
    if option is None or (option.hidden and (keep is None or option.id != keep)):
        raise business_error(idDispositionOption=M.OPTION_NOT_FOUND)
    return option


def _option_contact_taken(data, keep=None, exclude_id=None):
    """(option row, contact id, already rated?) for a body without idExternalSystem: the
    checks of _option, _contact and _taken (with their `keep` and `exclude_id`), in their
    order, from one query."""
    option_id = parse_id(data.get("idDispositionOption"))
    contact_id = parse_id(data.get("idContact"))
    row = None
    if option_id is not None:
        params = {"oid": option_id, "cid": contact_id}
        if exclude_id is None:
            row = _run(_OPTION_CONTACT_TAKEN, params).first()
        else:
            row = _run(_OPTION_CONTACT_TAKEN_BY_OTHER, {**params, "exclude": exclude_id}).first()
    if row is None or (row.hidden and (keep is None or row.id != keep)):
        raise business_error(idDispositionOption=M.OPTION_NOT_FOUND)
    if contact_id is None or row[4] != row.database_id:
        raise business_error(idContact=M.CONTACT_ID_NOT_FOUND)
    return row, contact_id, bool(row[5])


def _contact(data, database_id):
    """The id of the contact `idContact` names, in the database of the option's campaign."""
    raw = data.get("idContact")
    raw_system = data.get("idExternalSystem")
    if raw_system not in (None, ""):
        # A client naming an external system that does not exist gets told so, rather than a
        # misleading "Contact id not found" about a contact that may well exist.
        if external_system(raw_system) is None:
            raise business_error(idExternalSystem=M.UNKNOWN_EXTERNAL_SYSTEM)
        contact = None
        if isinstance(raw, (str, int, float)) and not isinstance(raw, bool) and str(raw) != "":
            external_id = str(int(raw)) if isinstance(raw, float) and raw.is_integer() else str(raw)
            contact = _run(_CONTACT_BY_EXTERNAL_ID, {"db": database_id, "ext": external_id}).scalar()
    else:
        contact = parse_id(raw)
        if contact is not None and _run(_CONTACT_DATABASE, {"cid": contact}).scalar() != database_id:
            contact = None
    if contact is None:
        raise business_error(idContact=M.CONTACT_ID_NOT_FOUND)
    return contact


def _text(data, name, default):
    """An optional text field: numbers as written, null/omitted → `default`."""
    value = data.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise business_error(**{name: M.NOT_A_STRING})
    return value if isinstance(value, str) else str(value)


def _free_fields(data):
    """`comments` (default "") and `callid` (omitted → null, at most 32 characters)."""
    comments = _text(data, "comments", "")
    callid = _text(data, "callid", None)
    if callid is not None and len(callid) > CALLID_MAX_LENGTH:
        raise business_error(callid=M.CALLID_TOO_LONG)
    return comments, callid


def _taken(contact_id, campaign_id, exclude_id=None):
    if exclude_id is None:
        return _run(_TAKEN, {"contact": contact_id, "campaign": campaign_id}).scalar() is not None
    query = select(Disposition.id).where(Disposition.contact_id == contact_id,
                                         Disposition.campaign_id == campaign_id)
    if exclude_id is not None:
        query = query.where(Disposition.id != exclude_id)
    return db.session.scalar(query.limit(1)) is not None


def _record(type_, disposition_id, agent_id, values, option=None):
    """`disposition.created|updated` in the transaction of the write (`values`: the row's
    columns). The option's name and `crm_interaction` go with it: the Calificación site fires
    on the latter; the campaign's after-call work follows a call's new disposition. `option`: a
    row that has the first three already (name, crm_interaction, campaign_id; PUT's check reads
    them); read here otherwise."""
    if option is None:
        option = db.session.execute(select(DispositionOption.name,
                                           DispositionOption.crm_interaction,
                                           DispositionOption.campaign_id, Campaign.acw_seconds)
                                    .join(Campaign, Campaign.id == DispositionOption.campaign_id)
                                    .where(DispositionOption.id == values["option_id"])).first()
    outbox.record(type_, call_id=values.get("callid"), agent_id=agent_id,
                  campaign_id=values.get("campaign_id", option.campaign_id),
                  disposition_id=disposition_id,
                  contact_id=values["contact_id"], option_id=values["option_id"],
                  option_name=option.name, crm_interaction=bool(option.crm_interaction),
                  callid=values.get("callid"), comments=values.get("comments", ""))
    # A call's disposition ends the call's work: after-call work follows, as the campaign says.
    return option.acw_seconds if type_ == "disposition.created" and values.get("callid") else 0


def _after_call_work(agent_id, seconds):
    """After the commit: the agent's ACW pause, when the campaign has one."""
    if not seconds:
        return
    try:
        agent_presence.after_call_work(agent_id, seconds)
    except SQLAlchemyError:   # the disposition is saved: the agent just stays as it was
        log.warning("after-call work of agent %s not started", agent_id, exc_info=True)
        db.session.rollback()


def _duplicate():
    return business_error(msg=M.DUPLICATE_DISPOSITION)


def _commit_or_duplicate():
    """Commit; a lost race on (contact, campaign) becomes the duplicate error."""
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        if is_unique_violation(exc):
            raise _duplicate()
        raise


# ---------------------------------------------------------------------------------- writing

def _insert(statement, params):
    """Run an INSERT; a lost race on (contact, campaign) becomes the duplicate error."""
    try:
        return _run(statement, params)
    except IntegrityError as exc:  # another agent rated it meanwhile
        db.session.rollback()
        if is_unique_violation(exc):
            raise _duplicate()
        raise


def _checked_fields(data):
    """The numeric ids and free fields of a body without idExternalSystem, for a write whose
    WHERE runs the checks; None when the ids are not numbers or a free field is wrong (the
    caller's checking path then reports it, in the contract's order)."""
    if data.get("idExternalSystem") not in (None, ""):   # idContact is then an external id
        return None
    option_id = parse_id(data.get("idDispositionOption"))
    contact_id = parse_id(data.get("idContact"))
    # The contact id is also a value the write stores: PostgreSQL refuses one beyond its
    # INTEGER column while planning, before the WHERE finds no such contact.
    if option_id is None or contact_id is None or contact_id > MAX_INTEGER:
        return None
    try:
        comments, callid = _free_fields(data)
    except ContractError:   # reported only after the option, contact and duplicate checks
        return None
    return {"oid": option_id, "cid": contact_id, "callid": callid, "comments": comments}


def _answer(disposition_id, fields):
    return {"id": disposition_id, "idContact": fields["cid"], "callid": fields["callid"],
            "idDispositionOption": fields["oid"], "comments": fields["comments"]}


def _create_checked(agent, data):
    """POST's usual case, the checks in the WHERE of the write: (answer, after-call work
    seconds), or None when the ids are not numbers, a free field is wrong or a check failed
    (nothing was written; the caller then finds which, in the contract's order). On
    PostgreSQL the event is written by the same statement (disposition_writes), elsewhere
    by a second one in the same transaction."""
    fields = _checked_fields(data)
    if fields is None:
        return None
    params = {**fields, "aid": agent.id}
    if outbox.in_one_statement(db.session):
        row = _insert(disposition_writes.CREATE,
                      {**params, "keep": None, "exclude": None, "now": utcnow()}).first()
        if row is None:
            return None
        outbox.written()
        return _answer(row.id, fields), (row.acw_seconds if fields["callid"] else 0)
    statements_in_transaction(db.session)   # two writes: the row and its event
    new_id = _insert(_INSERT_CHECKED, params).scalar()
    if new_id is None:
        return None
    acw = _record("disposition.created", new_id, agent.id,
                  {"contact_id": fields["cid"], "option_id": fields["oid"],
                   "callid": fields["callid"], "comments": fields["comments"]})
    return _answer(new_id, fields), acw


def _update_checked(agent, disposition, data):
    """PUT's usual case on PostgreSQL in one statement (disposition_writes.UPDATE): the
    answer, or None when that path does not apply or wrote nothing (the caller's checking
    path then finds why)."""
    fields = _checked_fields(data)
    if fields is None or not outbox.in_one_statement(db.session):
        return None
    updated = _insert(disposition_writes.UPDATE,
                      {**fields, "aid": agent.id, "keep": disposition.option_id,
                       "exclude": disposition.id, "now": utcnow()}).scalar()
    if updated is None:
        return None
    outbox.written()
    return _answer(updated, fields)


def create(agent, data):
    """POST /disposition/: 201's representation."""
    try:
        if data.get("idExternalSystem") in (None, ""):
            created = _create_checked(agent, data)
            if created is not None:
                _commit_or_duplicate()
                _after_call_work(agent.id, created[1])
                return created[0]
            option, contact_id, taken = _option_contact_taken(data)
        else:
            option = _option(data.get("idDispositionOption"))
            contact_id = _contact(data, option.database_id)
            taken = _taken(contact_id, option.campaign_id)
        if taken:
            raise _duplicate()
        comments, callid = _free_fields(data)
        statements_in_transaction(db.session)   # two writes from here: the row and its event
        # One Core INSERT, not an ORM object and its flush (the Python defaults still apply).
        result = _insert(_INSERT, {"contact_id": contact_id, "campaign_id": option.campaign_id,
                                   "agent_id": agent.id, "option_id": option.id,
                                   "callid": callid, "comments": comments})
        answer = {"id": result.scalar(), "idContact": contact_id,
                  "callid": callid, "idDispositionOption": option.id, "comments": comments}
        acw = _record("disposition.created", answer["id"], agent.id,
                      {"contact_id": contact_id, "campaign_id": option.campaign_id,
                       "option_id": option.id, "callid": callid, "comments": comments})
        _commit_or_duplicate()
    except Exception:
        db.session.rollback()
        raise
    _after_call_work(agent.id, acw)
    return answer


def update(agent, disposition, data):
    """PUT /disposition/<id>/ on the agent's own `disposition`: every field is replaced."""
    try:
        described = None   # the option's row with what the event needs, when read
        answer = _update_checked(agent, disposition, data)
        if answer is not None:
            _commit_or_duplicate()
            return answer
        if data.get("idExternalSystem") in (None, ""):
            option, contact_id, taken = _option_contact_taken(
                data, keep=disposition.option_id, exclude_id=disposition.id)
            described = option
        else:
            option = _option(data.get("idDispositionOption"), keep=disposition.option_id)
            contact_id = _contact(data, option.database_id)
            taken = _taken(contact_id, option.campaign_id, exclude_id=disposition.id)
        if taken:
            raise _duplicate()
        comments, callid = _free_fields(data)
        statements_in_transaction(db.session)   # two writes from here: the row and its event
        disposition.contact_id = contact_id
        disposition.campaign_id = option.campaign_id
        disposition.option_id = option.id
        disposition.comments = comments
        disposition.callid = callid
        answer = representation(disposition)   # before the commit expires the object
        _record("disposition.updated", disposition.id, agent.id,
                {"contact_id": contact_id, "campaign_id": option.campaign_id,
                 "option_id": option.id, "callid": callid, "comments": comments}, described)
        _commit_or_duplicate()
    except Exception:
        db.session.rollback()
        raise
    return answer


# Keys of new_contact/disposition's body that are not contact columns.
_NEW_CONTACT_KEYS = ("idDispositionOption", "phone", "idExternalContact", "comments", "callid")


def _new_contact_values(database, data):
    """The new contact's columns: `phone` is the main phone, `idExternalContact` the external
    id, data columns are taken by name. Keys that are not columns are ignored (as OMniLeads
    does), and so are keys naming the main-phone or external-id column: `phone` and
    `idExternalContact` are the only way to set those."""
    special = {database.main_phone, database.external_id_column}
    values = {column: data[column] for column in database.columns
              if column in data and column not in special}
    values[database.main_phone] = data.get("phone")
    if database.external_id_column:
        values[database.external_id_column] = data.get("idExternalContact")
    try:
        return contacts.normalize(database, values)
    except contacts.ContactInvalid:
        raise business_error(contacto=M.CONTACT_DATA_INVALID)


def _contact_error(kind):
    if kind == "duplicate_external_id":
        return business_error(idExternalContact=M.DUPLICATE_EXTERNAL_CONTACT)
    return business_error(contacto=M.CONTACT_DATA_INVALID)


def create_with_contact(agent, data):
    """POST /new_contact/disposition/: all or nothing — every check runs before the first
    write, and the contact and its disposition are committed as one transaction.

    A phone already in a campaign that forbids duplicates is accepted, as OMniLeads 2.6.3
    does: a returning caller's disposition must never be lost. The contact is then a new row
    that does not hold the phone's no-duplicates slot (`unique_phone` stays empty), so
    new_contact and imports still refuse that phone, and the earlier contact and its
    disposition are untouched."""
    try:
        option_id = parse_id(data.get("idDispositionOption"))
        campaign = visible_option_campaign(option_id)   # the option and its campaign: 1 query
        if campaign is None:
            raise business_error(idDispositionOption=M.OPTION_NOT_FOUND)
        database = campaign.database
        values = _new_contact_values(database, data)
        forbid_duplicates = not campaign.allow_duplicate_phones
        try:
            comments, callid = _free_fields(data)
            fields, late_error = {"oid": option_id, "aid": agent.id, "callid": callid,
                                  "comments": comments}, None
        except ContractError as exc:   # reported after the duplicate checks, as before
            fields, late_error = None, exc
        # A preview campaign hands each contact to one agent: this one, who just spoke to it.
        assigned = agent.id if campaign.type == "preview" else None
        created = None
        if late_error is None:
            created = _create_with_contact_at_once(database, values, forbid_duplicates,
                                                   assigned, fields)
        if created is None:
            created = _create_with_contact_checked(campaign, values, forbid_duplicates,
                                                   assigned, late_error, fields)
        answer, acw = created
        _commit_or_duplicate()
    except Exception:
        db.session.rollback()
        raise
    _after_call_work(agent.id, acw)
    return answer


def _create_with_contact_at_once(database, values, forbid_duplicates, assigned, fields):
    """PostgreSQL, the usual case: the contact, its disposition and the event in one
    statement (disposition_writes.CREATE_WITH_CONTACT): (answer, after-call work seconds), or
    None when that does not apply or a duplicate check failed (nothing written: the checking
    path then says which, or makes the contact without the phone's slot)."""
    if not outbox.in_one_statement(db.session):
        return None
    params = {**contacts.row_params(database, values, forbid_duplicates, assigned), **fields,
              "now": utcnow()}
    statement = disposition_writes.CREATE_WITH_CONTACT[params["external_id"] is not None,
                                                       forbid_duplicates]
    try:
        row = _run(statement, params).first()
    except IntegrityError as exc:   # a concurrent request took the external id or the phone
        db.session.rollback()
        if is_unique_violation(exc):
            return None
        raise
    if row is None:
        return None
    outbox.written()
    return ({"id": row.id, "callid": fields["callid"], "idDispositionOption": fields["oid"],
             "comments": fields["comments"]}, row.acw_seconds if fields["callid"] else 0)


def _create_with_contact_checked(campaign, values, forbid_duplicates, assigned, late_error,
                                 fields):
    """The checks in Python, then one write each in one transaction: (answer, after-call
    work seconds). `late_error`: the free fields' error, raised after the duplicate checks."""
    database = campaign.database
    statements_in_transaction(db.session)   # three writes: contact, disposition, event
    try:
        if late_error is not None:
            contacts.check_duplicates(database, values, False)  # a taken phone is fine
            raise late_error
        contact_id = _insert_contact(database, values, forbid_duplicates, assigned)
    except contacts.ContactInvalid as exc:
        raise _contact_error(exc.kind)
    written = {"contact_id": contact_id, "campaign_id": campaign.id, "option_id": fields["oid"],
               "callid": fields["callid"], "comments": fields["comments"]}
    result = _insert(_INSERT, {**written, "agent_id": fields["aid"]})
    answer = {"id": result.scalar(), "callid": fields["callid"],
              "idDispositionOption": fields["oid"], "comments": fields["comments"]}
    return answer, _record("disposition.created", answer["id"], fields["aid"], written)


def _insert_contact(database, values, forbid_duplicates, assigned):
    """The new contact's id. In a no-duplicates campaign it takes the phone's slot when it is
    free; a phone already taken (before, or by a concurrent request: that one was rolled back
    whole) makes a contact without the slot, so the returning caller's disposition is kept."""
    try:
        return contacts.insert_row(database, values, forbid_duplicates,
                                   assigned_agent_id=assigned)
    except contacts.ContactInvalid as exc:
        if exc.kind != "duplicate_phone" or not forbid_duplicates:
            raise
    return contacts.insert_row(database, values, False, assigned_agent_id=assigned)
