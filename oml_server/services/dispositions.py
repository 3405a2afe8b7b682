"""Dispositions: an agent's rating of a contact in a campaign (contract §2.6), and the contact
plus disposition created at once by new_contact/disposition (§2.7).

Every failure is `{"status": "ERROR", <field>: "<message>"}` with HTTP 400. Checks run in
OMniLeads' order (option, contact, duplicate, then the fields OMniLeads only trips over when
saving); one disposition per (contact, campaign) is the database's unique constraint, so two
agents racing for the same contact get one 201 and one 400, never two rows.
"""
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .. import messages as M
from ..database import is_unique_violation
from ..errors import business_error, not_found
from ..extensions import db
from ..models import Contact, Disposition, DispositionOption
from . import contacts
from .lookup import external_system, parse_id

CALLID_MAX_LENGTH = 32


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

def _option(raw, keep=None):
    """The option a body names. Missing, null, non-numeric, unknown and hidden options are all
    "not found"; `keep` (the disposition's current option) stays allowed once hidden."""
    option_id = parse_id(raw)
    option = db.session.get(DispositionOption, option_id) if option_id is not None else None
    if option is None or (option.hidden and (keep is None or option.id != keep)):
        raise business_error(idDispositionOption=M.OPTION_NOT_FOUND)
    return option


def _contact(data, campaign):
    """The contact `idContact` names, in the database of the option's campaign."""
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
            contact = db.session.scalar(select(Contact).where(
                Contact.database_id == campaign.database_id, Contact.external_id == external_id))
    else:
        contact_id = parse_id(raw)
        contact = db.session.get(Contact, contact_id) if contact_id is not None else None
        if contact is not None and contact.database_id != campaign.database_id:
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
    query = select(Disposition.id).where(Disposition.contact_id == contact_id,
                                         Disposition.campaign_id == campaign_id)
    if exclude_id is not None:
        query = query.where(Disposition.id != exclude_id)
    return db.session.scalar(query.limit(1)) is not None


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


def _save_and_represent(disposition):
    """Flush, build the representation, commit: reading the row after the commit would cost
    a SELECT, because the commit expires it. A lost race on (contact, campaign), at the flush
    or at the commit, becomes the duplicate error."""
    try:
        db.session.flush()
    except IntegrityError as exc:
        db.session.rollback()
        if is_unique_violation(exc):
            raise _duplicate()
        raise
    answer = representation(disposition)
    _commit_or_duplicate()
    return answer


# ---------------------------------------------------------------------------------- writing

def create(agent, data):
    """POST /disposition/: 201's representation."""
    try:
        option = _option(data.get("idDispositionOption"))
        contact = _contact(data, option.campaign)
        if _taken(contact.id, option.campaign_id):
            raise _duplicate()
        comments, callid = _free_fields(data)
        disposition = Disposition(contact_id=contact.id, campaign_id=option.campaign_id,
                                  agent_id=agent.id, option_id=option.id, callid=callid,
                                  comments=comments)
        db.session.add(disposition)
        answer = _save_and_represent(disposition)
    except Exception:
        db.session.rollback()
        raise
    return answer


def update(agent, disposition, data):
    """PUT /disposition/<id>/ on the agent's own `disposition`: every field is replaced."""
    try:
        option = _option(data.get("idDispositionOption"), keep=disposition.option_id)
        contact = _contact(data, option.campaign)
        if _taken(contact.id, option.campaign_id, exclude_id=disposition.id):
            raise _duplicate()
        comments, callid = _free_fields(data)
        disposition.contact_id = contact.id
        disposition.campaign_id = option.campaign_id
        disposition.option_id = option.id
        disposition.comments = comments
        disposition.callid = callid
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


def create_with_contact(agent, data):
    """POST /new_contact/disposition/: all or nothing — every check runs before the first
    write, and the contact and its disposition are committed as one transaction."""
    try:
        option = _option(data.get("idDispositionOption"))
        campaign = option.campaign
        database = campaign.database
        values = _new_contact_values(database, data)
        forbid_duplicates = not campaign.allow_duplicate_phones
        try:
            contacts.check_duplicates(database, values, forbid_duplicates)
        except contacts.ContactInvalid as exc:
            raise _contact_error(exc.kind)
        comments, callid = _free_fields(data)
        # A preview campaign hands each contact to one agent: this one, who just spoke to it.
        assigned = agent.id if campaign.type == "preview" else None
        contact = contacts.build(database, values, forbid_duplicates, assigned_agent_id=assigned)
        db.session.add(contact)
        try:
            db.session.flush()
        except IntegrityError as exc:  # another request took the external id or phone meanwhile
            db.session.rollback()
            if not is_unique_violation(exc):
                raise
            raise _contact_error("duplicate_phone" if "unique_phone" in str(exc.orig)
                                 else "duplicate_external_id")
        disposition = Disposition(contact_id=contact.id, campaign_id=campaign.id,
                                  agent_id=agent.id, option_id=option.id, callid=callid,
                                  comments=comments)
        db.session.add(disposition)
        _commit_or_duplicate()
    except Exception:
        db.session.rollback()
        raise
    return {"id": disposition.id, "callid": disposition.callid,
            "idDispositionOption": disposition.option_id, "comments": disposition.comments}
