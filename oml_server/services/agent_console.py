"""What the agent console (`/agente/`) needs from the server besides the contract's endpoints.

* `page_data`: rendered into the page once: the agent, its campaigns (for click-to-call), the
  site's pauses, where the browser's phone registers (SIP over WebSocket) and the JS catalogue.
* `state`: the agent's session as the server knows it, polled by the page (`GET
  /api/v1/agent/state/` [extension]), so what the agent sees changes when a supervisor acts.
  It names the agent's live call with what the ringing screen shows: the number, the campaign
  and the contact (the call's, else the campaign database's contact with that main phone: an
  inbound caller is known by the number it calls from).
"""
import json
import math
import os
import re
from datetime import timezone
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import select

from ..extensions import db
from ..models import (SYSTEM_PAUSES, AgentProfile, AgentSession, Call, Campaign,
                      ExternalSite, Pause, User, campaign_agents, utcnow)
from .crm_request import BROWSER_TRIGGERS
from .lookup import contact_of_call

CATALOGUE_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "static", "console", "i18n")


def sip_ws_url(config):
    """CONSOLE_SIP_WS_URL, else Asterisk's HTTP server next to ARI (`http://h:p/ari` ->
    `ws://h:p/ws`; https -> wss)."""
    if config.get("CONSOLE_SIP_WS_URL"):
        return config["CONSOLE_SIP_WS_URL"]
    parts = urlsplit(config["ARI_URL"])
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc.rsplit('@', 1)[-1]}/ws"


def sip_domain(config):
    return config.get("CONSOLE_SIP_DOMAIN") or urlsplit(sip_ws_url(config)).hostname


def catalogue(locale):
    """The page's JS strings in `locale` (a small JSON file per language)."""
    with open(os.path.join(CATALOGUE_DIR, f"{locale}.json"), encoding="utf-8") as f:
        return json.load(f)


def pauses():
    """The site's pauses, then the system ones an agent may choose (after-call work)."""
    rows = db.session.scalars(select(Pause).order_by(Pause.name)).all()
    listed = [{"id": str(p.id), "name": p.name, "type": p.type} for p in rows]
    return listed + [{"id": "0", "name": SYSTEM_PAUSES["0"], "type": "system"}]


def campaigns_of(agent_id):
    rows = db.session.scalars(
        select(Campaign).join(campaign_agents, campaign_agents.c.campaign_id == Campaign.id)
        .where(campaign_agents.c.agent_id == agent_id, Campaign.state == "active")
        .order_by(Campaign.name)).all()
    return [{"id": c.id, "name": c.name, "type": c.type} for c in rows]


def _name(user):
    return " ".join(p for p in (user.first_name, user.last_name) if p) or user.username


def colleagues_of(agent_id):
    """The other agents of the agent's active campaigns: whom it may transfer a call to."""
    mine = (select(campaign_agents.c.campaign_id).join(Campaign, Campaign.id == campaign_agents.c.campaign_id)
            .where(campaign_agents.c.agent_id == agent_id, Campaign.state == "active"))
    rows = db.session.execute(
        select(AgentProfile.id, User).join(User, User.id == AgentProfile.user_id)
        .join(campaign_agents, campaign_agents.c.agent_id == AgentProfile.id)
        .where(campaign_agents.c.campaign_id.in_(mine), AgentProfile.id != agent_id,
               User.is_active.is_(True))
        .distinct().order_by(AgentProfile.id)).all()
    return sorted(({"id": agent, "name": _name(user)} for agent, user in rows),
                  key=lambda a: a["name"].lower())


_HOST = re.compile(r"^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])$")


