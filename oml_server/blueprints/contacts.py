"""new_contact (contract §2.3)."""
from flask import g
from flask_smorest import Blueprint

from schemas.common import BusinessErrorSchema, DetailSchema
from schemas.contacts import NewContactRequestSchema, NewContactResponseSchema

from ..apidoc import as_documented, request_body
from ..auth import CONTACT_WRITERS, login_required
from ..body import read_body
from ..errors import unreadable_as_data_errors
from ..services import contact_api

blp = Blueprint("contacts", __name__, url_prefix="/api/v1", description="Contacts")


@blp.route("/new_contact/", methods=["POST"])
@login_required(*CONTACT_WRITERS, single_write=True)
@blp.doc(**request_body(NewContactRequestSchema))
@blp.response(200, NewContactResponseSchema)
@blp.alt_response(400, schema=BusinessErrorSchema, description="Campaign errors (as "
                  "database_metadata), incorrect fields, missing main phone, invalid values, "
                  "duplicate external id or phone")
@blp.alt_response(403, schema=DetailSchema, description="Authentication or role failure")
def new_contact():
    """Add a contact to a campaign's contact database (200, not 201)."""
    data = read_body(unreadable_as_data_errors())
    return as_documented(contact_api.new_contact(g.user, data))
