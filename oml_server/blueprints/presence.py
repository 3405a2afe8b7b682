"""The agent console's presence heartbeat (contract-calls §5)."""
import re

from flask import current_app, g
from flask_smorest import Blueprint

from schemas.supervision import HeartbeatRequestSchema, HeartbeatSchema, RefusedSchema

from .. import messages as M
from ..apidoc import request_body
from ..auth import authenticate
from ..body import read_body
from ..errors import business_error
from ..services import agent_presence, agent_status
from ..services.lookup import agent_id_of

blp = Blueprint("presence", __name__, url_prefix="/api/v1", description="Agent presence")

CONSOLE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _invalid(field):
    return business_error(400, message=M.INVALID_FIELD_VALUE % {"field": field})


def _check(data):
    for field in ("browser_id", "tab_id"):
        value = data.get(field)
        if not isinstance(value, str) or not CONSOLE_ID.match(value):
            raise _invalid(field)
    ui_state = data.get("ui_state")
    if ui_state is not None and (not isinstance(ui_state, str) or len(ui_state) > 64):
        raise _invalid("ui_state")
    sent = data.get("sent_at_ms")
    if sent not in (None, "") and not (isinstance(sent, int) and not isinstance(sent, bool)
                                       or isinstance(sent, str) and sent.isdigit()):
        raise _invalid("sent_at_ms")


@blp.route("/agent/presence/heartbeat/", methods=["POST"])
@blp.doc(**request_body(HeartbeatRequestSchema))
@blp.response(200, HeartbeatSchema)
@blp.alt_response(400, schema=RefusedSchema, description="Invalid browser_id, tab_id, "
                  "ui_state or sent_at_ms")
@blp.alt_response(403, schema=RefusedSchema, description="User without agent profile")
def heartbeat():
    """A console of the agent is alive. Consoles that all stop beating for
    PRESENCE_HEARTBEAT_TIMEOUT_SEC make the agent UNAVAILABLE: not offered calls (a call in
    progress is not touched). Agents that never beat are not affected."""
    g.user = authenticate()
    agent_id = agent_id_of(g.user) if g.user.role == "Agente" else None
    if agent_id is None:
        raise business_error(403, message=M.NOT_AN_AGENT)
    _check(read_body(lambda message: business_error(400, message=message)))
    now = agent_presence.heartbeat(agent_id, agent_status.heartbeat_deadline())
    return {"status": "OK", "server_ts_ms": int(now.timestamp() * 1000),
            "next_heartbeat_sec": current_app.config["PRESENCE_HEARTBEAT_NEXT_SEC"]}
