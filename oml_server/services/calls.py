"""Click-to-call (contract §2.4), hanging up, and the call record [extension].

makeCall's checks follow OMniLeads' Django forms: the external system first (alone), then every
field in the order phone, idCampaign, idAgent, idContact, each with its first error. Then one
`calls` row is committed and handed to the engine (`telephony.place_click_to_call`); the
request never waits for the call. One live call per agent is the database's rule
(`calls.active_agent_id` is unique), so concurrent requests cannot both win.
"""
import logging
import uuid
from dataclasses import dataclass
from datetime import timezone

from flask import current_app
from flask_babel import force_locale
from sqlalchemy import bindparam, exists, select
from sqlalchemy.exc import IntegrityError

from .. import messages as M
from ..database import Prepared, is_unique_violation, run, statements_in_transaction
from ..errors import Detail, business_error, data_errors, not_found
from ..extensions import db
from ..models import AgentProfile, Call, CallLeg, Campaign, Contact, Event, campaign_agents, utcnow
from . import call_requests, call_state, crm_request, lookup, outbox, telephony, throttle
from .contacts import PHONE_RE

log = logging.getLogger(__name__)

CONTACT_KEYS = ("idContact", "idContacto")  # OML reads the first, its public page names the second
SUPERVISING_ROLES = ("Supervisor", "Administrador", "Gerente")


@dataclass
class ClickToCall:
    campaign: object
    agent: object
    contact: object
    number: str


# --- makeCall: the checks --------------------------------------------------------------------

def _empty(value):
    """Django's "empty values": such a field counts as not sent."""
    return value is None or (isinstance(value, (str, list, dict, tuple)) and len(value) == 0)


def _phone(raw, errors):
    if isinstance(raw, str):
        text = raw.strip()
    elif isinstance(raw, int) and not isinstance(raw, bool):
        text = str(raw)
    elif _empty(raw):
        text = ""
    else:
        errors["phone"] = [M.INVALID_PHONE]
        return None
    if not text:
        errors["phone"] = [M.FIELD_REQUIRED]
        return None
    if not PHONE_RE.match(text):
        errors["phone"] = [M.INVALID_PHONE]
        return None
    return text


def _contact_field(data, same, errors):
    """(key, raw value) of the contact id from idContact or idContacto; both sent must agree."""
    sent = [(key, data.get(key)) for key in CONTACT_KEYS if not _empty(data.get(key))]
    if len(sent) == 2 and not same(sent[0][1], sent[1][1]):
        errors["idContacto"] = [M.INVALID_CHOICE]
        return None, None
    return sent[0] if sent else (None, None)


def _same_internal(a, b):
    first, second = lookup.parse_id(a), lookup.parse_id(b)
    if first is None and second is None:
        return _same_external(a, b)
    return first == second


def _same_external(a, b):
    return not isinstance(a, (dict, list)) and str(a).strip() == str(b).strip()


def check_make_call(caller, data):
    """The call `data` asks for, placed by `caller` (an agent user). Raises the contract's
    error (HTTP 200) when a check fails."""
    if "idExternalSystem" in data:
        system = lookup.external_system(data["idExternalSystem"])
        if system is None:
            raise data_errors({"idExternalSystem": [M.UNKNOWN_EXTERNAL_SYSTEM]}, status=200)
        return _check_external(caller, system, data)
    return _check_internal(caller, data)


class _Row:
    """A campaign, agent or contact of the checks as the call needs it: its id and database;
    for the campaign its type and whether it records, for the agent its extension (the engine
    puts them on the agent's leg, so they are read here rather than again there)."""
    __slots__ = ("id", "database_id", "type", "record", "sip_extension")

    def __init__(self, id, database_id, type=None, record=None, sip_extension=None):
        self.id, self.database_id = id, database_id
        self.type, self.record, self.sip_extension = type, record, sip_extension


# The internal-id checks' reads in one round trip: the active campaign's database, whether
# the agent is one of its members, the contact's database (NULL: no such row); then what the
# engine needs to ring the agent: the campaign's type and recording flag, the agent's extension.
def _active_campaign(column):
    return select(column).where(Campaign.id == bindparam("cid"),
                                Campaign.state == "active").scalar_subquery()


