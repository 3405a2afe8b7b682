"""The agent's session in Asterisk (contract §2.8) and the console's other calls (§2.10).

Always HTTP 200 with exactly `{"status": "OK"}` or `{"status": "ERROR"}`; what each one answers
in which state is decided (and documented) in `services.agent_presence`.
"""
from flask import g
from flask_smorest import Blueprint

from schemas.agent_session import NoFieldsSchema, PauseRequestSchema, RingingRequestSchema, StatusSchema

from ..apidoc import request_body
from ..auth import AGENT, login_required
from ..body import read_body
from ..errors import business_error
from ..services import agent_presence
from ..services.lookup import agent_id_of

blp = Blueprint("agent_session", __name__, url_prefix="/api/v1",
                description="Agent session in Asterisk: login, logout, pauses, ringing")

OK = {"status": "OK"}


def _answer(ok):
    if not ok:
        raise business_error(200)  # exactly {"status": "ERROR"}, still HTTP 200
    return OK


def _agent_id():
    agent_id = agent_id_of(g.user)
    if agent_id is None:  # an Agente user without an agent profile: nothing to log in
        raise business_error(200)
    return agent_id


def _field(name):
    return read_body(lambda message: business_error(200)).get(name)


@blp.route("/asterisk_login/", methods=["POST"])
@login_required(*AGENT)
@blp.doc(**request_body(NoFieldsSchema, required=False))
@blp.response(200, StatusSchema)
def asterisk_login():
    """Make the agent available in all its campaigns."""
    return _answer(agent_presence.login(_agent_id()))


@blp.route("/asterisk_logout/", methods=["POST"])
@login_required(*AGENT)
@blp.doc(**request_body(NoFieldsSchema, required=False))
@blp.response(200, StatusSchema)
def asterisk_logout():
    """End the agent's session (and any pause)."""
    return _answer(agent_presence.logout(_agent_id()))


@blp.route("/asterisk_pause/", methods=["POST"])
@login_required(*AGENT)
@blp.doc(**request_body(PauseRequestSchema))
@blp.response(200, StatusSchema)
def asterisk_pause():
    """Pause the logged-in agent (`pause_id`)."""
    return _answer(agent_presence.pause(_agent_id(), _field("pause_id")))


@blp.route("/asterisk_unpause/", methods=["POST"])
@login_required(*AGENT)
@blp.doc(**request_body(PauseRequestSchema))
@blp.response(200, StatusSchema)
def asterisk_unpause():
    """End the agent's pause (`pause_id` must be a valid pause)."""
    return _answer(agent_presence.unpause(_agent_id(), _field("pause_id")))


@blp.route("/asterisk_ready/", methods=["POST"])
@login_required(*AGENT)
@blp.doc(**request_body(NoFieldsSchema, required=False))
@blp.response(200, StatusSchema)
def asterisk_ready():
    """The logged-in agent is ready (not paused)."""
    return _answer(agent_presence.ready(_agent_id()))


@blp.route("/asterisk_ringing/", methods=["POST"])
@login_required(*AGENT)
@blp.doc(**request_body(RingingRequestSchema))
@blp.response(200, StatusSchema)
def asterisk_ringing():
    """The agent's phone is ringing (`ringing=true`) or stopped ringing (`ringing=false`)."""
    return _answer(agent_presence.ringing(_agent_id(), _field("ringing")))


@blp.route("/asterisk_reject_call/", methods=["POST"])
@login_required(*AGENT)
@blp.doc(**request_body(NoFieldsSchema, required=False))
@blp.response(200, StatusSchema)
def asterisk_reject_call():
    """The agent rejected the ringing call."""
    return _answer(agent_presence.reject_call(_agent_id()))


@blp.route("/asterisk_disabled/", methods=["POST"])
@login_required(*AGENT)
@blp.doc(**request_body(NoFieldsSchema, required=False))
@blp.response(200, StatusSchema)
def asterisk_disabled():
    """The agent's phone became unusable (always OK)."""
    agent_id = agent_id_of(g.user)
    if agent_id is not None:
        agent_presence.disabled(agent_id)
    return OK
