"""Agent session endpoints (contract §2.8, §2.10): tiny bodies, `{"status": "OK"|"ERROR"}` answers."""
from marshmallow import Schema, fields

from .common import StatusSchema, id_field

__all__ = ["NoFieldsSchema", "PauseRequestSchema", "RingingRequestSchema", "StatusSchema"]


class NoFieldsSchema(Schema):
    """No fields: the body may be empty (JSON `{}` or an empty form)."""


class PauseRequestSchema(Schema):
    pause_id = id_field('a configured pause\'s id, or a system pause: "0" (after-call work), '
                        '"00" (supervision), "OW" (on WhatsApp)', required=True)


class RingingRequestSchema(Schema):
    ringing = fields.String(required=True, metadata={"enum": ["true", "false"],
                                                     "description": "the agent's phone is / stopped ringing"})