_INTERNAL_CHECKS = Prepared(select(
    _active_campaign(Campaign.database_id),
    exists().where(campaign_agents.c.campaign_id == bindparam("cid"),
                   campaign_agents.c.agent_id == bindparam("aid")),
    select(Contact.database_id).where(Contact.id == bindparam("contact")).scalar_subquery(),
    _active_campaign(Campaign.type), _active_campaign(Campaign.record),
    select(AgentProfile.sip_extension).where(AgentProfile.id == bindparam("aid")).scalar_subquery()))


def _check_internal(caller, data):
    errors = {}
    number = _phone(data.get("phone"), errors)
    raw_campaign, raw_agent = data.get("idCampaign"), data.get("idAgent")
    contact_errors = {}   # added last: the errors keep the form's field order
    key, raw_contact = _contact_field(data, _same_internal, contact_errors)
    campaign_id = None if _empty(raw_campaign) else lookup.parse_id(raw_campaign)
    contact_id = lookup.parse_id(raw_contact) if key is not None else None
    own_agent_id = _own_agent_id(caller)
    campaign_db, is_member, contact_db, campaign_type, recorded, extension = run(
        _INTERNAL_CHECKS, {"cid": campaign_id, "aid": own_agent_id, "contact": contact_id}).one()

    campaign = None
    if _empty(raw_campaign):
        errors["idCampaign"] = [M.FIELD_REQUIRED]
    elif campaign_db is None:
        errors["idCampaign"] = [M.INVALID_CHOICE]
    else:
        campaign = _Row(campaign_id, campaign_db, campaign_type, recorded)

    agent = None
    if _empty(raw_agent):
        errors["idAgent"] = [M.FIELD_REQUIRED]
    elif own_agent_id is None or lookup.parse_id(raw_agent) != own_agent_id \
            or not caller.is_active:
        errors["idAgent"] = [M.INVALID_CHOICE]  # [better] an agent places calls only as itself
    else:
        agent = _Row(own_agent_id, None, sip_extension=extension)  # no profile load
        if campaign is not None and not is_member:
            errors["idAgent"] = [M.AGENT_NOT_IN_CAMPAIGN]

    errors.update(contact_errors)
    contact = None
    if key is not None:
        if contact_db is None:
            errors[key] = [M.INVALID_CHOICE]
        elif campaign is not None and contact_db != campaign.database_id:
            errors[key] = [M.CONTACT_NOT_IN_CAMPAIGN]
        else:
            contact = _Row(contact_id, contact_db)

    if errors:
        raise data_errors(errors, status=200)
    return ClickToCall(campaign, agent, contact, number)


def _check_external(caller, system, data):
    errors = {}
    number = _phone(data.get("phone"), errors)

    # As OMniLeads: any of the system's campaigns (contract §2.4 names "active" only for
    # internal ids).
    campaign = _campaign(data, errors,
                         lambda raw: lookup.campaign_by_external_id(system, raw, active_only=False))

    agent = None
    raw = data.get("idAgent")
    if _empty(raw):
        errors["idAgent"] = [M.FIELD_REQUIRED]
    elif campaign is not None:  # as OMniLeads: the agent is looked at once the campaign is known
        agent = lookup.agent_by_external_id(system, raw)
        if agent is None:
            errors["idAgent"] = [M.AGENT_NOT_IN_EXTERNAL_SYSTEM]
        elif agent.id != _own_agent_id(caller):
            agent = None
            errors["idAgent"] = [M.INVALID_CHOICE]
        elif not lookup.is_member(agent, campaign):
            errors["idAgent"] = [M.AGENT_NOT_IN_CAMPAIGN]

    contact = None
    key, raw = _contact_field(data, _same_external, errors)
    if key is not None and campaign is not None and isinstance(raw, (str, int)) \
            and not isinstance(raw, bool):
        # An unknown external contact is ignored: the call still goes out (contract §2.4).
        contact = db.session.scalar(select(Contact).where(
            Contact.database_id == campaign.database_id,
            Contact.external_id == str(raw).strip()[:128]))

    if errors:
        raise data_errors(errors, status=200)
    return ClickToCall(campaign, agent, contact, number)


def _campaign(data, errors, find):
    """The campaign `idCampaign` names (found by `find`), or None with its field error."""
    raw = data.get("idCampaign")
    if _empty(raw):
        errors["idCampaign"] = [M.FIELD_REQUIRED]
        return None
    campaign = find(raw)
    if campaign is None:
        errors["idCampaign"] = [M.INVALID_CHOICE]
    return campaign


