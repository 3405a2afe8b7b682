"""What a supervisor sees and may act on (contract-calls §4).

Who sees whom: Administrador and Gerente every agent and campaign; Supervisor and Referente
the agents of the campaigns they are supervisors of (`campaign_supervisors`). Acting on an
agent needs the same relation (a supervisor of one of the agent's campaigns).
"""
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import and_, case, exists, func, select

from .. import messages as M
from ..extensions import db
from ..models import (FINAL_CALL_STATES, AgentProfile, Call, Campaign, campaign_agents,
                      campaign_supervisors)
from . import agent_presence, agent_status, telephony
from .users import supervisor_phone

SEES_ALL = ("Administrador", "Gerente")


class ActionRefused(Exception):
    """Answered as 200 {"status": "ERROR", "message": ...}."""

    def __init__(self, message):
        super().__init__(str(message))
        self.message = message


def _supervised_campaigns(user):
    return select(campaign_supervisors.c.campaign_id).where(campaign_supervisors.c.user_id == user.id)


def visible_agents_filter(user):
    if user.role in SEES_ALL:
        return AgentProfile.id.is_not(None)
    return AgentProfile.id.in_(select(campaign_agents.c.agent_id).where(
        campaign_agents.c.campaign_id.in_(_supervised_campaigns(user))))


def may_see_campaign(user, campaign_id):
    if user.role in SEES_ALL:
        return True
    return bool(db.session.scalar(select(exists().where(
        campaign_supervisors.c.campaign_id == campaign_id,
        campaign_supervisors.c.user_id == user.id))))


def may_see_call_campaign(user, campaign_id):
    return user.role in SEES_ALL or (campaign_id is not None and may_see_campaign(user, campaign_id))


def may_act_on_agent(user, agent_id):
    if user.role in SEES_ALL:
        return True
    return bool(db.session.scalar(select(exists().where(
        campaign_agents.c.agent_id == agent_id,
        campaign_agents.c.campaign_id.in_(_supervised_campaigns(user))))))


# -- the lists ---------------------------------------------------------------------------------

def agents_for(user):
    """supervision/agents: every visible agent not OFFLINE."""
    visible = visible_agents_filter(user)
    listed = [(row, status, seconds) for row, status, seconds
              in agent_status.statuses(visible) if status != "OFFLINE"]
    campaigns = agent_status.campaign_names(visible)
    entries = []
    for row, status, seconds in listed:
        on_call = status == "ONCALL"
        entry = {"id": row.id, "nombre": agent_status.name_of(row), "status": status,
                 "sip": row.sip_extension, "pause_id": (row.pause_id or "") if row.paused else "",
                 "campana_llamada": (row.call_campaign or "") if on_call else "",
                 "contacto": (row.number or "") if on_call else "", "tiempo": seconds,
                 "grupo": row.group or "", "campana": campaigns.get(row.id, [])}
        if on_call:
            entry["call_id"] = row.call_id  # [extension]
        entries.append(entry)
    return entries


def campaign_counts(campaign_id):
    """agent_status/campaign/<id>: READY, ONCALL and PAUSE-* members (RINGING, DIALING,
    UNAVAILABLE and OFFLINE are in none of the three, as in OMniLeads)."""
    counts = {"ready": 0, "oncall": 0, "pause": 0}
    for _, status, _ in agent_status.statuses(agent_status.members_filter(campaign_id)):
        key = "pause" if status.startswith("PAUSE-") else status.lower()
        if key in counts:
            counts[key] += 1
    return counts


def campaign_list(campaign_id):
    """agent_status_list/campaign/<id>: every member, PAUSE-… shown as PAUSE."""
    return [{"name": agent_status.name_of(row),
             "status": "PAUSE" if status.startswith("PAUSE-") else status}
            for row, status, _ in agent_status.statuses(agent_status.members_filter(campaign_id))]


def parse_day(raw, default):
    """A YYYY-MM-DD query value (absent: `default`); None when malformed."""
    if raw is None or raw == "":
        return default
    try:
        return date.fromisoformat(raw) if len(raw) == 10 else None
    except ValueError:
        return None


def call_counts(campaign_id, first_day, last_day):
    """call_status/campaign/<id>: the campaign's calls started between the two days (UTC,
    inclusive): attended = bridged with an agent; abandoned = the caller of an inbound call hung
    up while waiting; expired = every other call that ended unanswered. Live calls count in
    none. One indexed aggregate over (campaign_id, created_at)."""
    start = datetime.combine(first_day, time.min, tzinfo=timezone.utc)
    end = datetime.combine(last_day + timedelta(days=1), time.min, tzinfo=timezone.utc)
    final = Call.state.in_(FINAL_CALL_STATES)
    attended = Call.bridged_at.is_not(None)
    abandoned = and_(final, ~attended, Call.kind == "inbound", Call.reason == "caller_hangup")
    expired = and_(final, ~attended, ~abandoned)
    row = db.session.execute(
        select(func.count(case((attended, 1))), func.count(case((abandoned, 1))),
               func.count(case((expired, 1))))
        .where(Call.campaign_id == campaign_id, Call.created_at >= start,
               Call.created_at < end)).one()
    return {"attended": row[0], "abandoned": row[1], "expired": row[2]}


def campaign_exists(campaign_id):
    return campaign_id is not None and db.session.get(Campaign, campaign_id) is not None


# -- acting on an agent ------------------------------------------------------------------------

LISTEN_ACTIONS = {"CHANSPY": "spy", "CHANSPYWISHPER": "whisper", "CHANCONFER": "barge",
                  "CHANTAKECALL": "take_call"}
ACTIONS = ("AGENTLOGOUT", "AGENTPAUSE", "AGENTUNPAUSE") + tuple(LISTEN_ACTIONS)


def act(user, agent_id, action):
    """Do `action` on the agent; raises ActionRefused with the reason."""
    if action == "AGENTLOGOUT":
        agent_presence.logout(agent_id)
    elif action == "AGENTPAUSE":
        if not agent_presence.pause(agent_id, "00"):
            raise ActionRefused(M.AGENT_NOT_LOGGED_IN)
    elif action == "AGENTUNPAUSE":
        if not agent_presence.ready(agent_id):
            raise ActionRefused(M.AGENT_NOT_LOGGED_IN)
    else:
        listen(user, agent_id, LISTEN_ACTIONS[action])


def live_call_of(agent_id):
    return db.session.scalar(select(Call).where(Call.active_agent_id == agent_id,
                                                Call.state == "bridged"))


def listen(user, agent_id, mode, phone=None):
    """Ring the supervisor's phone (`phone`, default the caller's) into the agent's bridged call
    as `mode` (spy, whisper, whisper_in, barge, take_call). Returns the call. The engine does
    the rest when the phone answers."""
    call = live_call_of(agent_id)
    if call is None:
        raise ActionRefused(M.AGENT_NOT_ON_CALL)
    phone = phone or supervisor_phone(user.id)
    if phone is None:
        raise ActionRefused(M.NO_SUPERVISOR_PHONE)
    try:
        telephony.supervise(call, phone, mode)
    except telephony.CallNotPlaced as exc:
        raise ActionRefused(exc.reason)
    return call


def engine_away(message):
    """The refusal means no engine could take the command (not a reason about the call)."""
    return message in (M.TELEPHONY_UNAVAILABLE, M.SUPERVISION_UNAVAILABLE,
                       M.TELEPHONY_NOT_CONFIGURED)


def agent_exists(agent_id):
    return agent_id is not None and db.session.get(AgentProfile, agent_id) is not None
