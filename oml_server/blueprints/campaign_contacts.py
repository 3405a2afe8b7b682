"""campaign/<id>/contacts/ (contract-calls §5): DataTables' server-side list for an agent."""
from flask import g, request
from flask_smorest import Blueprint

from schemas.common import BusinessErrorSchema, DetailSchema
from schemas.supervision import ContactsPageSchema

from .. import messages as M
from ..auth import AGENT, login_required
from ..errors import business_error, forbidden, not_found
from ..services import campaign_contacts
from ..services.lookup import campaign_by_id, has_campaign_access, parse_id

blp = Blueprint("campaign_contacts", __name__, url_prefix="/api/v1",
                description="A campaign's contacts for the agent (DataTables)")


def _number(name, minimum, maximum):
    raw = request.args.get(name)
    value = int(raw) if raw is not None and raw.isdigit() and len(raw) < 10 else None
    if value is None or not minimum <= value <= maximum:
        raise business_error(400, message=M.INVALID_FIELD_VALUE % {"field": name})
    return value


@blp.route("/campaign/<campaign>/contacts/", methods=["GET"])
@login_required(*AGENT)
@blp.doc(parameters=[
    {"in": "query", "name": "draw", "required": True, "schema": {"type": "integer"}},
    {"in": "query", "name": "start", "required": True, "schema": {"type": "integer"}},
    {"in": "query", "name": "length", "required": True,
     "schema": {"type": "integer", "minimum": 1, "maximum": campaign_contacts.MAX_LENGTH}},
    {"in": "query", "name": "search[value]", "required": False, "schema": {"type": "string"}}])
@blp.response(200, ContactsPageSchema)
@blp.alt_response(400, schema=BusinessErrorSchema, description="A missing or bad parameter")
@blp.alt_response(404, schema=DetailSchema, description="Unknown campaign")
@blp.alt_response(403, schema=DetailSchema, description="Authentication, role, or not a member")
def contacts(campaign):
    """The campaign's contacts not yet dispositioned in it, a page at a time."""
    found = campaign_by_id(parse_id(campaign), active_only=False)
    if found is None:
        raise not_found()
    if not has_campaign_access(g.user, found):
        raise forbidden(M.NO_PERMISSION)
    draw = _number("draw", 0, 2**31 - 1)
    start = _number("start", 0, 2**31 - 1)
    length = _number("length", 1, campaign_contacts.MAX_LENGTH)
    search = (request.args.get("search[value]") or "").strip()[:128]
    return {"draw": draw, **campaign_contacts.page(found, start, length, search)}
