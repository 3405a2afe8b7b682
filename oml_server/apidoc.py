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
