"""Finding the objects a request names: ids as numbers or strings, internal or external.

Each function answers None when the thing does not exist; callers choose the contract message,
because the same miss reads differently per endpoint (contract §2.2 vs §2.4).
"""
from sqlalchemy import exists, select
from sqlalchemy.orm import joinedload

from ..extensions import db
from ..models import (AgentExternalId, AgentProfile, Campaign, ExternalSystem, User,
                      campaign_agents, campaign_supervisors)

MAX_ID = 2**63 - 1


def parse_id(raw):
    """An id from a JSON number or a string of digits; None for anything else.

    Booleans, floats with a fraction, negative or huge numbers are not ids (they would reach
    the database as errors or match by accident).
    """
    if isinstance(raw, bool) or raw is None:
        return None
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, float):
        if not raw.is_integer():
            return None
        value = int(raw)
    elif isinstance(raw, str):
        text = raw.strip()
        if not text.isdigit() or not text.isascii():
            return None
        value = int(text)
    else:
        return None
    return value if 0 <= value <= MAX_ID else None


def external_system(raw_id):
    system_id = parse_id(raw_id)
    return db.session.get(ExternalSystem, system_id) if system_id is not None else None


def campaign_by_id(campaign_id, active_only=True):
    # The contact database comes in the same query: new_contact and metadata read it next.
    campaign = (db.session.get(Campaign, campaign_id, options=[joinedload(Campaign.database)])
                if campaign_id is not None else None)
    if campaign is None or (active_only and not campaign.is_active):
        return None
    return campaign


def campaign_by_external_id(system, raw_external_id, active_only=True):
    if raw_external_id is None or isinstance(raw_external_id, (dict, list, bool)):
        return None
    query = select(Campaign).where(Campaign.external_system_id == system.id,
                                   Campaign.external_id == str(raw_external_id))
    if active_only:
        query = query.where(Campaign.state == "active")
    return db.session.scalar(query)


def agent_by_id(raw_id):
    agent_id = parse_id(raw_id)
    agent = db.session.get(AgentProfile, agent_id) if agent_id is not None else None
    return agent if agent is not None and agent.user.is_active else None


def agent_by_external_id(system, raw_external_id):
    if raw_external_id is None or isinstance(raw_external_id, (dict, list, bool)):
        return None
    link = db.session.scalar(select(AgentExternalId).where(
        AgentExternalId.external_system_id == system.id,
        AgentExternalId.external_agent_id == str(raw_external_id)))
    if link is None:
        return None
    agent = db.session.get(AgentProfile, link.agent_id)
    return agent if agent is not None and agent.user.is_active else None


def is_member(agent, campaign):
    # One indexed EXISTS (the association's primary key), not a load of every member: a
    # campaign with hundreds of agents costs the same as one with two.
    return bool(db.session.scalar(select(exists().where(
        campaign_agents.c.campaign_id == campaign.id, campaign_agents.c.agent_id == agent.id))))


def has_campaign_access(user: User, campaign: Campaign):
    """An agent must be a member; anyone else must be among the campaign's supervisors."""
    if user.agent is not None and user.role == "Agente":
        return is_member(user.agent, campaign)
    return bool(db.session.scalar(select(exists().where(
        campaign_supervisors.c.campaign_id == campaign.id,
        campaign_supervisors.c.user_id == user.id))))