def _own_agent_id(user):
    return user.agent_id


# --- makeCall: the call ----------------------------------------------------------------------

def call_failed(reason):
    return business_error(200, message=M.CALL_FAILED, errors=[reason])


def place(request):
    """Record the call and hand it to the engine; its id, or the "Error when executing the
    call" error."""
    # The ids are read before anything can expire the objects (each would be reloaded with a
    # SELECT of its own).
    # No campaign: make_call_outside_campaign (contract-calls §5).
    agent_id = request.agent.id
    campaign_id = request.campaign.id if request.campaign is not None else None
    contact_id = request.contact.id if request.contact is not None else None
    call_id = uuid.uuid4().hex
    call = Call(id=call_id, kind="click_to_call", state="requested", campaign_id=campaign_id,
                agent_id=agent_id, active_agent_id=agent_id, contact_id=contact_id,
                number=request.number, node=current_app.config.get("ASTERISK_NODE", "local"),
                created_at=utcnow())
    session = db.session()
    # The row goes to the engine as written, and stays loaded through the engine's own
    # commits (ringing the agent): expired, each read of it would reload the whole row.
    session.expire_on_commit = False
    try:
        try:
            _write_call(call)
        except IntegrityError as exc:
            db.session.rollback()
            if is_unique_violation(exc):  # the agent already has a live call
                throttle.record_call(agent_id)  # the rollback took the count with it
                raise call_failed(M.AGENT_BUSY)
            raise
        known = telephony.KnownFacts(
            extension=getattr(request.agent, "sip_extension", None),
            campaign_type=getattr(request.campaign, "type", None),
            recorded=getattr(request.campaign, "record", None))
        refused = None
        try:
            telephony.place_click_to_call(call, known)
        except telephony.CallNotPlaced as exc:
            refused = exc.reason
        except Exception:
            log.exception("the engine failed to place call %s", call_id)
            refused = M.TELEPHONY_UNAVAILABLE
    finally:
        session.expire_on_commit = True
    if refused is not None:
        _fail(call_id, refused)
        raise call_failed(refused)
    db.session.commit()  # whatever the engine set on the row (channel ids…)
    return call_id


def _write_call(call):
    """The call's row, its event and the agent's makeCall count, committed together; raises
    call_failed(TOO_MANY_CALLS) past the limit (a CRM stuck in a loop must not ring the
    agent's phone forever). On PostgreSQL one statement; `call` stays out of the session."""
    if outbox.in_one_statement(db.session):
        placed = call_requests.place(call.id, call.agent_id, call.campaign_id, call.contact_id,
                                     call.number, call.node, call.created_at)
        throttle.prune_sometimes(call.created_at)   # other keys' old counts, as _record does
        db.session.commit()
        if not placed:
            raise call_failed(M.TOO_MANY_CALLS)
        return
    statements_in_transaction(db.session)   # several statements: one transaction
    try:
        throttle.count_call(call.agent_id, commit=False)
    except throttle.Refused:
        raise call_failed(M.TOO_MANY_CALLS)
    db.session.add(call)
    # The row is flushed at the commit: a unique violation (a live call) surfaces there.
    outbox.record("call.requested", call_id=call.id, agent_id=call.agent_id,
                  campaign_id=call.campaign_id, state="requested", kind="click_to_call",
                  number=call.number)
    db.session.commit()


def _fail(call_id, reason):
    db.session.rollback()  # drop anything half-set on the row by the failed hand-off
    call_state.finish(call_id, "failed", _english(reason))


def _english(reason):
    """Reasons are stored in English whatever the request's language."""
    with force_locale("en"):
        return str(reason)


def finish(call, state, reason=None):
    """End a live call row (state "ended" or "failed"), freeing its agent for the next one."""
    call_state.finish(call.id, state, reason)


# --- hangupCall ------------------------------------------------------------------------------

# The backends read the call's id and state only: a Core row, not an ORM object (loading
# one was most of the request's database CPU).
_LIVE_CALL_OF_AGENT = Prepared(select(Call.__table__.c.id, Call.__table__.c.state).where(
    Call.__table__.c.active_agent_id == bindparam("aid")))


