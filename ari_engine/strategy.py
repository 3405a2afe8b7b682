"""Who of a campaign's available agents gets the next call: the campaign's `strategy`.

    leastrecent  the agent idle longest (idle_since oldest; never idle first) — the default
    fewestcalls  the agent who took the fewest calls of the campaign today (UTC), then leastrecent
    random       a random order
    rrmemory     round robin by agent id, starting after the agent that got the campaign's
                 last call (`campaigns.last_agent_id`, written by `remember`)

`order` returns every candidate, best first: the caller claims them in that order, so an agent
taken meanwhile by another call is simply skipped.
"""
import random
from datetime import datetime, time, timezone

from sqlalchemy import func, select, update

from oml_server.extensions import db
from oml_server.models import Call, Campaign


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
