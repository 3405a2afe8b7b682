"""database_metadata (contract §2.2) and disposition options (§2.5)."""
from flask import g
from flask_smorest import Blueprint

from schemas.campaigns import (DatabaseMetadataRequestSchema, DatabaseMetadataResponseSchema,
                               DispositionOptionSchema)
from schemas.common import BusinessErrorSchema, DetailSchema

from ..apidoc import as_documented, request_body
from ..auth import AGENT, ALL_ROLES, login_required
from ..body import read_body
from ..errors import unreadable_as_data_errors
from ..services import campaigns

blp = Blueprint("campaigns", __name__, url_prefix="/api/v1", description="Campaigns")


@blp.route("/campaign/database_metadata/", methods=["POST"])
@login_required(*ALL_ROLES, single_write=True)
@blp.doc(**request_body(DatabaseMetadataRequestSchema))
@blp.response(200, DatabaseMetadataResponseSchema)
@blp.alt_response(400, schema=BusinessErrorSchema, description="Unknown external system, "
                  "invalid or unknown campaign, or no access to it")
@blp.alt_response(403, schema=DetailSchema, description="Authentication or role failure")
def database_metadata():
    """The columns of a campaign's contact database: what new_contact takes."""
    data = read_body(unreadable_as_data_errors())
    return as_documented(campaigns.database_metadata(g.user, data))


@blp.route("/campaign/<campaign>/dispositionOptions/", methods=["GET"])
@login_required(*AGENT, single_write=True)
@blp.response(200, DispositionOptionSchema(many=True))
@blp.alt_response(404, schema=DetailSchema, description="Unknown campaign")
@blp.alt_response(403, schema=DetailSchema, description="Authentication or role failure")
def disposition_options(campaign):
    """A campaign's disposition options (internal campaign id), hidden ones included."""
    return as_documented(campaigns.disposition_options(campaign))


@blp.route("/campaign/<campaign>/dispositionOptions/<externalSystem>/", methods=["GET"])
@login_required(*AGENT, single_write=True)
@blp.response(200, DispositionOptionSchema(many=True))
@blp.alt_response(404, schema=DetailSchema, description="Unknown external system or campaign")
@blp.alt_response(403, schema=DetailSchema, description="Authentication or role failure")
def external_disposition_options(campaign, externalSystem):  # noqa: N803 (the contract's name)
    """A campaign's disposition options by its external id in an external system."""
    return as_documented(campaigns.disposition_options(campaign, externalSystem))
