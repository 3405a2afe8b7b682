"""Which agent of a campaign gets a call: the campaign's strategy. Today one strategy,
"leastrecent" (OMniLeads' default): the available member idle longest first. Used by inbound
calls and by transfers to a campaign (engine) and by blind-campaign-agent (REST)."""
from sqlalchemy import select

from oml_server.extensions import db
from oml_server.models import AgentSession, campaign_agents


def available_agents(campaign_id):
    """Member agents online, logged in, not paused and free: the idlest first."""
    query = (select(AgentSession.agent_id)
             .join(campaign_agents, campaign_agents.c.agent_id == AgentSession.agent_id)
             .where(campaign_agents.c.campaign_id == campaign_id,
                    AgentSession.online.is_(True), AgentSession.logged_in.is_(True),
                    AgentSession.paused.is_(False), AgentSession.on_call.is_(False))
             .order_by(AgentSession.idle_since.is_not(None), AgentSession.idle_since))
    return [a for (a,) in db.session.execute(query).all()]
