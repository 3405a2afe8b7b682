"""In-call commands (contract-calls §2, §3): blind transfers, hold, hangup-leg. Thin: the
checks and the hand-off to the engine are in services/call_control.py."""
from flask import g
from flask_smorest import Blueprint

from schemas.call_control import (BlindAgentSchema, BlindCampaignAgentSchema,
                                  BlindCampaignSchema, BlindEndpointSchema, CallIdSchema,
                                  CommandErrorSchema, ConsultStartSchema, HangupLegSchema,
                                  HoldSchema, QueuedSchema)
from schemas.common import DetailSchema

from ..apidoc import request_body
from ..auth import login_required
from ..body import read_body
from ..services import call_control

blp = Blueprint("call_control", __name__, url_prefix="/api/v1",
                description="In-call commands: transfers, hold, hangup-leg")

# The agent on the call, or a supervisor of its campaign (services.call_control.check_may_act).
ACTORS = ("Agente", "Supervisor", "Administrador", "Gerente")


def _body():
    return read_body(lambda message: call_control.error(400, message))


def _command(path, schema, service, summary):
    @blp.route(path, methods=["POST"], endpoint=service.__name__)
    @login_required(*ACTORS, orm_user=True)
    @blp.doc(summary=summary, **request_body(schema))
    @blp.response(202, QueuedSchema)
    @blp.alt_response(400, schema=CommandErrorSchema, description="missing or bad fields")
    @blp.alt_response(403, schema=DetailSchema, description="no business with the call")
    @blp.alt_response(404, schema=CommandErrorSchema, description="no live call, or target")
    def view():
        return service(g.user, _body())
    return view


_command("/transfer/blind-agent/", BlindAgentSchema, call_control.blind_agent,
         "Transfer the call to an agent (the caller hears music while it rings)")
_command("/transfer/blind-endpoint/", BlindEndpointSchema, call_control.blind_endpoint,
         "Transfer the call to an agent's extension or an outside number")
_command("/transfer/blind-campaign/", BlindCampaignSchema, call_control.blind_campaign,
         "Send the caller back to wait for a campaign's next available agent")
_command("/transfer/blind-campaign-agent/", BlindCampaignAgentSchema,
         call_control.blind_campaign_agent,
         "Transfer the call to the available agent a campaign's strategy picks")
_command("/call/hold/", HoldSchema, call_control.hold,
         "Put the caller on hold (music) or take it back; toggles without `action`")
_command("/call/hangup-leg/", HangupLegSchema, call_control.hangup_leg,
         "Hang up one leg of a call, or the whole call")
_command("/agent/transfer/consult/start/", ConsultStartSchema, call_control.consult_start,
         "Consult a colleague or a number while the caller waits with music")
_command("/agent/transfer/consult/complete/", CallIdSchema, call_control.consult_complete,
         "Hand the caller to the consulted party (it must have answered)")
_command("/agent/transfer/consult/cancel/", CallIdSchema, call_control.consult_cancel,
         "Hang up the consulted party and take the caller back")
_command("/transfer/3way/", BlindEndpointSchema, call_control.three_way,
         "Add an agent's extension or an outside number to the call (three-way)")
