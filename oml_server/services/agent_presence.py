"""An agent's session: logged in, paused, and the activity log (contract §2.8)."""
from ..extensions import db
from ..models import AgentActivity, AgentSession, User


def session_for(agent_id):
    """The agent's presence row, created on first use."""
    row = db.session.get(AgentSession, agent_id)
    if row is None:
        row = AgentSession(agent_id=agent_id)
        db.session.add(row)
    return row


def record(agent_id, event, pause_id=None):
    db.session.add(AgentActivity(agent_id=agent_id, event=event, pause_id=pause_id))


def logout_user_id(user_id):
    """End the Asterisk session of the user's agent, if it is one and is logged in."""
    user = db.session.get(User, user_id)
    if user is None or user.agent is None:
        return
    row = session_for(user.agent.id)
    if row.logged_in:
        row.logged_in = False
        row.paused = False
        row.pause_id = None
        row.mirrored_state = None
        record(user.agent.id, "logout")
        db.session.commit()
