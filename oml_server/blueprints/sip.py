"""The agent's ephemeral SIP credentials (contract §2.9)."""
from flask import current_app, g, request
from flask_smorest import Blueprint

from schemas.sip import SipCredentialsSchema

from .. import messages as M
from ..auth import login_required
from ..config import flag
from ..errors import business_error
from ..services import sip_credentials
from ..services.users import supervisor_phone

# Agents, and supervisors for their own phone [extension].
PHONE_OWNERS = ("Administrador", "Gerente", "Supervisor", "Agente")

blp = Blueprint("sip", __name__, url_prefix="/api/v1", description="SIP credentials")


@blp.route("/sip/credentials/agent/", methods=["GET"])
@login_required(*PHONE_OWNERS, orm_user=True)
@blp.doc(parameters=[{"in": "query", "name": "webrtc", "required": False,
                      "schema": {"type": "string", "enum": ["1", "0"]},
                      "description": "[extension] 1: the phone is a browser (WebRTC)"}])
@blp.response(200, SipCredentialsSchema)
def agent_credentials():
    """Issue ephemeral SIP credentials for the calling agent's phone.

    [extension] `?webrtc=1`: the phone is a browser (the agent console): its Asterisk endpoint
    gets WebRTC settings (DTLS, ICE, AVPF) until credentials are asked for without it.

    [extension] A supervisor (Administrador, Gerente, Supervisor) with a SIP extension
    (provisioning `supervisor.sip_extension`) gets its phone's credentials here too: the phone
    that rings for spy, whisper, barge and take-call.

    Failure is also HTTP 200: `{"status": "ERROR", "message": "Error al generar sip password"}`.
    """
    try:
        phone = g.user.agent if g.user.role == "Agente" else supervisor_phone(g.user.id)
        if phone is None:
            raise sip_credentials.CredentialsNotIssued()
        user, password = sip_credentials.issue(phone, current_app.config["SIP_SECRET_KEY"],
                                               current_app.config["EPHEMERAL_USER_TTL"],
                                               webrtc=flag(request.args, "webrtc"))
    except sip_credentials.CredentialsNotIssued:
        raise business_error(200, message=M.SIP_PASSWORD_FAILED)
    return {"status": "OK", "sip_user": user, "sip_password": password}
