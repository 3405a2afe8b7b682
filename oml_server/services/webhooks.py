"""[extension] Webhook subscriptions: the rules behind /api/v1/webhooks/ (Administrador)."""
from schemas.crm import WebhookSchema

from .. import messages as M
from ..models import Webhook
from . import crm_request
from .crud import Resource

EVENT_TYPES = ("call.requested", "call.agent_ringing", "call.answered", "call.contact_ringing",
               "call.bridged", "call.held", "call.unheld", "call.transfer_requested",
               "call.transferred", "call.transfer_failed", "call.ended", "call.failed",
               "call.agent_released", "agent.status", "disposition.created",
               "disposition.updated", "recording.ready")


def representation(hook):
    created = crm_request.aware(hook.created_at)
    return {"id": hook.id, "url": hook.url, "events": hook.events, "active": hook.active,
            "signed": bool(hook.secret), "created_at": created.isoformat() if created else None}


WEBHOOKS = Resource(Webhook, WebhookSchema, representation, M.WEBHOOK_NOT_FOUND)


def create(data):
    return WEBHOOKS.save(Webhook(), _values(data))


def update(pk, data):
    hook = WEBHOOKS.get(pk)
    values = _values(data)
    if "secret" not in data:   # never returned, so not sent back: keep it
        values.pop("secret")
    return WEBHOOKS.save(hook, values)


def _values(data):
    values = WEBHOOKS.load(data)
    if values["events"] == "*":
        values["events"] = ["*"]
    return values
