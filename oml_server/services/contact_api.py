"""POST /api/v1/new_contact/ (contract §2.3): campaign checks, contact checks, one insert."""
from .. import messages as M
from ..errors import business_error, data_errors
from ..extensions import db
from . import contacts
from .lookup import agent_id_of
from .campaigns import CAMPAIGN_KEY, EXTERNAL_SYSTEM_KEY, campaign_for_request

# OMniLeads' agent console may send this flag; OMniLeads accepts it without complaint.
TOLERATED_KEYS = ("confirmar_duplicado",)


def _as_contract_error(exc):
    """A ContactInvalid as the body of contract §2.3 (the shape differs per check)."""
    if exc.kind == "unknown_fields":
        return business_error(400, message=M.INCORRECT_FIELDS, errors=list(exc.payload))
    if exc.kind == "missing_main_phone":
        return business_error(400, message=M.FIELD_MANDATORY, errors=exc.payload)
    if exc.kind == "field_errors":
        return data_errors(exc.payload)
    if exc.kind == "duplicate_external_id":
        return data_errors({exc.payload: [M.DUPLICATE_EXTERNAL_ID]})
    return data_errors({"__all__": [M.DUPLICATE_PHONE]})


def _assignee(user, campaign):
    """In a preview campaign the creating agent gets the contact; a non-agent assigns no one."""
    if campaign.type != "preview" or user.role != "Agente":
        return None
    return agent_id_of(user)


def new_contact(user, data):
    """Store one contact in the campaign's database and answer the 200 body."""
    campaign = campaign_for_request(user, data)
    database = campaign.database
    columns = {k: v for k, v in data.items() if k not in (CAMPAIGN_KEY, EXTERNAL_SYSTEM_KEY)}
    forbid = not campaign.allow_duplicate_phones
    try:
        values = contacts.normalize(database, columns, ignore=TOLERATED_KEYS)
        contact_id = contacts.insert_row(database, values, forbid_duplicate_phones=forbid,
                                         assigned_agent_id=_assignee(user, campaign))
        db.session.commit()
    except contacts.ContactInvalid as exc:
        db.session.rollback()
        raise _as_contract_error(exc)
    except Exception:
        db.session.rollback()
        raise
    # `values` holds every column (normalize fills the ones not sent), as the row stores them.
    return {"status": "OK", "message": M.CONTACT_ADDED, "id": contact_id,
            "contacto": {column: values[column] for column in database.columns}}
