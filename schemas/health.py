"""GET /api/v1/health [extension]."""
from marshmallow import Schema, fields


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"enum": ["ok", "degraded"]})
    database = fields.String(required=True, metadata={"enum": ["ok", "error"]})
    ari = fields.String(required=True, metadata={
        "description": "the telephony engine: ok, connecting (engine process, websocket "
                       "down), disconnected / no_engine (API-only worker, from the engine's "
                       "heartbeat), disabled (or error)"})
    ari_problems = fields.List(fields.String(), metadata={
        "description": "what the engine found missing in Asterisk when it connected"})
