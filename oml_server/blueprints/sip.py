"""The agent's ephemeral SIP credentials (contract §2.9)."""
from flask import current_app, g, request
from flask_smorest import Blueprint

from schemas.sip import SipCredentialsSchema

from .. import messages as M
from ..auth import AGENT, login_required
from ..config import flag
from ..errors import business_error
from ..services import sip_credentials

blp = Blueprint("sip", __name__, url_prefix="/api/v1", description="SIP credentials")


@blp.route("/sip/credentials/agent/", methods=["GET"])
@login_required(*AGENT, orm_user=True)
@blp.doc(parameters=[{"in": "query", "name": "webrtc", "required": False,
                      "schema": {"type": "string", "enum": ["1", "0"]},
                      "description": "[extension] 1: the phone is a browser (WebRTC)"}])
@blp.response(200, SipCredentialsSchema)
def agent_credentials():
    """Issue ephemeral SIP credentials for the calling agent's phone.

    [extension] `?webrtc=1`: the phone is a browser (the agent console): its Asterisk endpoint
    gets WebRTC settings (DTLS, ICE, AVPF) until credentials are asked for without it.

    Failure is also HTTP 200: `{"status": "ERROR", "message": "Error al generar sip password"}`.
    """
    try:
        if g.user.agent is None:
            raise sip_credentials.CredentialsNotIssued()
        user, password = sip_credentials.issue(g.user.agent, current_app.config["SIP_SECRET_KEY"],
                                               current_app.config["EPHEMERAL_USER_TTL"],
                                               webrtc=flag(request.args, "webrtc"))
    except sip_credentials.CredentialsNotIssued:
        raise business_error(200, message=M.SIP_PASSWORD_FAILED)
    return {"status": "OK", "sip_user": user, "sip_password": password}
