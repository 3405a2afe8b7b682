"""make_call_outside_campaign (contract-calls §5): an agent calls another agent or an outside
number with no campaign. It is a click-to-call without a campaign (the same row, engine flow
and one-live-call-per-agent rule): the agent's phone rings first, then the destination — an
agent's extension directly, a number through the trunk (DIAL_TEMPLATE).
[better] OMniLeads answers OK even when nothing was dialled; here a call that cannot be placed
answers ERROR with the reason."""
from sqlalchemy import select

from .. import messages as M
from ..errors import ContractError
from ..extensions import db
from ..models import AgentProfile, User
from . import calls
from .contacts import PHONE_RE
from .lookup import parse_id

TYPES = ("AGENT", "EXTERNAL")


class Refused(Exception):
    def __init__(self, message):
        super().__init__(str(message))
        self.message = message


def destination_number(agent_id, kind, raw):
    """The number to dial for (destination_type, destination); raises Refused."""
    if kind not in TYPES:
        raise Refused(M.INVALID_DESTINATION_TYPE)
    if kind == "AGENT":
        target_id = parse_id(raw)
        extension = db.session.scalar(
            select(AgentProfile.sip_extension).join(User, User.id == AgentProfile.user_id)
            .where(AgentProfile.id == target_id, User.is_active.is_(True))) \
            if target_id is not None else None
        if extension is None or target_id == agent_id:
            raise Refused(M.INVALID_DESTINATION)
        return extension
    number = str(raw).strip() if isinstance(raw, (str, int)) and not isinstance(raw, bool) else ""
    if not PHONE_RE.match(number):
        raise Refused(M.INVALID_DESTINATION)
    return number


def place(agent, number):
    """Place the call (makeCall's path); the engine's refusal raises Refused with its reason."""
    try:
        calls.place(calls.ClickToCall(None, agent, None, number))
    except ContractError as exc:  # makeCall's "Error when executing the call" [reason]
        reasons = exc.body.get("errors") or [exc.body.get("message")]
        raise Refused(reasons[0])
