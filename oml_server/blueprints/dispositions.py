"""Dispositions (contract §2.6) and new_contact/disposition (§2.7): Agente only."""
from flask import g
from flask_smorest import Blueprint

from schemas.common import DetailSchema
from schemas.dispositions import (DispositionErrorSchema, DispositionRequestSchema,
                                  DispositionSchema, NewContactDispositionErrorSchema,
                                  NewContactDispositionRequestSchema, NewContactDispositionSchema)

from .. import messages as M
from ..apidoc import as_documented, request_body
from ..auth import AGENT, login_required
from ..body import read_body
from ..errors import business_error, forbidden
from ..services import dispositions
from ..services.lookup import agent_id_of

blp = Blueprint("dispositions", __name__, url_prefix="/api/v1",
                description="Dispositions: an agent's rating of a contact")


def _agent():
    agent_id = agent_id_of(g.user)
    if agent_id is None:  # an Agente without its profile cannot own dispositions
        raise forbidden(M.NO_PERMISSION)
    return dispositions.AgentRef(agent_id)


def _body():
    """The body, or this endpoint's own 400 when it cannot be read."""
    return read_body(lambda message: business_error(msg=message))


@blp.route("/disposition/", methods=["GET"])
@login_required(*AGENT, single_write=True)
@blp.response(200, DispositionSchema(many=True))
@blp.alt_response(403, schema=DetailSchema, description="Authentication or role failure")
def list_dispositions():
    """List the calling agent's dispositions."""
    return dispositions.list_for(_agent())


@blp.route("/disposition/", methods=["POST"])
@login_required(*AGENT, single_write=True)  # the disposition and its event: one statement
@blp.doc(**request_body(DispositionRequestSchema))
@blp.response(201, DispositionSchema)
@blp.alt_response(400, schema=DispositionErrorSchema, description="Unknown option or contact, duplicate")
@blp.alt_response(403, schema=DetailSchema, description="Authentication or role failure")
def create_disposition():
    """Rate a contact in the campaign of the chosen option."""
    agent = _agent()
    return as_documented(dispositions.create(agent, _body()), 201)


@blp.route("/disposition/<id>/", methods=["GET"])
@login_required(*AGENT, single_write=True)
@blp.response(200, DispositionSchema)
@blp.alt_response(404, schema=DetailSchema, description="Unknown id or another agent's")
@blp.alt_response(403, schema=DetailSchema, description="Authentication or role failure")
def get_disposition(id):
    """One of the calling agent's dispositions."""
    return dispositions.representation(dispositions.own(_agent(), id))


@blp.route("/disposition/<id>/", methods=["PUT"])
@login_required(*AGENT, single_write=True)  # the disposition and its event: one statement
@blp.doc(**request_body(DispositionRequestSchema))
@blp.response(200, DispositionSchema)
@blp.alt_response(400, schema=DispositionErrorSchema, description="Unknown option or contact, duplicate")
@blp.alt_response(404, schema=DetailSchema, description="Unknown id or another agent's")
@blp.alt_response(403, schema=DetailSchema, description="Authentication or role failure")
def update_disposition(id):
    """Replace one of the calling agent's dispositions (callid omitted → null)."""
    agent = _agent()
    disposition = dispositions.own(agent, id)  # 404 before the body is read, like OMniLeads
    return as_documented(dispositions.update(agent, disposition, _body()))


@blp.route("/new_contact/disposition/", methods=["POST"])
@login_required(*AGENT, single_write=True)  # contact, disposition and event: one statement
@blp.doc(**request_body(NewContactDispositionRequestSchema))
@blp.response(201, NewContactDispositionSchema)
@blp.alt_response(400, schema=NewContactDispositionErrorSchema,
                  description="Unknown option, invalid or duplicate contact")
@blp.alt_response(403, schema=DetailSchema, description="Authentication or role failure")
def create_contact_and_disposition():
    """Create a contact in the option's campaign and rate it, all or nothing."""
    agent = _agent()
    return as_documented(dispositions.create_with_contact(agent, _body()), 201)

