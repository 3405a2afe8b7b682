"""What an external site receives: the campaign's CRM parameters filled in for one call (and
disposition), and the request they make in the site's method and format (contract-calls §6).

A parameter is {"name", "type", "value"}; a name `{N}` is not sent but replaces `{N}` in the
site's url. Types: campaign (id, nombre, tipo), contact (a column of its database), call
(call_id, agent_id, agent_username, agent_name, telefono, id_contacto, rec_filename,
call_wait_duration, datetime), fixed (the value itself), dialplan (an `OMLCRM…` channel
variable of an inbound call: the engine reads the ones the campaign names when the caller
enters, calls.crm_variables), disposition (id, name, subdisposition, form).

Disposition data: a disposition of this API (as of OMniLeads' REST API) has no sub-option, so
`subdisposition` is the empty string; `form` is what the agent entered with it
({"comments": …}: OMniLeads' management form has no REST counterpart).
"""
import json
import re
from datetime import datetime, timezone
from urllib.parse import urlencode

from urllib3 import encode_multipart_formdata

from oml_server.extensions import db
from oml_server.models import (AgentProfile, Call, Campaign, Contact, Disposition,
                               DispositionOption, User)
from oml_server.services.lookup import contact_of_call

CALL_VALUES = ("call_id", "agent_id", "agent_username", "agent_name", "telefono", "id_contacto",
               "rec_filename", "call_wait_duration", "datetime")
CAMPAIGN_VALUES = ("id", "nombre", "tipo")
DISPOSITION_VALUES = ("id", "name", "subdisposition", "form")
METHODS = {1: "GET", 2: "POST"}
FORMATS = {1: "multipart/form-data", 2: "application/x-www-form-urlencoded", 3: "text/plain",
           4: "application/json"}
_PLACEHOLDER = re.compile(r"^\{\d+\}$")


def aware(moment):
    if moment is not None and moment.tzinfo is None:   # SQLite hands back naive UTC
        moment = moment.replace(tzinfo=timezone.utc)
    return moment


def _call_value(value, call, agent, user, contact):
    if value == "call_id":
        return call.id if call else ""
    if value == "agent_id":
        return agent.id if agent else ""
    if value == "agent_username":
        return user.username if user else ""
    if value == "agent_name":
        return f"{user.first_name} {user.last_name}".strip() if user else ""
    if value == "telefono":
        return call.number if call else ""
    if value == "id_contacto":
        return contact.id if contact is not None else ""
    if value == "call_wait_duration":
        # How long the call waited before the agent took it (OMniLeads: queue wait).
        if call is None:
            return 0
        answered = aware(call.agent_answered_at or call.bridged_at)
        created = aware(call.created_at)
        return max(0, int((answered - created).total_seconds())) if answered and created else 0
    if value == "datetime":
        return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    if value == "rec_filename":
        return _recording_name(call)
    return ""


def _recording_name(call):
    """The call's recording file (relative to RECORDINGS_DIR), also before it started: the
    Servidor site fires as the call is bridged, when the recording is being started."""
    if call is None:
        return ""
    if getattr(call, "recording_file", None):
        return call.recording_file
    from .recordings import file_name
    campaign = db.session.get(Campaign, call.campaign_id) if call.campaign_id else None
    if campaign is None or not campaign.record or call.created_at is None:
        return ""
    return file_name(call.id, call.created_at)


