"""The CRM keys of a provisioning file: `external_site_authentications`, `external_sites`,
`webhooks`, and a campaign's `external_site` / `crm_parameters` (the option's
`crm_interaction` is written with the other option fields). Each item is checked with the
same rules as the REST endpoints (schemas/crm.py), after turning the file's words into
OMniLeads' codes."""
from marshmallow import ValidationError
from sqlalchemy import select

from schemas import crm as rest
from schemas.provisioning import SITE_FORMATS, SITE_METHODS, SITE_TARGETS, SITE_TRIGGERS

from ..extensions import db
from ..models import ExternalSite, ExternalSiteAuthentication, Webhook
from .crm_request import CALL_VALUES, CAMPAIGN_VALUES, DISPOSITION_VALUES


def _code(words, word):
    return None if word is None else words.index(word) + 1


def _checked(run, label, schema, values):
    try:
        return schema().load(values)
    except ValidationError as exc:
        field, messages = next(iter(exc.messages.items()))
        run.fail(label, field, " ".join(str(m) for m in messages) if isinstance(messages, list)
                 else str(messages))


def _upsert(run, model, label, natural, values):
    obj = db.session.scalar(select(model).where(natural))
    if obj is None:
        obj = model(**values)
        run._insert(obj)
    else:
        run._apply(obj, values, {k: k for k in values})
    return obj


def authentication(run, label, item):
    run.where = label
    run._once("external_site_authentications", item["name"], label, "name")
    values = _checked(run, label, rest.ExternalSiteAuthenticationSchema, {
        "nombre": item["name"], "url": item["url"], "username": item["username"],
        "password": item["password"], "campo_token": item.get("token_field", "token"),
        "duracion": item.get("duration", 0), "campo_duracion": item.get("duration_field"),
        "ssl_estricto": item.get("strict_ssl", True)})
    auth = _upsert(run, ExternalSiteAuthentication, label,
                   ExternalSiteAuthentication.nombre == item["name"], values)
    run.ids.setdefault("external_site_authentications", {})[item["name"]] = auth.id


def site(run, label, item):
    run.where = label
    run._once("external_sites", item["name"], label, "name")
    auth_id = None
    if item.get("authentication"):
        auth_id = db.session.scalar(select(ExternalSiteAuthentication.id).where(
            ExternalSiteAuthentication.nombre == item["authentication"]))
        if auth_id is None:
            run.fail(label, "authentication", f"unknown authentication {item['authentication']!r}")
    values = _checked(run, label, rest.ExternalSiteSchema, {
        "nombre": item["name"], "url": item["url"], "oculto": item.get("hidden", False),
        "disparador": _code(SITE_TRIGGERS, item["trigger"]),
        "metodo": _code(SITE_METHODS, item["method"]),
        "formato": _code(SITE_FORMATS, item.get("format")),
        "objetivo": _code(SITE_TARGETS, item.get("target")),
        "signing_secret": item.get("signing_secret")})
    values.pop("autenticacion", None)
    values["autenticacion_id"] = auth_id
    found = _upsert(run, ExternalSite, label, ExternalSite.nombre == item["name"], values)
    run.ids.setdefault("external_sites", {})[item["name"]] = found.id


def webhook(run, label, item):
    run.where = label
    run._once("webhooks", item["url"], label, "url")
    values = _checked(run, label, rest.WebhookSchema, {
        key: item[key] for key in ("url", "events", "secret", "active") if key in item})
    if values["events"] == "*":
        values["events"] = ["*"]
    hook = _upsert(run, Webhook, label, Webhook.url == item["url"], values)
    run.ids.setdefault("webhooks", {})[item["url"]] = hook.id


_VALUES = {"campaign": CAMPAIGN_VALUES, "call": CALL_VALUES, "disposition": DISPOSITION_VALUES}


def campaign_site(run, label, campaign, item):
    """The campaign's `external_site` (a name or null) and `crm_parameters`."""
    if "external_site" in item:
        site_id = None
        if item["external_site"]:
            site_id = db.session.scalar(select(ExternalSite.id).where(
                ExternalSite.nombre == item["external_site"]))
            if site_id is None:
                run.fail(label, "external_site", f"unknown external site {item['external_site']!r}")
        if campaign.external_site_id != site_id:
            campaign.external_site_id = site_id
    if "crm_parameters" in item:
        params = []
        for position, param in enumerate(item["crm_parameters"]):
            allowed = _VALUES.get(param["type"])
            if allowed is not None and param["value"] not in allowed:
                run.fail(label, f"crm_parameters[{position}].value",
                         f"{param['value']!r} is not one of {', '.join(allowed)}")
            params.append({"name": param["name"], "type": param["type"], "value": param["value"]})
        if campaign.crm_parameters != params:
            campaign.crm_parameters = params
