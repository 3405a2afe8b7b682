"""Supervision (contract-calls §4): agents' live states, campaign counts, acting on an agent;
and call/spy (§3)."""
from datetime import date

from flask import g, jsonify, request
from flask_smorest import Blueprint

from schemas.common import DetailSchema
from schemas.supervision import (ActionRequestSchema, ActionResultSchema, AgentStatusItemSchema,
                                 CallCountsSchema, CampaignCountsSchema, CommandErrorSchema,
                                 CommandQueuedSchema, RefusedSchema, SpyRequestSchema,
                                 SupervisedAgentSchema, ThreeWayConfRequestSchema)

from .. import messages as M
from ..apidoc import request_body
from ..auth import authenticate, login_required
from ..body import read_body
from ..errors import ContractError, business_error, forbidden, not_found
from ..services import supervision
from ..services.lookup import parse_id

blp = Blueprint("supervision", __name__, url_prefix="/api/v1", description="Supervision")

WATCHERS = ("Administrador", "Gerente", "Supervisor", "Referente")
SUPERVISORS = ("Administrador", "Gerente", "Supervisor")


@blp.route("/supervision/agents/", methods=["GET"])
@login_required(*WATCHERS)
@blp.response(200, SupervisedAgentSchema(many=True))
@blp.alt_response(403, schema=DetailSchema, description="Authentication or role failure")
def agents():
    """The caller's agents (through its campaigns; all for Administrador and Gerente) whose
    status is not OFFLINE, with the seconds in that status."""
    # Serialised directly: the schema documents the shape, but dumping a thousand entries
    # through marshmallow cost more than the query (bench/supervision_bench.py).
    return jsonify(supervision.agents_for(g.user))


def _campaign(raw):
    campaign_id = parse_id(raw)
    if not supervision.campaign_exists(campaign_id):
        raise not_found()
    if not supervision.may_see_campaign(g.user, campaign_id):
        raise forbidden(M.NO_PERMISSION)
    return campaign_id


@blp.route("/agent_status/campaign/<campaign>", methods=["GET"])
@login_required(*SUPERVISORS)
@blp.response(200, CampaignCountsSchema)
@blp.alt_response(404, schema=DetailSchema, description="Unknown campaign")
@blp.alt_response(403, schema=DetailSchema, description="Authentication, role, or not a "
                  "supervisor of the campaign")
def agent_status(campaign):
    """How many of the campaign's agents are READY, ONCALL and in a pause."""
    return supervision.campaign_counts(_campaign(campaign))


@blp.route("/agent_status_list/campaign/<campaign>", methods=["GET"])
@login_required(*SUPERVISORS)
@blp.response(200, AgentStatusItemSchema(many=True))
@blp.alt_response(404, schema=DetailSchema, description="Unknown campaign")
@blp.alt_response(403, schema=DetailSchema, description="Authentication or role failure")
def agent_status_list(campaign):
    """Every agent of the campaign with its status (PAUSE for any pause, OFFLINE when logged out)."""
    return supervision.campaign_list(_campaign(campaign))


@blp.route("/call_status/campaign/<campaign>", methods=["GET"])
@login_required(*SUPERVISORS)
@blp.doc(parameters=[{"in": "query", "name": name, "required": False,
                      "schema": {"type": "string", "format": "date"},
                      "description": "YYYY-MM-DD (UTC day, inclusive); default today"}
                     for name in ("date_start", "date_end")])
@blp.response(200, CallCountsSchema)
@blp.alt_response(400, schema=DetailSchema, description="A date that is not YYYY-MM-DD")
@blp.alt_response(404, schema=DetailSchema, description="Unknown campaign")
@blp.alt_response(403, schema=DetailSchema, description="Authentication or role failure")
def call_status(campaign):
    """The campaign's calls of those days: attended, abandoned, expired. [better] a bad date is 400."""
    campaign_id = _campaign(campaign)
    today = date.today()
    first = supervision.parse_day(request.args.get("date_start"), today)
    last = supervision.parse_day(request.args.get("date_end"), today)
    if first is None or last is None:
        raise ContractError(400, {"detail": M.INVALID_DATE})
    return supervision.call_counts(campaign_id, first, last)


@blp.route("/supervision/action_on_agent/<agent>/", methods=["POST"])
@blp.doc(**request_body(ActionRequestSchema))
@blp.response(200, ActionResultSchema)
@blp.alt_response(404, schema=ActionResultSchema, description="Agent not found")
@blp.alt_response(403, schema=RefusedSchema, description="Wrong user profile (or not a "
                  "supervisor of the agent's campaigns)")
