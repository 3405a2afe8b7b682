"""Supervision (contract-calls §4) and the console heartbeat (§5)."""
from marshmallow import Schema, fields

from .common import StatusSchema, id_field

__all__ = ["SupervisedAgentSchema", "CampaignCountsSchema", "AgentStatusItemSchema",
           "CallCountsSchema", "ActionRequestSchema", "ActionResultSchema",
           "HeartbeatRequestSchema", "HeartbeatSchema", "StatusSchema"]


class SupervisedAgentSchema(Schema):
    id = fields.Integer(required=True)
    nombre = fields.String(required=True)
    status = fields.String(required=True, metadata={"description": "READY, PAUSE-<pause name>, "
                                                    "RINGING, DIALING, ONCALL or UNAVAILABLE"})
    sip = fields.String(required=True)
    pause_id = fields.String(required=True)
    campana_llamada = fields.String(required=True)
    contacto = fields.String(required=True)
    tiempo = fields.Integer(required=True, metadata={"description": "seconds in this status"})
    grupo = fields.String(required=True)
    campana = fields.List(fields.String(), required=True)
    call_id = fields.String(metadata={"description": "[extension] the live call, when ONCALL"})


class CampaignCountsSchema(Schema):
    ready = fields.Integer(required=True)
    oncall = fields.Integer(required=True)
    pause = fields.Integer(required=True)


class AgentStatusItemSchema(Schema):
    name = fields.String(required=True)
    status = fields.String(required=True)


class CallCountsSchema(Schema):
    attended = fields.Integer(required=True)
    abandoned = fields.Integer(required=True)
    expired = fields.Integer(required=True)


class ActionRequestSchema(Schema):
    accion = fields.String(required=True, metadata={"enum": [
        "AGENTLOGOUT", "AGENTPAUSE", "AGENTUNPAUSE", "CHANSPY", "CHANSPYWISHPER", "CHANCONFER",
        "CHANTAKECALL"]})


class ActionResultSchema(Schema):
    status = fields.String(required=True, metadata={"enum": ["OK", "ERROR"]})
    message = fields.String()


class HeartbeatRequestSchema(Schema):
    browser_id = fields.String(required=True, metadata={"pattern": "^[A-Za-z0-9._:-]{1,128}$"})
    tab_id = fields.String(required=True, metadata={"pattern": "^[A-Za-z0-9._:-]{1,128}$"})
    ui_state = fields.String(metadata={"maxLength": 64})
    sent_at_ms = id_field("the console's clock, milliseconds")


class HeartbeatSchema(Schema):
    status = fields.String(required=True)
    server_ts_ms = fields.Integer(required=True)
    next_heartbeat_sec = fields.Integer(required=True)


class RefusedSchema(Schema):
    """A refusal: OMniLeads' `{"status": "ERROR", "message": ...}` for a wrong profile, or
    `{"detail": ...}` when the credentials themselves fail."""
    status = fields.String(metadata={"enum": ["ERROR"]})
    message = fields.String()
    detail = fields.String()


class SpyRequestSchema(Schema):
    agent_id = id_field("the agent whose live call to listen to", required=True)
    supervisor_id = id_field("the supervisor (user id) whose phone rings; default the caller")
    whisper = fields.String(metadata={"enum": ["none", "out", "both", "in"],
                                      "description": "none: spy; out: the agent hears the "
                                      "supervisor (whisper); both: barge; in: the caller hears "
                                      "it, the agent does not"})


class CommandQueuedSchema(Schema):
    status = fields.String(required=True)
    message = fields.String()
    subscribers = fields.Integer(required=True)
    channel = fields.String(required=True)
    node_id = fields.String(required=True)
    callid = fields.String()
    supervisor_id = fields.Integer()
    supervisor_sip = fields.String()
    whisper = fields.String()
    call_id = fields.String(metadata={"description": "three-way-conf: the call joined"})
    sip_number = fields.String(metadata={"description": "three-way-conf: the phone that rings"})


class ThreeWayConfRequestSchema(Schema):
    agent_id = id_field("the agent whose live call the supervisor joins", required=True)
    supervisor_id = id_field("the supervisor (user id) whose phone rings; default the caller")


from .call_control import CommandErrorSchema  # noqa: E402,F401 (one shape for §0's refusals)


class OutsideCallRequestSchema(Schema):
    destination_type = fields.String(required=True, metadata={"enum": ["AGENT", "EXTERNAL"]})
    destination = id_field("an agent id (AGENT) or a number (EXTERNAL)", required=True)


class ContactsPageSchema(Schema):
    draw = fields.Integer(required=True)
    recordsTotal = fields.Integer(required=True)  # noqa: N815 (DataTables' names)
    recordsFiltered = fields.Integer(required=True)  # noqa: N815
    data = fields.List(fields.List(fields.Raw()), required=True)
