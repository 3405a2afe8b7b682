"""GET /api/v1/health [extension]."""
from marshmallow import Schema, fields


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"enum": ["ok", "degraded"]})
    database = fields.String(required=True, metadata={"enum": ["ok", "error"]})
    ari = fields.String(required=True, metadata={
        "description": "the telephony engine: ok, connecting, down, disabled (or error)"})