def hangup(agent_id):
    """Hang up the agent's live call: True, or False when there is none (or the engine fails).

    The view's statements run without a transaction block on PostgreSQL (single_write): the
    reads, then the call's end, which is one statement there (call_state.finish); where it is
    not (STREAM_WAKEUP=notify), its statements go in one block again."""
    call = run(_LIVE_CALL_OF_AGENT, {"aid": agent_id}).first()
    if call is None:
        return False
    if not outbox.in_one_statement(db.session):
        statements_in_transaction(db.session)
    try:
        telephony.hangup_call(call)
    except Exception:
        log.warning("the engine failed to hang up call %s", call.id, exc_info=True)
        db.session.rollback()
        return False
    db.session.commit()
    return True


# --- GET /api/v1/calls/<callId>/ -------------------------------------------------------------

def _visible(user, call_id):
    """The call, for its agent or a supervisor of its campaign; 404 for anyone else."""
    call = db.session.get(Call, call_id) if isinstance(call_id, str) and len(call_id) <= 32 else None
    if call is None or not _may_see(user, call):
        raise not_found()
    return call


def visible_call(user, call_id):
    """The call as JSON for its agent or a supervisor of its campaign; 404 for anyone else."""
    return payload(_visible(user, call_id))


def crm_interaction(user, call_id):
    """The browser's configuration of the call's campaign site; 404 like visible_call, or
    when the campaign has none."""
    agent_id = user.agent.id if user.agent is not None else None
    config = crm_request.interaction(_visible(user, call_id), agent_id=agent_id)
    if config is None:
        raise Detail(404, M.NO_CRM_SITE)
    return config


def _may_see(user, call):
    agent_id = user.agent_id
    if agent_id is not None and agent_id in (call.agent_id, call.active_agent_id):
        return True
    if agent_id is not None and _was_on(agent_id, call.id):
        return True  # an agent the call was transferred away from keeps seeing it
    if user.role in SUPERVISING_ROLES and call.campaign_id is not None:
        campaign = lookup.campaign_by_id(call.campaign_id, active_only=False)
        return campaign is not None and any(s.id == user.id for s in campaign.supervisors)
    return False


def _iso(moment):
    if moment is None:
        return None
    if moment.tzinfo is None:  # SQLite gives back naive datetimes; they were stored in UTC
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat()


def _was_on(agent_id, call_id):
    return db.session.scalar(select(Event.id).where(Event.call_id == call_id,
                                                    Event.agent_id == agent_id).limit(1)) is not None


def _legs(call_id):
    rows = db.session.scalars(select(CallLeg).where(CallLeg.call_id == call_id)
                              .order_by(CallLeg.id)).all()
    return [{"role": leg.role, "channel": leg.asterisk_id, "resource": leg.resource,
             "state": leg.state, "hangup_cause": leg.hangup_cause,
             "created_at": _iso(leg.created_at), "ended_at": _iso(leg.ended_at)} for leg in rows]


# Keys of an event's data already shown elsewhere in the record (or internal to the engine).
_EVENT_HIDDEN = ("kind", "number", "state", "tried", "deadline")


def _events(call_id):
    rows = db.session.scalars(select(Event).where(Event.call_id == call_id)
                              .order_by(Event.id)).all()
    return [{"type": e.type, "time": _iso(e.created_at), "agent": e.agent_id,
             **{k: v for k, v in (e.data or {}).items()
                if k not in _EVENT_HIDDEN and v is not None}} for e in rows]


def payload(call):
    return {
        **_summary(call), "current_agent": call.active_agent_id,
        "legs": _legs(call.id), "events": _events(call.id),
    }


def _summary(call):
    return {
        "id": call.id, "kind": call.kind, "campaign": call.campaign_id, "agent": call.agent_id,
        "contact": call.contact_id, "number": call.number, "state": call.state,
        "reason": call.reason, "hangup_cause": call.hangup_cause,
        "created_at": _iso(call.created_at), "agent_answered_at": _iso(call.agent_answered_at),
        "bridged_at": _iso(call.bridged_at), "ended_at": _iso(call.ended_at),
        "agent_channel_id": call.agent_channel_id, "contact_channel_id": call.contact_channel_id,
        "bridge_id": call.bridge_id,
    }
