"""[extension] Webhook subscriptions and their delivery log (Administrador)."""
from flask import request
from flask_smorest import Blueprint

from ..apidoc import crm_errors
from ..auth import login_required
from ..body import read_body
from ..errors import unreadable_as_data_errors
from ..services import deliveries, webhooks

blp = Blueprint("webhooks", __name__, url_prefix="/api/v1",
                description="[extension] Webhooks: signed event deliveries to a CRM")

ADMIN = ("Administrador",)
errors_documented = crm_errors(blp)


def _body():
    return read_body(unreadable_as_data_errors())


@blp.route("/webhooks/", methods=["GET"])
@login_required(*ADMIN)
@blp.response(200)
@errors_documented
def list_webhooks():
    """The subscriptions (a secret is never returned: `signed` says whether one is set)."""
    return {"webhooks": webhooks.WEBHOOKS.all()}


@blp.route("/webhooks/", methods=["POST"])
@login_required(*ADMIN)
@blp.response(201)
@errors_documented
def create_webhook():
    """Subscribe `url` to `events` (a list of types, `call.*`-style prefixes, or `*`)."""
    return webhooks.create(_body()), 201


@blp.route("/webhooks/<int:pk>/", methods=["GET"])
@login_required(*ADMIN)
@blp.response(200)
@errors_documented
def webhook_detail(pk):
    """One subscription."""
    return webhooks.representation(webhooks.WEBHOOKS.get(pk))


@blp.route("/webhooks/<int:pk>/", methods=["PUT"])
@login_required(*ADMIN)
@blp.response(200)
@errors_documented
def update_webhook(pk):
    """Replace a subscription's fields (an absent `secret` keeps the stored one)."""
    return webhooks.update(pk, _body())


@blp.route("/webhooks/<int:pk>/", methods=["DELETE"])
@login_required(*ADMIN)
@blp.response(204)
@errors_documented
def delete_webhook(pk):
    """Remove a subscription (its delivery log stays; what it had not delivered is failed)."""
    webhooks.WEBHOOKS.delete(pk, with_it=deliveries.cancel_webhook)
    return ""


@blp.route("/webhooks/<int:pk>/deliveries/", methods=["GET"])
@login_required(*ADMIN)
@blp.response(200)
@errors_documented
def webhook_deliveries(pk):
    """The subscription's deliveries, newest first: attempts, state, last status and error
    (`?before=<id>` pages back)."""
    webhooks.WEBHOOKS.get(pk)
    return {"deliveries": deliveries.log_of(f"webhook:{pk}", request.args.get("before", type=int))}
