"""Campaign look-ups of the REST contract.

`campaign_for_request` runs the four ordered checks that database_metadata (§2.2) and
new_contact (§2.3) share; `disposition_options` serves §2.5, whose misses are a plain 404.
"""
from sqlalchemy import bindparam, select

from .. import messages as M
from ..errors import data_errors, not_found
from ..database import Prepared, run
from ..models import DispositionOption
from . import lookup

EXTERNAL_SYSTEM_KEY = "idExternalSystem"
CAMPAIGN_KEY = "idCampaign"


def _campaign_error(message):
    return data_errors({CAMPAIGN_KEY: [message]})


def campaign_for_request(user, data):
    """The active campaign `data` names that `user` may edit, or a 400 data-errors body.

    Order of checks (contract §2.2): unknown external system, missing / non-integer id, not
    found or not active, no access. The mere presence of `idExternalSystem` (even null or
    empty) switches to external ids, as in OMniLeads.
    """
    system = None
    if EXTERNAL_SYSTEM_KEY in data:
        system = lookup.external_system(data[EXTERNAL_SYSTEM_KEY])
        if system is None:
            raise data_errors({EXTERNAL_SYSTEM_KEY: [M.UNKNOWN_EXTERNAL_SYSTEM]})

    raw = data.get(CAMPAIGN_KEY)
    if system is None:
        campaign_id = lookup.parse_id(raw)
        if campaign_id is None:
            raise _campaign_error(M.INVALID_CAMPAIGN_ID)
        # The campaign and the access check in one query (the hot path of new_contact).
        campaign, access = lookup.active_campaign_and_access(campaign_id, user)
    else:
        # An external id is any scalar; absent, null or structured values are not ids.
        if raw is None or isinstance(raw, (dict, list, bool)):
            raise _campaign_error(M.INVALID_CAMPAIGN_ID)
        campaign = lookup.campaign_by_external_id(system, raw)
        access = campaign is not None and lookup.has_campaign_access(user, campaign)

    if campaign is None:
        raise _campaign_error(M.CAMPAIGN_NOT_FOUND)
    if not access:
        raise _campaign_error(M.CAMPAIGN_NO_PERMISSION)
    return campaign


def database_metadata(user, data):
    """The body of a successful database_metadata (contract §2.2)."""
    database = campaign_for_request(user, data).database
    return {"status": "OK", "main_phone": database.main_phone,
            "external_id": database.external_id_column or None,
            "fields": list(database.columns)}


def disposition_options(raw_campaign, raw_system=None):
    """Every option of a campaign, hidden ones included, oldest first (contract §2.5).

    Like OMniLeads: any campaign state, no membership check; any miss is a 404.
    """
    if raw_system is None:
        campaign_id = lookup.parse_id(raw_campaign)
        if campaign_id is None:
            raise not_found()
        # Options first: a campaign with options exists, so the usual answer costs one query;
        # only an empty list asks whether the campaign is there at all.
        options = _options_of(campaign_id)
        if not options and lookup.campaign_by_id(campaign_id, active_only=False) is None:
            raise not_found()
        return options
    system = lookup.external_system(raw_system)
    campaign = (lookup.campaign_by_external_id(system, raw_campaign, active_only=False)
                if system is not None else None)
    if campaign is None:
        raise not_found()
    return _options_of(campaign.id)


# Built once, run on the session's connection: plain rows, no ORM (this is a hot read).
_OPTIONS = Prepared(select(DispositionOption.id, DispositionOption.name, DispositionOption.hidden)
                    .where(DispositionOption.campaign_id == bindparam("cid"))
                    .order_by(DispositionOption.id))


def _options_of(campaign_id):
    """The options' fields as plain dicts."""
    rows = run(_OPTIONS, {"cid": campaign_id})
    return [{"id": id_, "name": name, "hidden": bool(hidden)} for id_, name, hidden in rows]