def _origin(url):
    """scheme://host[:port] of a site's url; None when it has none a policy can name (a
    placeholder in the host, a scheme other than http(s))."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = parts.netloc.rsplit("@", 1)[-1].rsplit(":", 1)[0] if port else parts.netloc.rsplit("@", 1)[-1]
    if parts.scheme not in ("http", "https") or not _HOST.match(host or ""):
        return None
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def crm_sites(agent_id):
    """The CRM pop of the agent's campaigns' sites (Agente / Automático): which campaigns have
    one (the page asks for a call's only then), and where the page may open them, for its
    Content-Security-Policy: embedded ones are framed (frame-src), POSTs are forms
    (form-action), JSON ones are sent by the script (connect-src). Nothing else."""
    rows = db.session.execute(
        select(Campaign.id, ExternalSite).join(Campaign, Campaign.external_site_id == ExternalSite.id)
        .join(campaign_agents, campaign_agents.c.campaign_id == Campaign.id)
        .where(campaign_agents.c.agent_id == agent_id, Campaign.state == "active",
               ExternalSite.disparador.in_(BROWSER_TRIGGERS))).all()
    found = {"frame": set(), "form": set(), "connect": set()}
    for _, site in rows:
        origin = _origin(site.url)
        if origin is None:
            continue
        if site.metodo == 2 and site.formato == 4:
            found["connect"].add(origin)
            continue
        if site.objetivo != 2:
            found["frame"].add(origin)
        if site.metodo == 2:
            found["form"].add(origin)
    return {"campaigns": sorted({campaign for campaign, _ in rows}),
            **{kind: sorted(origins) for kind, origins in found.items()}}


def page_data(user, locale, csrf_cookie, csrf_header):
    agent = user.agent
    config = current_app.config
    return {"agentId": agent.id, "extension": agent.sip_extension, "name": _name(user),
            "campaigns": campaigns_of(agent.id), "pauses": pauses(),
            "colleagues": colleagues_of(agent.id), "crm": crm_sites(agent.id),
            "sip": {"wsUrl": sip_ws_url(config), "domain": sip_domain(config)},
            "csrf": {"cookie": csrf_cookie, "header": csrf_header},
            "locale": locale, "messages": catalogue(locale)}


def _status(row, call):
    """One word for the badge: OFFLINE (phone not registered), LOGGED_OUT, RINGING, ONCALL,
    PAUSED, READY."""
    if row is None or not row.online:
        return "OFFLINE"
    if call is not None:
        return "ONCALL" if call.state in ("agent_answered", "contact_ringing", "bridged") else "RINGING"
    if row.ringing:
        return "RINGING"
    if not row.logged_in:
        return "LOGGED_OUT"
    return "PAUSED" if row.paused else "READY"


def _pause_name(pause_id):
    if pause_id is None:
        return None
    if pause_id in SYSTEM_PAUSES:
        return SYSTEM_PAUSES[pause_id]
    pause = db.session.get(Pause, int(pause_id)) if pause_id.isdigit() else None
    return pause.name if pause is not None else pause_id


def call_summary(call):
    campaign = db.session.get(Campaign, call.campaign_id) if call.campaign_id else None
    contact = contact_of_call(call, campaign)
    return {"id": call.id, "kind": call.kind, "state": call.state, "number": call.number,
            "campaign": call.campaign_id, "campaignName": campaign.name if campaign else None,
            "contact": contact.id if contact else None,
            "contactData": dict(contact.data) if contact else {}}


def _seconds_left(until):
    if until is None:
        return None
    if until.tzinfo is None:   # SQLite hands back naive UTC
        until = until.replace(tzinfo=timezone.utc)
    return max(0, math.ceil((until - utcnow()).total_seconds()))


def state(agent_id):
    row = db.session.get(AgentSession, agent_id)
    call = db.session.scalar(select(Call).where(Call.active_agent_id == agent_id))
    paused = bool(row and row.paused)
    return {"status": "OK", "state": _status(row, call),
            "online": bool(row and row.online), "logged_in": bool(row and row.logged_in),
            "paused": paused, "pause_id": row.pause_id if paused else None,
            "pause_name": _pause_name(row.pause_id) if paused else None,
            "acw_seconds_left": _seconds_left(row.pause_until) if paused else None,
            "call": call_summary(call) if call is not None else None}
