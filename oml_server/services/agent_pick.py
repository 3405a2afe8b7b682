"""Which agent of a campaign gets a call: the campaign's `strategy`. Used by inbound calls and
transfers to a campaign (engine) and by blind-campaign-agent (REST).

    leastrecent  the agent idle longest (idle_since oldest; never idle first) — the default
    fewestcalls  the agent who took the fewest calls of the campaign today (UTC), then leastrecent
    random       a random order
    rrmemory     round robin by agent id, starting after the agent that got the campaign's
                 last call (`campaigns.last_agent_id`, written by `remember`)

`available_agents` returns every candidate, best first: the caller claims them in that order,
so an agent taken meanwhile by another call is simply skipped.
"""
import random
from datetime import datetime, time, timezone

from sqlalchemy import func, or_, select, update

from oml_server.extensions import db
from oml_server.models import AgentSession, Call, Campaign, campaign_agents


def available_agents(campaign_id):
    """Member agents online, logged in, not paused, free and whose console (if it ever sent a
    heartbeat) still beats, in the order of the campaign's strategy."""
    from oml_server.services.agent_status import heartbeat_deadline
    query = (select(AgentSession.agent_id, AgentSession.idle_since)
             .join(campaign_agents, campaign_agents.c.agent_id == AgentSession.agent_id)
             .where(campaign_agents.c.campaign_id == campaign_id,
                    AgentSession.online.is_(True), AgentSession.logged_in.is_(True),
                    AgentSession.paused.is_(False), AgentSession.on_call.is_(False),
                    or_(AgentSession.heartbeat_at.is_(None),
                        AgentSession.heartbeat_at >= heartbeat_deadline()))
             .order_by(AgentSession.idle_since.is_not(None), AgentSession.idle_since))
    return order(campaign_id, db.session.execute(query).all())


def order(campaign_id, candidates):
    """`candidates`: [(agent id, idle_since)] already in leastrecent order. Returns agent ids."""
    strategy = db.session.scalar(select(Campaign.strategy).where(Campaign.id == campaign_id))
    ids = [agent_id for agent_id, _ in candidates]
    if strategy == "random":
        random.shuffle(ids)
    elif strategy == "fewestcalls" and ids:
        taken = _calls_today(campaign_id, ids)
        ids.sort(key=lambda agent_id: taken.get(agent_id, 0))  # stable: leastrecent breaks ties
    elif strategy == "rrmemory" and ids:
        last = db.session.scalar(select(Campaign.last_agent_id).where(Campaign.id == campaign_id))
        ids.sort()
        if last is not None:
            after = [a for a in ids if a > last]
            ids = after + [a for a in ids if a <= last]
    return ids


def _calls_today(campaign_id, agent_ids):
    start = datetime.combine(datetime.now(timezone.utc).date(), time.min, tzinfo=timezone.utc)
    query = (select(Call.agent_id, func.count()).where(
        Call.campaign_id == campaign_id, Call.agent_id.in_(agent_ids), Call.created_at >= start,
        Call.bridged_at.is_not(None)).group_by(Call.agent_id))
    return dict(db.session.execute(query).all())


def remember(campaign_id, agent_id):
    """rrmemory's memory: the agent that was just given one of the campaign's calls."""
    db.session.execute(update(Campaign).where(Campaign.id == campaign_id,
                                              Campaign.strategy == "rrmemory")
                       .values(last_agent_id=agent_id))
    db.session.commit()
