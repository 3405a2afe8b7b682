"""Finding the objects a request names: ids as numbers or strings, internal or external.

Each function answers None when the thing does not exist; callers choose the contract message,
because the same miss reads differently per endpoint (contract §2.2 vs §2.4).
"""
from sqlalchemy import bindparam, exists, select
from sqlalchemy.orm import joinedload

from ..database import Prepared, run
from ..extensions import db
from ..models import (AgentExternalId, AgentProfile, Campaign, Contact, ContactDatabase,
                      DispositionOption, ExternalSystem, User, campaign_agents,
                      campaign_supervisors)

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


class DatabaseInfo:
    """The fields of a ContactDatabase that contact checks read, without an ORM object."""
    __slots__ = ("id", "columns", "main_phone", "other_phones", "external_id_column")

    def __init__(self, id, columns, main_phone, other_phones, external_id_column):
        self.id, self.columns, self.main_phone = id, columns, main_phone
        self.other_phones, self.external_id_column = other_phones, external_id_column

    phone_columns = ContactDatabase.phone_columns


class CampaignInfo:
    """The fields of a Campaign (and its contact database) that new_contact and
    database_metadata read: the same names as the model's, loaded with one Core select
    (an ORM load with its joined database cost several times more CPU)."""
    __slots__ = ("id", "type", "state", "allow_duplicate_phones", "database_id", "database")

    def __init__(self, id, type, state, allow_duplicate_phones, database):
        self.id, self.type, self.state = id, type, state
        self.allow_duplicate_phones, self.database = allow_duplicate_phones, database
        self.database_id = database.id

    is_active = Campaign.is_active


# Statements built once (building them costs more than running them on SQLite).
_CAMPAIGN_INFO_ALL = (select(Campaign.id, Campaign.type, Campaign.state,
                             Campaign.allow_duplicate_phones, ContactDatabase.id,
                             ContactDatabase.columns, ContactDatabase.main_phone,
                             ContactDatabase.other_phones, ContactDatabase.external_id_column)
                      .join(ContactDatabase, ContactDatabase.id == Campaign.database_id))
_CAMPAIGN_INFO = _CAMPAIGN_INFO_ALL.where(Campaign.id == bindparam("cid"))
# A disposition option's hidden flag and its campaign, for new_contact/disposition.
_OPTION_CAMPAIGN_INFO = Prepared(
    _CAMPAIGN_INFO_ALL.add_columns(DispositionOption.hidden)
    .join(DispositionOption, DispositionOption.campaign_id == Campaign.id)
    .where(DispositionOption.id == bindparam("oid")))
_IS_MEMBER = select(exists().where(campaign_agents.c.campaign_id == bindparam("cid"),
                                   campaign_agents.c.agent_id == bindparam("aid")))
_IS_SUPERVISOR = select(exists().where(campaign_supervisors.c.campaign_id == bindparam("cid"),
                                       campaign_supervisors.c.user_id == bindparam("uid")))


# The same, with has_campaign_access's answer in the same round trip (an agent's membership,
# or anyone else's place among the supervisors).
_CAMPAIGN_INFO_FOR_AGENT = Prepared(_CAMPAIGN_INFO.add_columns(exists().where(
    campaign_agents.c.campaign_id == Campaign.id, campaign_agents.c.agent_id == bindparam("aid"))))
_CAMPAIGN_INFO_FOR_USER = Prepared(_CAMPAIGN_INFO.add_columns(exists().where(
    campaign_supervisors.c.campaign_id == Campaign.id,
    campaign_supervisors.c.user_id == bindparam("uid"))))


def _campaign_info(row, active_only):
    campaign = CampaignInfo(row[0], row[1], row[2], row[3], DatabaseInfo(*row[4:9]))
    if active_only and not campaign.is_active:
        return None
    return campaign


def campaign_info_by_id(campaign_id, active_only=True):
    """Like campaign_by_id, as a CampaignInfo (read-only: not for relationships or edits)."""
    if campaign_id is None:
        return None
    row = db.session.connection().execute(_CAMPAIGN_INFO, {"cid": campaign_id}).first()
    return _campaign_info(row, active_only) if row is not None else None


def visible_option_campaign(option_id):
    """The CampaignInfo (any state) of a disposition option that exists and is not hidden,
    in one query; None otherwise."""
    if option_id is None:
        return None
    row = run(_OPTION_CAMPAIGN_INFO, {"oid": option_id}).first()
    return _campaign_info(row, False) if row is not None and not row[9] else None


def active_campaign_and_access(campaign_id, user):
    """(campaign_info_by_id(campaign_id), has_campaign_access(user, it)) in one query;
    (None, False) when the campaign does not exist or is not active."""
    agent_id = agent_id_of(user) if user.role == "Agente" else None
    if agent_id is not None:
        row = run(_CAMPAIGN_INFO_FOR_AGENT, {"cid": campaign_id, "aid": agent_id}).first()
    else:
        row = run(_CAMPAIGN_INFO_FOR_USER, {"cid": campaign_id, "uid": user.id}).first()
    campaign = _campaign_info(row, True) if row is not None else None
    return (campaign, bool(row[9])) if campaign is not None else (None, False)


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
    return _is_member_ids(agent.id, campaign.id)


def _is_member_ids(agent_id, campaign_id):
    return bool(db.session.connection().execute(
        _IS_MEMBER, {"cid": campaign_id, "aid": agent_id}).scalar())


def contact_of_call(call, campaign):
    """The call's contact, else the campaign database's contact whose main phone is the call's
    number (an inbound caller is known by the number it calls from), else None."""
    if call.contact_id is not None:
        return db.session.get(Contact, call.contact_id)
    if campaign is None or not call.number:
        return None
    return db.session.scalar(select(Contact).where(Contact.database_id == campaign.database_id,
                                                   Contact.main_phone == call.number)
                             .order_by(Contact.id).limit(1))


def agent_id_of(user):
    """The user's agent id or None; auth.TokenUser carries it without loading the profile."""
    agent_id = getattr(user, "agent_id", None)
    if agent_id is not None:
        return agent_id
    agent = user.agent
    return agent.id if agent is not None else None


def has_campaign_access(user: User, campaign: Campaign):
    """An agent must be a member; anyone else must be among the campaign's supervisors."""
    agent_id = agent_id_of(user) if user.role == "Agente" else None
    if agent_id is not None:
        return _is_member_ids(agent_id, campaign.id)
    return bool(db.session.connection().execute(
        _IS_SUPERVISOR, {"cid": campaign.id, "uid": user.id}).scalar())
