"""Agents' live status as OMniLeads' supervision shows it (contract-calls §4).

One query reads, for a set of agents, their session flags and their live call (through the
unique `calls.active_agent_id`, so a table of a million calls costs one index probe per agent).
The status is derived, never stored: nothing can disagree with the rows the engine writes.

    a live call: agent_ringing → RINGING; requested/agent_answered/contact_ringing → DIALING;
                 bridged → ONCALL (campana_llamada, contacto, call_id set)
    no call:     logged out → OFFLINE; phone not registered, or console heartbeat lost →
                 UNAVAILABLE; paused → PAUSE-<name>; phone ringing → RINGING; else READY
`tiempo` counts from the moment that status began: the call's own timestamps for call states,
`status_since` (set by every writer of the session) otherwise.
"""
from datetime import timedelta

from flask import current_app
from sqlalchemy import select

from ..extensions import db
from ..models import (SYSTEM_PAUSES, AgentProfile, AgentSession, Call, Campaign, Pause, User,
                      campaign_agents, utcnow)

_CALL_STATUS = {"agent_ringing": "RINGING", "requested": "DIALING", "agent_answered": "DIALING",
                "contact_ringing": "DIALING", "bridged": "ONCALL"}


def heartbeat_deadline(now=None):
    """Heartbeats older than this are lost (the console stopped beating)."""
    return (now or utcnow()) - timedelta(
        seconds=current_app.config["PRESENCE_HEARTBEAT_TIMEOUT_SEC"])


def _pause_names():
    names = {key: name for key, name in SYSTEM_PAUSES.items()}
    names.update({str(i): n for i, n in db.session.execute(select(Pause.id, Pause.name))})
    return names


def rows(agent_filter):
    """Session and live-call columns of the agents `agent_filter` (a WHERE clause on
    AgentProfile.id) selects, ordered by agent id."""
    query = (select(AgentProfile.id, AgentProfile.sip_extension, AgentProfile.group,
                    User.first_name, User.last_name, User.username,
                    AgentSession.online, AgentSession.logged_in, AgentSession.paused,
                    AgentSession.pause_id, AgentSession.ringing, AgentSession.status_since,
                    AgentSession.heartbeat_at,
                    Call.id.label("call_id"), Call.state.label("call_state"), Call.number,
                    Call.created_at.label("call_created"), Call.agent_answered_at,
                    Call.bridged_at, Campaign.name.label("call_campaign"))
             .join(User, User.id == AgentProfile.user_id)
             .outerjoin(AgentSession, AgentSession.agent_id == AgentProfile.id)
             .outerjoin(Call, Call.active_agent_id == AgentProfile.id)
             .outerjoin(Campaign, Campaign.id == Call.campaign_id)
             .where(agent_filter).order_by(AgentProfile.id))
    # Core rows on the session's connection: lighter than the ORM's result processing.
    return db.session.connection().execute(query).all()


def status_of(row, pauses, deadline, now):
    """(status, seconds in it) of one row of `rows`. `now` and `deadline` are naive (UTC)
    where the database gives naive datetimes (SQLite), so rows need no conversion."""
    if row.call_id is not None and row.call_state in _CALL_STATUS:
        status = _CALL_STATUS[row.call_state]
        since = (row.bridged_at if status == "ONCALL" else
                 row.agent_answered_at if status == "DIALING" else None) or row.call_created
    else:
        since = row.status_since
        if not row.logged_in:
            status = "OFFLINE"
        elif not row.online:
            status = "UNAVAILABLE"
        elif row.heartbeat_at is not None and row.heartbeat_at < deadline:
            status = "UNAVAILABLE"  # since the timeout ran out, unless something later
            ran_out = row.heartbeat_at + (now - deadline)
            since = ran_out if since is None or since < ran_out else since
        elif row.paused:
            status = f"PAUSE-{pauses.get(row.pause_id or '', row.pause_id or '')}"
        elif row.ringing:
            status = "RINGING"
        else:
            status = "READY"
    if since is None:
        return status, 0
    seconds = int((now - since).total_seconds())
    return status, seconds if seconds > 0 else 0


def name_of(row):
    return " ".join(p for p in (row.first_name, row.last_name) if p) or row.username


def statuses(agent_filter):
    """[(row, status, seconds)] for the selected agents."""
    now = utcnow()
    deadline, pauses = heartbeat_deadline(now), _pause_names()
    if db.session.get_bind().dialect.name == "sqlite":  # stores naive UTC datetimes
        now, deadline = now.replace(tzinfo=None), deadline.replace(tzinfo=None)
    return [(row, *status_of(row, pauses, deadline, now)) for row in rows(agent_filter)]


def campaign_names(agent_filter):
    """{agent id: [names of its campaigns]} for the agents `agent_filter` selects: one query
    with the same clause (a list of a thousand ids as parameters cost more than the join)."""
    names = {}
    query = (select(campaign_agents.c.agent_id, Campaign.name)
             .join(Campaign, Campaign.id == campaign_agents.c.campaign_id)
             .join(AgentProfile, AgentProfile.id == campaign_agents.c.agent_id)
             .where(agent_filter).order_by(campaign_agents.c.agent_id, Campaign.name))
    for agent_id, name in db.session.execute(query):
        names.setdefault(agent_id, []).append(name)
    return names


def members_filter(campaign_id):
    return AgentProfile.id.in_(select(campaign_agents.c.agent_id)
                               .where(campaign_agents.c.campaign_id == campaign_id))

