"""make_call_outside_campaign (contract-calls §5): the agent calls an agent or a number."""
from flask import g
from flask_smorest import Blueprint

from schemas.common import DetailSchema
from schemas.supervision import ActionResultSchema, OutsideCallRequestSchema

from .. import messages as M
from ..apidoc import request_body
from ..auth import AGENT, login_required
from ..body import read_body
from ..errors import business_error
from ..services import outside_calls

blp = Blueprint("outside_calls", __name__, url_prefix="/api/v1",
                description="Calls outside a campaign")


@blp.route("/make_call_outside_campaign/", methods=["POST"])
@login_required(*AGENT, orm_user=True)
@blp.doc(**request_body(OutsideCallRequestSchema))
@blp.response(200, ActionResultSchema)
@blp.alt_response(400, schema=ActionResultSchema, description="Invalid destination_type or "
                  "destination")
@blp.alt_response(403, schema=DetailSchema, description="Authentication or role failure")
def make_call_outside_campaign():
    """Ring the agent's phone, then the destination (an agent id, or a number through the
    trunk). [better] a call that cannot be placed is ERROR with the reason (200)."""
    data = read_body(lambda message: business_error(400, message=message))
    if g.user.agent is None:
        raise business_error(400, message=M.INVALID_DESTINATION)
    try:
        number = outside_calls.destination_number(g.user.agent.id, data.get("destination_type"),
                                                  data.get("destination"))
    except outside_calls.Refused as exc:
        raise business_error(400, message=exc.message)
    try:
        outside_calls.place(g.user.agent, number)
    except outside_calls.Refused as exc:
        return {"status": "ERROR", "message": exc.message}
    return {"status": "OK", "message": M.OUTSIDE_CALL_STARTED}
