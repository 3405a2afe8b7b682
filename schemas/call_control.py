"""In-call commands (contract-calls §2, §3): requests, the 202 "queued" answer, the errors."""
from marshmallow import Schema, fields

from .common import id_field

__all__ = ["BlindAgentSchema", "BlindEndpointSchema", "BlindCampaignSchema",
           "BlindCampaignAgentSchema", "ConsultStartSchema", "CallIdSchema", "HoldSchema", "HangupLegSchema", "QueuedSchema",
           "CommandErrorSchema"]

_CALL_ID = "the call's id (makeCall's callId, the X-OML-CallID header); `callid` also accepted"


class _CallId(Schema):
    call_id = fields.String(metadata={"description": _CALL_ID})
    agent_id = id_field("ignored: the agent is the one on the call")


class CallIdSchema(_CallId):
    pass


class BlindAgentSchema(_CallId):
    target_agent_id = id_field("the agent to ring", required=True)


class BlindEndpointSchema(_CallId):
    endpoint = fields.String(required=True, metadata={
        "description": "an agent's extension or an outside number (3-25 digits, may begin "
                       "with +); never a dial string"})


class BlindCampaignSchema(_CallId):
    target_campaign_id = id_field("the campaign whose next available agent takes the caller",
                                  required=True)


class BlindCampaignAgentSchema(_CallId):
    campaign_id = id_field("the campaign whose available agent (by its strategy) is rung",
                           required=True)


class ConsultStartSchema(_CallId):
    target_agent_id = id_field("the agent to consult (or `endpoint`)")
    endpoint = fields.String(metadata={"description": "an agent's extension or an outside "
                                                      "number (or `target_agent_id`)"})


class HoldSchema(Schema):
    call_id = fields.String(metadata={"description": _CALL_ID + "; default: the agent's "
                                                                "current call"})
    action = fields.String(metadata={"enum": ["hold", "unhold"],
                                     "description": "[extension] force a direction; without "
                                                    "it the call's hold is toggled"})


class HangupLegSchema(Schema):
    call_id = fields.String(metadata={"description": "the whole call"})
    channel_id = fields.String(metadata={"description": "one leg (also: asterisk_id, "
                                                        "unique_id), as the call's legs show"})


class QueuedSchema(Schema):
    """OMniLeads' answer to a command it took; per-endpoint keys added."""
    status = fields.String(metadata={"enum": ["queued"]})
    message = fields.String(metadata={"example": "Comando recibido"})
    subscribers = fields.Integer(metadata={"description": "1 when the call's engine took the "
                                                          "command, 0 when none is connected"})
    channel = fields.String(metadata={"example": "acd:commands:local"})
    node_id = fields.String(metadata={"description": "the Asterisk node that owns the call"})
    target_agent_id = fields.Integer()
    campaign_id = fields.Integer()
    target_campaign_id = fields.Integer()
    endpoint = fields.String()
    action = fields.String(metadata={"enum": ["hold", "unhold"]})
    call_id = fields.String()
    target_id = fields.String()
    mode = fields.String()


class CommandErrorSchema(Schema):
    """The command endpoints' refusals (§0): `{"error": …}`, or `{"detail": …}` when the
    credentials themselves fail (call/spy, action_on_agent)."""
    error = fields.String()
    campaign_id = fields.String()
    received = fields.Raw()
    detail = fields.String()
