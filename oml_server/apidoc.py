"""OpenAPI helpers: document a request body without letting webargs parse it.

The contract's errors depend on the order of checks and on each endpoint's style, so bodies
are read by `body.read_body` and checked by services; the schema still documents every field
for both JSON and form-encoded bodies.
"""

BODY_TYPES = ("application/json", "application/x-www-form-urlencoded")


def request_body(schema, required=True):
    """A `requestBody` for `blp.doc(...)`."""
    return {"requestBody": {"required": required,
                            "content": {ctype: {"schema": schema} for ctype in BODY_TYPES}}}


# Every operation needs a Bearer token (or the web session) unless it says otherwise: the
# document's default `security` is set in config (API_SPEC_OPTIONS); login and health opt out.
NO_AUTH = {"security": []}


def crm_errors(blp):
    """A decorator documenting the error answers of the CRM admin endpoints (400 invalid
    fields, 403 authentication or role, 404 unknown id) on blueprint `blp`."""
    from schemas.common import DetailSchema
    from schemas.crm import CrmErrorSchema

    def decorate(view):
        view = blp.alt_response(400, schema=CrmErrorSchema, description="Invalid fields")(view)
        view = blp.alt_response(403, schema=DetailSchema, description="Authentication or role failure")(view)
        return blp.alt_response(404, schema=CrmErrorSchema, description="Unknown id")(view)
    return decorate


def as_documented(body, status=200):
    """`body` answered as it is: for the hot paths, whose services build their answers in
    the shape of the view's `blp.response` schema already. Returning a Response makes
    flask-smorest skip its marshmallow dump (5-7% of such a request's CPU); the schema still
    documents the answer, and tests/unit/test_openapi.py checks each body against it."""
    from flask import jsonify
    response = jsonify(body)
    response.status_code = status
    return response
