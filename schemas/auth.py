"""Login (contract §2.1)."""
from marshmallow import Schema, fields


class LoginRequestSchema(Schema):
    username = fields.String(required=True)
    password = fields.String(required=True)


class LoginUserSchema(Schema):
    first_name = fields.String()
    last_name = fields.String()
    email = fields.String()
    agent_id = fields.Integer(metadata={"description": "only for agents: makeCall's idAgent"})


class LoginResponseSchema(Schema):
    user = fields.Nested(LoginUserSchema)
    expires_in = fields.String(metadata={"description": "seconds, as a string", "example": "32399.99"})
    token = fields.String()


class LoginFieldErrorsSchema(Schema):
    """Per-field errors, or `{"detail": ...}` when the body cannot be read at all."""
    username = fields.List(fields.String())
    password = fields.List(fields.String())
    detail = fields.String()