def action_on_agent(agent):
    """Logout, pause (Supervision), unpause; spy, whisper, barge, take-call on its live call."""
    g.user = authenticate()  # OMniLeads' own 403 body for a wrong role, not DRF's
    if g.user.role not in SUPERVISORS:
        raise business_error(403, message=M.WRONG_PROFILE)
    agent_id = parse_id(agent)
    if not supervision.agent_exists(agent_id):
        raise business_error(404, message=M.AGENT_NOT_FOUND)
    if not supervision.may_act_on_agent(g.user, agent_id):
        raise business_error(403, message=M.WRONG_PROFILE)
    action = read_body(lambda message: business_error(200, message=message)).get("accion")
    if action not in supervision.ACTIONS:
        return {"status": "ERROR", "message": M.NO_SUCH_ACTION}
    try:
        supervision.act(g.user, agent_id, action)
    except supervision.ActionRefused as exc:
        return {"status": "ERROR", "message": exc.message}
    return {"status": "OK"}


# -- call/spy (contract-calls §3) --------------------------------------------------------------

WHISPER_MODES = {"none": "spy", "out": "whisper", "both": "barge", "in": "whisper_in"}


def _command_error(status, message, **extra):
    return ContractError(status, {"error": message, **extra})


def _listening_responses(view):
    """call/spy's and call/three-way-conf's documented answers (§0's style)."""
    for status, description in ((403, "Authentication, role, or not a supervisor of the "
                                      "call's campaign"), (404, "Unknown agent"),
                                (400, "A missing or bad field, or the agent is not on a call")):
        view = blp.alt_response(status, schema=CommandErrorSchema, description=description)(view)
    return blp.response(202, CommandQueuedSchema)(view)


@blp.route("/call/spy/", methods=["POST"])
@login_required(*SUPERVISORS)
@blp.doc(**request_body(SpyRequestSchema))
@_listening_responses
def spy():
    """The supervisor's phone rings; on answer it hears the agent's call (`whisper=none`), is
    also heard by the agent (`out`), by both sides (`both`, barge) or by the caller only (`in`)."""
    data = read_body(lambda message: _command_error(400, message))
    whisper = data.get("whisper") or "none"
    if data.get("agent_id") not in (None, "") and whisper not in WHISPER_MODES:
        raise _command_error(400, M.WHISPER_CHOICES, received=str(whisper)[:64])
    call, phone, subscribers = _listen_in(data, WHISPER_MODES.get(whisper))
    return {"status": "queued", "message": M.COMMAND_RECEIVED, "subscribers": subscribers,
            "channel": f"acd:commands:{call.node}", "node_id": call.node, "callid": call.id,
            "supervisor_id": phone.user_id, "supervisor_sip": phone.sip_extension,
            "whisper": whisper}, 202


@blp.route("/call/three-way-conf/", methods=["POST"])
@login_required(*SUPERVISORS)
@blp.doc(**request_body(ThreeWayConfRequestSchema))
@_listening_responses
def three_way_conf():
    """The supervisor's phone rings; on answer it joins the agent's call as a third party:
    everybody hears everybody (the same as `call/spy` with `whisper=both`)."""
    call, phone, subscribers = _listen_in(
        read_body(lambda message: _command_error(400, message)), "barge")
    return {"status": "queued", "message": M.COMMAND_RECEIVED, "subscribers": subscribers,
            "channel": f"acd:commands:{call.node}", "node_id": call.node, "call_id": call.id,
            "sip_number": phone.sip_extension}, 202


def _listen_in(data, mode):
    """call/spy and call/three-way-conf: OMniLeads' checks in its order, then the supervisor's
    phone is rung into the agent's call in `mode`. (call, supervisor phone, subscribers)."""
    if data.get("agent_id") in (None, ""):
        raise _command_error(400, M.MISSING_PARAMETER % {"name": "agent_id"})
    phone = None
    if data.get("supervisor_id") not in (None, ""):
        supervisor_id = parse_id(data["supervisor_id"])
        if supervisor_id is None:
            raise _command_error(400, M.SUPERVISOR_ID_INVALID)
        phone = supervision.supervisor_phone(supervisor_id)
        if phone is None:
            raise _command_error(400, M.SUPERVISOR_NOT_FOUND)
    agent_id = parse_id(data["agent_id"])
    if not supervision.agent_exists(agent_id):
        raise _command_error(404, M.AGENT_NOT_FOUND)
    call = supervision.live_call_of(agent_id)
    if call is None:
        raise _command_error(400, M.AGENT_NOT_ON_CALL)
    if not supervision.may_see_call_campaign(g.user, call.campaign_id):
        raise forbidden(M.NO_PERMISSION)
    try:
        call = supervision.listen(g.user, agent_id, mode, phone)
        subscribers = 1
    except supervision.ActionRefused as exc:
        if not supervision.engine_away(exc.message):
            raise _command_error(400, exc.message)
        subscribers = 0  # no engine took it: as OMniLeads with no subscriber, nothing happens
    return call, phone or supervision.supervisor_phone(g.user.id), subscribers
