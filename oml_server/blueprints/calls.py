"""Click-to-call (contract §2.4), hangupCall (§2.10) and the call record [extension]."""
from flask import g
from flask_smorest import Blueprint

from schemas.calls import CallSchema, MakeCallRequestSchema, MakeCallResponseSchema, StatusSchema
from schemas.common import DetailSchema

from ..apidoc import request_body
from ..auth import AGENT, ALL_ROLES, login_required
from ..body import read_body
from ..errors import business_error, unreadable_as_data_errors
from ..services import calls

blp = Blueprint("calls", __name__, url_prefix="/api/v1", description="Calls")


@blp.route("/makeCall/", methods=["POST"])
@login_required(*AGENT, single_write=True)   # its writes are one statement on PostgreSQL
@blp.doc(**request_body(MakeCallRequestSchema))
@blp.response(200, MakeCallResponseSchema)
def make_call():
    """Ring the agent's phone, then dial `phone` and bridge them.

    Returns as soon as the call is under way. Every failure is also HTTP 200:
    `{"status": "ERROR", "message": "Hubo errores en los datos recibidos", "errors": {field: [msg]}}`
    or `{"status": "ERROR", "message": "Error al ejecutar la llamada", "errors": [reason]}`.
    """
    data = read_body(unreadable_as_data_errors(status=200))
    request = calls.check_make_call(g.user, data)
    return {"status": "OK", "callId": calls.place(request)}


@blp.route("/hangupCall/", methods=["POST"])
@login_required(*AGENT, single_write=True)
@blp.response(200, StatusSchema)
def hangup_call():
    """Hang up the agent's current call (`{"status": "ERROR"}` when there is none)."""
    if g.user.agent_id is None or not calls.hangup(g.user.agent_id):
        raise business_error(200)
    return {"status": "OK"}


@blp.route("/calls/<string:call_id>/", methods=["GET"])
@login_required(*ALL_ROLES)
@blp.response(200, CallSchema)
@blp.alt_response(404, schema=DetailSchema, description="Unknown, or not the caller's to see")
def call_record(call_id):
    """[extension] One call: visible to its agent and to the supervisors of its campaign."""
    return calls.visible_call(g.user, call_id)


@blp.route("/calls/<string:call_id>/crm_interaction/", methods=["GET"])
@login_required(*ALL_ROLES, orm_user=True)
@blp.response(200)
@blp.alt_response(404, schema=DetailSchema, description="Unknown call, not the caller's, or no site")
def crm_interaction(call_id):
    """[extension] The campaign site's configuration for the agent's browser (Agente /
    Automático): url with placeholders replaced, method, format, parameters."""
    return calls.crm_interaction(g.user, call_id)
