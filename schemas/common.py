"""Shapes shared by every resource: the two error styles of contract §1.6."""
from marshmallow import Schema, fields


class DetailSchema(Schema):
    """Framework-level failure (auth, role, 404, 405)."""
    detail = fields.String(required=True)


class StatusSchema(Schema):
    """`{"status": "OK"}` or `{"status": "ERROR"}` (agent session endpoints)."""
    status = fields.String(required=True, metadata={"enum": ["OK", "ERROR"]})


class BusinessErrorSchema(Schema):
    """`{"status": "ERROR", "message": ..., "errors": ...}`; `errors` is an object of field
    lists, a list of field names, or one field name, depending on the check that failed."""
    status = fields.String(required=True, metadata={"enum": ["ERROR"]})
    message = fields.String()
    errors = fields.Raw(metadata={"description": "object, list or string (contract §2)"})


def id_field(description="", **kwargs):
    """An id that may arrive as a JSON number or a string (contract §1.2)."""
    return fields.Raw(metadata={"description": description,
                                "oneOf": [{"type": "integer"}, {"type": "string"}]}, **kwargs)