def parameters(campaign, call=None, disposition=None, agent_id=None):
    """{name: value} for the campaign's CRM parameters, and {"{N}": value} placeholders."""
    agent_id = agent_id or (call.agent_id if call else None) or (
        disposition.agent_id if disposition else None)
    agent = db.session.get(AgentProfile, agent_id) if agent_id else None
    user = db.session.get(User, agent.user_id) if agent is not None else None
    # The call's contact, the disposition's, else (an inbound caller) the one with its number.
    if call is not None and call.contact_id is None and disposition is not None:
        contact = db.session.get(Contact, disposition.contact_id)
    else:
        contact = contact_of_call(call, campaign) if call is not None else (
            db.session.get(Contact, disposition.contact_id) if disposition else None)
    option = db.session.get(DispositionOption, disposition.option_id) if disposition else None
    sent, placeholders = {}, {}
    for param in campaign.crm_parameters or []:
        kind, value = param.get("type"), param.get("value")
        if kind == "campaign":
            result = {"id": campaign.id, "nombre": campaign.name, "tipo": campaign.type}.get(value, "")
        elif kind == "contact":
            result = (contact.data or {}).get(value, "") if contact else ""
        elif kind == "call":
            result = _call_value(value, call, agent, user, contact)
        elif kind == "fixed":
            result = value
        elif kind == "disposition":
            result = _disposition_value(value, disposition, option)
        else:   # dialplan
            result = ((call.crm_variables if call else None) or {}).get(value, "")
        name = param.get("name", "")
        (placeholders if _PLACEHOLDER.match(name) else sent)[name] = result
    return sent, placeholders


def _disposition_value(value, disposition, option):
    if disposition is None:
        return {} if value == "form" else ""
    if value == "id":
        return disposition.id
    if value == "name":
        return option.name if option else ""
    if value == "form":
        return {"comments": disposition.comments or ""}
    return ""   # subdisposition: none recorded (see the module's docstring)


def dialplan_names(campaign):
    """The channel variables the campaign's dialplan parameters name (read on inbound calls)."""
    if campaign is None:
        return []
    return sorted({str(p.get("value")) for p in campaign.crm_parameters or []
                   if p.get("type") == "dialplan" and p.get("value")})


def site_url(site, placeholders):
    url = site.url
    for name, value in placeholders.items():
        url = url.replace(name, str(value))
    return url


def render(site, sent, placeholders):
    """(method, url, content type, body bytes) of the request, as it will be stored and sent."""
    url = site_url(site, placeholders)
    if site.metodo == 1:
        if sent:
            url += ("&" if "?" in url else "?") + urlencode({k: _text(v) for k, v in sent.items()})
        return "GET", url, None, b""
    if site.formato == 4:
        return "POST", url, FORMATS[4], json.dumps(sent, default=str).encode()
    if site.formato == 1:
        body, content_type = encode_multipart_formdata({k: _text(v) for k, v in sent.items()})
        return "POST", url, content_type, body
    if site.formato == 3:
        # OMniLeads does not specify a text layout: one `name=value` per line.
        text = "\n".join(f"{k}={_text(v)}" for k, v in sent.items())
        return "POST", url, FORMATS[3] + "; charset=utf-8", text.encode()
    return "POST", url, FORMATS[2], urlencode({k: _text(v) for k, v in sent.items()}).encode()


def _text(value):
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return "" if value is None else str(value)


BROWSER_TRIGGERS = (1, 2)   # Agente (a button), Automático: the agent's browser opens them


def interaction(call, agent_id=None):
    """[extension] The browser's configuration of the call's campaign site (Agente /
    Automático), or None when the campaign has none (no site, or one the server sends).
    `agent_id`: the agent whose browser asks (a transferred call's new agent)."""
    campaign = db.session.get(Campaign, call.campaign_id) if call.campaign_id else None
    site = campaign.external_site if campaign is not None else None
    if site is None or site.disparador not in BROWSER_TRIGGERS:
        return None
    sent, placeholders = parameters(campaign, call, agent_id=agent_id)
    return {"dispara_agente": site.disparador == 1,
            "formato": FORMATS.get(site.formato) if site.metodo == 2 else None,
            "formato_es_JSON": site.formato == 4,
            "url": site_url(site, placeholders),
            "abre_pestana": site.objetivo == 2,
            "metodo": METHODS[site.metodo],
            "parametros": sent}


def disposition_of(disposition_id):
    return db.session.get(Disposition, disposition_id)


def call_of(call_id):
    return db.session.get(Call, call_id) if call_id else None
