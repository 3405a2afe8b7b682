"""The agent console's state endpoint [extension]."""
from marshmallow import Schema, fields


class ConsoleCallSchema(Schema):
    """The agent's live call, with what the ringing screen shows."""
    id = fields.String(metadata={"description": "the call id (a disposition's callid)"})
    kind = fields.String(metadata={"enum": ["click_to_call", "inbound", "outbound"]})
    state = fields.String()
    number = fields.String()
    campaign = fields.Integer(allow_none=True)
    campaignName = fields.String(allow_none=True)
    contact = fields.Integer(allow_none=True, metadata={
        "description": "the call's contact, else the campaign database's contact with that "
                       "main phone, else null"})
    contactData = fields.Dict(keys=fields.String(), metadata={"description": "column -> value"})


class AgentStateSchema(Schema):
    """`{"status": "OK", "state": ..., ...}`; `{"status": "ERROR"}` when the user has no agent."""
    status = fields.String(required=True, metadata={"enum": ["OK", "ERROR"]})
    state = fields.String(metadata={"enum": ["OFFLINE", "LOGGED_OUT", "READY", "PAUSED",
                                             "RINGING", "ONCALL"]})
    online = fields.Boolean(metadata={"description": "the agent's phone is registered"})
    logged_in = fields.Boolean()
    paused = fields.Boolean()
    pause_id = fields.String(allow_none=True)
    pause_name = fields.String(allow_none=True)
    acw_seconds_left = fields.Integer(allow_none=True, metadata={
        "description": "in after-call work: seconds until the agent is ready again by itself"})
    call = fields.Nested(ConsoleCallSchema, allow_none=True)
