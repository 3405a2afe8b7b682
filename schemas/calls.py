"""Click-to-call (contract §2.4), hangupCall (§2.10) and the call record [extension]."""
from marshmallow import Schema, fields

from .common import StatusSchema, id_field

__all__ = ["MakeCallRequestSchema", "MakeCallResponseSchema", "CallSchema", "StatusSchema"]


class MakeCallRequestSchema(Schema):
    idCampaign = id_field("the campaign's id (its external id when idExternalSystem is given)",
                          required=True)
    idAgent = id_field("the calling agent's id (login's agent_id), or its id in the external "
                       "system", required=True)
    phone = fields.String(required=True, metadata={"description": "3-25 digits, may begin "
                                                                  "with +", "example": "3511111111"})
    idContact = id_field("optional: the contact's id (its external id with idExternalSystem)")
    idContacto = id_field("optional: same as idContact (the public page's name); when both are "
                          "sent they must agree")
    idExternalSystem = id_field("optional: makes idCampaign, idAgent and idContact external ids")


class MakeCallResponseSchema(Schema):
    """`{"status": "OK", "callId": ...}`, or (also HTTP 200) `{"status": "ERROR", "message": ...,
    "errors": {field: [msg]} | [reason]}`."""
    status = fields.String(required=True, metadata={"enum": ["OK", "ERROR"]})
    callId = fields.String(metadata={"description": "[extension] the call's id: a disposition's "
                                                    "callid and the key of /calls/<callId>/"})
    message = fields.String(metadata={"description": "only with status ERROR"})
    errors = fields.Raw(metadata={"description": "only with status ERROR: an object of field "
                                                 "lists, or a list of reasons"})


class CallSchema(Schema):
    """A call as recorded by the server and the engine (contract §3)."""
    id = fields.String()
    kind = fields.String(metadata={"enum": ["click_to_call", "inbound", "outbound"]})
    campaign = fields.Integer(allow_none=True)
    agent = fields.Integer(allow_none=True)
    contact = fields.Integer(allow_none=True)
    number = fields.String()
    state = fields.String(metadata={"enum": ["requested", "agent_ringing", "agent_answered",
                                             "contact_ringing", "bridged", "ended", "failed"]})
    reason = fields.String(allow_none=True)
    hangup_cause = fields.Integer(allow_none=True)
    created_at = fields.String(metadata={"format": "date-time"})
    agent_answered_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    bridged_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    ended_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    agent_channel_id = fields.String(allow_none=True)
    contact_channel_id = fields.String(allow_none=True)
    bridge_id = fields.String(allow_none=True)
    current_agent = fields.Integer(allow_none=True, metadata={
        "description": "[extension] the agent the call is with now (after transfers)"})
    legs = fields.List(fields.Dict(), metadata={
        "description": "[extension] every channel and bridge of the call: role (agent, contact, "
                       "caller, transfer_target, hold, main…), channel, resource, state "
                       "(live, gone, released), hangup_cause, created_at, ended_at"})
    events = fields.List(fields.Dict(), metadata={
        "description": "[extension] what happened, in order, with times: call.requested … "
                       "call.bridged, call.held, call.unheld, call.transfer_requested, "
                       "call.transferred, call.transfer_failed (reason), call.ended"})
