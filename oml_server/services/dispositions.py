"""Dispositions: an agent's rating of a contact in a campaign (contract §2.6), and the contact
plus disposition created at once by new_contact/disposition (§2.7).

Every failure is `{"status": "ERROR", <field>: "<message>"}` with HTTP 400. Checks run in
OMniLeads' order (option, contact, duplicate, then the fields OMniLeads only trips over when
saving); one disposition per (contact, campaign) is the database's unique constraint, so two
agents racing for the same contact get one 201 and one 400, never two rows.
"""
from sqlalchemy import bindparam, exists, insert, select
from sqlalchemy.exc import IntegrityError

from .. import messages as M
from ..database import is_unique_violation
from ..errors import business_error, not_found
from ..extensions import db
from ..models import Campaign, Contact, Disposition, DispositionOption
from . import contacts, outbox
from .lookup import external_system, parse_id

CALLID_MAX_LENGTH = 32


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
_INSERT = insert(Disposition)
# POST's usual case (an internal contact id) in one round trip: the option and its campaign's
# database, the named contact's database, and whether that pair is already rated.
_OPTION_CONTACT_TAKEN = _OPTION.add_columns(
    select(Contact.database_id).where(Contact.id == bindparam("cid")).scalar_subquery(),
    exists().where(Disposition.contact_id == bindparam("cid"),
                   Disposition.campaign_id == DispositionOption.campaign_id))


def _run(statement, params):
    return db.session.connection().execute(statement, params)


def _option(raw, keep=None):
    """The option a body names, as a row (id, hidden, campaign_id, database_id). Missing,
    null, non-numeric, unknown and hidden options are all "not found"; `keep` (the
    disposition's current option) stays allowed once hidden."""
    option_id = parse_id(raw)
    option = _run(_OPTION, {"oid": option_id}).first() if option_id is not None else None
    if option is None or (option.hidden and (keep is None or option.id != keep)):
        raise business_error(idDispositionOption=M.OPTION_NOT_FOUND)
    return option


def _option_contact_taken(data):
    """(option row, contact id, already rated?) for a body without idExternalSystem: the
    checks of _option, _contact and _taken, in their order, from one query."""
    option_id = parse_id(data.get("idDispositionOption"))
    contact_id = parse_id(data.get("idContact"))
    row = (_run(_OPTION_CONTACT_TAKEN, {"oid": option_id, "cid": contact_id}).first()
           if option_id is not None else None)
    if row is None or row.hidden:
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


def _record(type_, disposition_id, agent_id, values):
    """`disposition.created|updated` in the transaction of the write (`values`: the row's
    columns). The option's name and `crm_interaction` go with it: the Calificación site fires
    on the latter."""
    option = db.session.execute(select(DispositionOption.name, DispositionOption.crm_interaction)
                                .where(DispositionOption.id == values["option_id"])).first()
    outbox.record(type_, call_id=values.get("callid"), agent_id=agent_id,
                  campaign_id=values["campaign_id"], disposition_id=disposition_id,
                  contact_id=values["contact_id"], option_id=values["option_id"],
                  option_name=option.name, crm_interaction=bool(option.crm_interaction),
                  callid=values.get("callid"), comments=values.get("comments", ""))


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

def create(agent, data):
    """POST /disposition/: 201's representation."""
    try:
        if data.get("idExternalSystem") in (None, ""):
            option, contact_id, taken = _option_contact_taken(data)
        else:
            option = _option(data.get("idDispositionOption"))
            contact_id = _contact(data, option.database_id)
            taken = _taken(contact_id, option.campaign_id)
        if taken:
            raise _duplicate()
        comments, callid = _free_fields(data)
        # One Core INSERT, not an ORM object and its flush (the Python defaults still apply).
        try:
            result = _run(_INSERT, {"contact_id": contact_id, "campaign_id": option.campaign_id,
                                    "agent_id": agent.id, "option_id": option.id,
                                    "callid": callid, "comments": comments})
        except IntegrityError as exc:  # another agent rated it meanwhile
            db.session.rollback()
            if is_unique_violation(exc):
                raise _duplicate()
            raise
        answer = {"id": result.inserted_primary_key[0], "idContact": contact_id,
                  "callid": callid, "idDispositionOption": option.id, "comments": comments}
        _record("disposition.created", answer["id"], agent.id,
                {"contact_id": contact_id, "campaign_id": option.campaign_id,
                 "option_id": option.id, "callid": callid, "comments": comments})
        _commit_or_duplicate()
    except Exception:
        db.session.rollback()
        raise
    return answer


