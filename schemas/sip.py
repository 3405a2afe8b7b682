"""SIP credentials (contract §2.9)."""
from marshmallow import Schema, fields


class SipCredentialsSchema(Schema):
    """`{"status": "OK", "sip_user", "sip_password"}`, or (also HTTP 200)
    `{"status": "ERROR", "message": "Error al generar sip password"}`."""
    status = fields.String(required=True, metadata={"enum": ["OK", "ERROR"]})
    message = fields.String(metadata={"description": "only with status ERROR"})
    sip_user = fields.String(metadata={
        "description": "<unix expiry time>:<agent's SIP extension>", "example": "1732694400:1005"})
    sip_password = fields.String(metadata={
        "description": "base64(HMAC-SHA1(SIP_SECRET_KEY, sip_user))"})


class SipErrorSchema(Schema):
    status = fields.String(required=True, metadata={"enum": ["ERROR"]})
    message = fields.String(required=True, metadata={"example": "Error al generar sip password"})