def update(agent, disposition, data):
    """PUT /disposition/<id>/ on the agent's own `disposition`: every field is replaced."""
    try:
        option = _option(data.get("idDispositionOption"), keep=disposition.option_id)
        contact_id = _contact(data, option.database_id)
        if _taken(contact_id, option.campaign_id, exclude_id=disposition.id):
            raise _duplicate()
        comments, callid = _free_fields(data)
        disposition.contact_id = contact_id
        disposition.campaign_id = option.campaign_id
        disposition.option_id = option.id
        disposition.comments = comments
        disposition.callid = callid
        _record("disposition.updated", disposition.id, agent.id,
                {"contact_id": contact_id, "campaign_id": option.campaign_id,
                 "option_id": option.id, "callid": callid, "comments": comments})
        _commit_or_duplicate()
    except Exception:
        db.session.rollback()
        raise
    return representation(disposition)


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


class _PhoneTakenMeanwhile(Exception):
    """Another request took the phone's no-duplicates slot between our check and our insert."""


def create_with_contact(agent, data):
    """POST /new_contact/disposition/: all or nothing — every check runs before the first
    write, and the contact and its disposition are committed as one transaction.

    A phone already in a campaign that forbids duplicates is accepted, as OMniLeads 2.6.3
    does: a returning caller's disposition must never be lost. The contact is then a new row
    that does not hold the phone's no-duplicates slot (`unique_phone` stays empty), so
    new_contact and imports still refuse that phone, and the earlier contact and its
    disposition are untouched."""
    try:
        return _create_with_contact(agent, data, phone_free=None)
    except _PhoneTakenMeanwhile:  # lost the race for the slot: the same, without it
        return _create_with_contact(agent, data, phone_free=False)


def _create_with_contact(agent, data, phone_free):
    try:
        option = _option(data.get("idDispositionOption"))
        campaign = db.session.get(Campaign, option.campaign_id)
        database = campaign.database
        values = _new_contact_values(database, data)
        forbid_duplicates = not campaign.allow_duplicate_phones
        try:
            contacts.check_duplicates(database, values, forbid_duplicates and phone_free is None)
        except contacts.ContactInvalid as exc:
            if exc.kind != "duplicate_phone":
                raise _contact_error(exc.kind)
            phone_free = False
        comments, callid = _free_fields(data)
        # A preview campaign hands each contact to one agent: this one, who just spoke to it.
        assigned = agent.id if campaign.type == "preview" else None
        holds_slot = forbid_duplicates and phone_free is not False
        contact = contacts.build(database, values, holds_slot, assigned_agent_id=assigned)
        db.session.add(contact)
        try:
            db.session.flush()
        except IntegrityError as exc:  # another request took the external id or phone meanwhile
            db.session.rollback()
            if not is_unique_violation(exc):
                raise
            if "unique_phone" in str(exc.orig):
                raise _PhoneTakenMeanwhile()
            raise _contact_error("duplicate_external_id")
        disposition = Disposition(contact_id=contact.id, campaign_id=campaign.id,
                                  agent_id=agent.id, option_id=option.id, callid=callid,
                                  comments=comments)
        db.session.add(disposition)
        db.session.flush()
        _record("disposition.created", disposition.id, agent.id,
                {"contact_id": contact.id, "campaign_id": campaign.id, "option_id": option.id,
                 "callid": callid, "comments": comments})
        _commit_or_duplicate()
    except Exception:
        db.session.rollback()
        raise
    return {"id": disposition.id, "callid": disposition.callid,
            "idDispositionOption": disposition.option_id, "comments": disposition.comments}
