"""The agent console's server side: the page at /agente/ (web session, es/en, only our own
resources), the phone library route, and the agent state it polls [extension]."""
import json
import re

from oml_server.extensions import db
from oml_server.models import Call
from oml_server.services import agent_presence
from tests.fake_telephony import fake_telephony  # noqa: F401 (fixture)
from tests.unit.test_web_session import web_login


def page_data(response):
    text = response.get_data(as_text=True)
    blob = re.search(r'<script id="console-data" type="application/json">(.*?)</script>', text, re.S)
    return json.loads(blob.group(1))


def test_console_needs_a_logged_in_agent(client, make):
    response = client.get("/agente/")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/accounts/login/?next=/agente/")
    web_login(client, make.user("Supervisor"))
    assert client.get("/agente").status_code == 302  # a supervisor has no phone here


def test_console_page_shows_the_agents_campaigns_and_pauses(app, client, make):
    agent = make.agent(first_name="Ana", last_name="Pérez")
    other = make.agent()
    mine = make.campaign(agents=[agent], name="ventas")
    make.campaign(agents=[other], name="ajena")
    make.campaign(agents=[agent], name="cerrada", state="finished")
    make.pause(name="Almuerzo")
    web_login(client, agent)
    response = client.get("/agente/")
    assert response.status_code == 200
    data = page_data(response)
    assert data["agentId"] == agent.agent.id and data["name"] == "Ana Pérez"
    assert [c["id"] for c in data["campaigns"]] == [mine.id]
    assert [p["name"] for p in data["pauses"]] == ["Almuerzo", "ACW"]
    assert data["sip"] == {"wsUrl": "ws://127.0.0.1:8088/ws", "domain": "127.0.0.1"}
    assert data["csrf"] == {"cookie": "csrftoken", "header": "X-CSRFToken"}
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "connect-src 'self' ws://127.0.0.1:8088/ws" in csp
    html = response.get_data(as_text=True)
    # Nothing the browser loads comes from elsewhere.
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "Consola de agente" in html and data["messages"]["state_READY"] == "Disponible"


def test_console_speaks_the_browsers_language(client, make):
    web_login(client, make.agent())
    response = client.get("/agente/", headers={"Accept-Language": "en-GB,en;q=0.9"})
    html = response.get_data(as_text=True)
    assert '<html lang="en">' in html and "Agent console" in html
    assert page_data(response)["messages"]["state_READY"] == "Ready"


def test_sip_websocket_url_follows_the_settings(app, client, make):
    web_login(client, make.agent())
    app.config["CONSOLE_SIP_WS_URL"] = "wss://pbx.example.org:8089/ws"
    try:
        data = page_data(client.get("/agente/"))
    finally:
        app.config["CONSOLE_SIP_WS_URL"] = ""
    assert data["sip"] == {"wsUrl": "wss://pbx.example.org:8089/ws", "domain": "pbx.example.org"}


def test_vendor_route_serves_only_the_phone_library(client, app, tmp_path):
    (tmp_path / "jssip.min.js").write_text("var JsSIP = {};")
    (tmp_path / "secret.txt").write_text("no")
    app.config["CONSOLE_VENDOR_DIR"] = str(tmp_path)
    try:
        response = client.get("/console-vendor/jssip.min.js")
        assert response.status_code == 200 and b"JsSIP" in response.data
        assert client.get("/console-vendor/secret.txt").status_code == 404
        assert client.get("/console-vendor/../config.py").status_code == 404
    finally:
        app.config["CONSOLE_VENDOR_DIR"] = ""


def set_session(user, **fields):
    row = agent_presence.session_for(user.agent.id)
    for name, value in fields.items():
        setattr(row, name, value)
    db.session.commit()


def get_state(client, make, user):
    response = client.get("/api/v1/agent/state/", headers=make.headers(user))
    assert response.status_code == 200
    return response.get_json()


def test_state_is_the_servers_truth(client, make, fake_telephony):
    agent = make.agent()
    pause = make.pause(name="Baño")
    assert get_state(client, make, agent)["state"] == "OFFLINE"
    set_session(agent, online=True)
    assert get_state(client, make, agent)["state"] == "LOGGED_OUT"
    client.post("/api/v1/asterisk_login/", headers=make.headers(agent))
    assert get_state(client, make, agent)["state"] == "READY"
    client.post("/api/v1/asterisk_pause/", headers=make.headers(agent), json={"pause_id": pause.id})
    body = get_state(client, make, agent)
    assert (body["state"], body["pause_id"], body["pause_name"]) == ("PAUSED", str(pause.id), "Baño")
    # A supervisor's pause (00) shows as such.
    client.post("/api/v1/asterisk_pause/", headers=make.headers(agent), json={"pause_id": "00"})
    assert get_state(client, make, agent)["pause_name"] == "Supervision"


def test_state_names_the_live_call_and_finds_the_caller_by_number(client, make):
    agent = make.agent()
    database = make.contact_database(columns=("TELEFONO", "NOMBRE"), external_id=None)
    campaign = make.campaign(agents=[agent], database=database, type="inbound", name="soporte")
    contact = make.contact(database, phone="5551234", NOMBRE="Carla")
    set_session(agent, online=True, logged_in=True)
    db.session.add(Call(id="c" * 32, kind="inbound", campaign_id=campaign.id, agent_id=agent.agent.id,
                        active_agent_id=agent.agent.id, number="5551234", state="agent_ringing"))
    db.session.commit()
    body = get_state(client, make, agent)
    assert body["state"] == "RINGING"
    assert body["call"] == {"id": "c" * 32, "kind": "inbound", "state": "agent_ringing",
                            "number": "5551234", "campaign": campaign.id, "campaignName": "soporte",
                            "contact": contact.id,
                            "contactData": {"TELEFONO": "5551234", "NOMBRE": "Carla"}}
    other = make.agent()
    assert get_state(client, make, other)["call"] is None  # only one's own call


def test_state_is_for_agents_only(client, make):
    supervisor = make.user("Supervisor")
    response = client.get("/api/v1/agent/state/", headers=make.headers(supervisor))
    assert response.status_code == 403
    assert client.get("/api/v1/agent/state/").status_code == 403


def test_every_string_the_script_shows_is_in_both_catalogues():
    import os
    from oml_server.services.agent_console import CATALOGUE_DIR, catalogue
    folder = os.path.dirname(CATALOGUE_DIR)
    script = "".join(open(os.path.join(folder, name), encoding="utf-8").read()
                     for name in sorted(os.listdir(folder)) if name.endswith(".js"))
    used = set(re.findall(r'\bt\("([a-z_]+)"\)', script))
    used |= set(re.findall(r'"([a-z]+_failed)"', script))  # session(action, fields, failure)
    used |= {f"state_{s}" for s in ("OFFLINE", "LOGGED_OUT", "READY", "PAUSED", "RINGING", "ONCALL")}
    for locale in ("es", "en"):
        assert used <= set(catalogue(locale)), (locale, used - set(catalogue(locale)))
    assert set(catalogue("es")) == set(catalogue("en"))


def _site(make, campaign, name, url, disparador, metodo, formato=None, objetivo=None):
    from oml_server.models import ExternalSite
    site = ExternalSite(nombre=name, url=url, disparador=disparador, metodo=metodo,
                        formato=formato, objetivo=objetivo)
    db.session.add(site)
    db.session.flush()
    campaign.external_site_id = site.id
    db.session.commit()
    return site


def test_csp_allows_exactly_the_crm_sites_the_browser_opens(client, make):
    agent, other = make.agent(), make.agent()
    campaigns = [make.campaign(agents=[agent]) for _ in range(6)]
    _site(make, campaigns[0], "framed-get", "https://crm.example.com:8443/pop/{1}?x=1", 2, 1, objetivo=1)
    _site(make, campaigns[1], "tab-post", "http://crm2.example.org/form", 1, 2, formato=2, objetivo=2)
    _site(make, campaigns[2], "json", "https://api.example.net/hook", 2, 2, formato=4)
    _site(make, campaigns[3], "server", "https://server.example.com/pop", 3, 2, formato=4)
    _site(make, campaigns[4], "tab-get", "https://tab.example.com/pop", 1, 1, objetivo=2)
    _site(make, campaigns[5], "placeholder-host", "https://{1}.example.com/pop", 2, 1, objetivo=1)
    _site(make, make.campaign(agents=[other]), "not-mine", "https://other.example.com/", 2, 1, objetivo=1)
    web_login(client, agent)
    response = client.get("/agente/")
    assert page_data(response)["crm"]["campaigns"] == sorted(c.id for c in (campaigns[0], campaigns[1], campaigns[2], campaigns[4], campaigns[5]))
    directives = dict(d.strip().split(" ", 1) for d in response.headers["Content-Security-Policy"].split(";"))
    assert directives["frame-src"] == "https://crm.example.com:8443"
    assert directives["form-action"] == "'self' http://crm2.example.org"
    assert directives["connect-src"] == "'self' ws://127.0.0.1:8088/ws https://api.example.net"
    assert directives["default-src"] == "'self'"


def test_csp_frames_nothing_without_sites(client, make):
    agent = make.agent()
    make.campaign(agents=[agent])
    web_login(client, agent)
    csp = client.get("/agente/").headers["Content-Security-Policy"]
    assert "frame-src 'none'" in csp and "form-action 'self';" not in csp and csp.endswith("form-action 'self'")


def test_crm_interaction_is_for_the_browsers_sites_only(client, make):
    import uuid
    from oml_server.services import call_state
    agent = make.agent()
    campaign = make.campaign(agents=[agent])
    site = _site(make, campaign, "server-site", "https://crm.example.com/pop", 3, 2, formato=4)
    call_id = uuid.uuid4().hex
    call_state.create(call_id, "click_to_call", agent_id=agent.agent.id, campaign_id=campaign.id,
                      number="351999")
    url = f"/api/v1/calls/{call_id}/crm_interaction/"
    assert client.get(url, headers=make.headers(agent)).status_code == 404   # the server sends it
    site.disparador = 2
    db.session.commit()
    body = client.get(url, headers=make.headers(agent)).get_json()
    assert body["dispara_agente"] is False and body["url"] == "https://crm.example.com/pop"


def test_crm_parameters_of_an_inbound_call_name_the_caller_found_by_number(client, make):
    import uuid
    from oml_server.services import call_state
    agent, mate = make.agent(username="ana"), make.agent(username="beto")
    database = make.contact_database(columns=("TELEFONO", "NOMBRE"), external_id=None)
    campaign = make.campaign(agents=[agent, mate], database=database, type="inbound")
    contact = make.contact(database, phone="5551234", NOMBRE="Carla")
    _site(make, campaign, "auto", "https://crm.example.com/pop", 2, 1, objetivo=1)
    campaign.crm_parameters = [{"name": "nombre", "type": "contact", "value": "NOMBRE"},
                               {"name": "id", "type": "call", "value": "id_contacto"},
                               {"name": "agent", "type": "call", "value": "agent_username"}]
    db.session.commit()
    call_id = uuid.uuid4().hex
    call_state.create(call_id, "inbound", agent_id=agent.agent.id, campaign_id=campaign.id,
                      number="5551234")
    url = f"/api/v1/calls/{call_id}/crm_interaction/"
    assert client.get(url, headers=make.headers(agent)).get_json()["parametros"] == {
        "nombre": "Carla", "id": contact.id, "agent": "ana"}
    # The agent it was transferred to asks: the parameters name that agent.
    db.session.get(Call, call_id).active_agent_id = mate.agent.id
    db.session.commit()
    assert client.get(url, headers=make.headers(mate)).get_json()["parametros"]["agent"] == "beto"


def test_transfer_targets_are_the_agents_colleagues(client, make):
    agent = make.agent(first_name="Ana")
    mate = make.agent(first_name="Beto")
    stranger = make.agent(first_name="Ciro")
    gone = make.agent(first_name="Dora")
    make.campaign(agents=[agent, mate, gone])
    make.campaign(agents=[stranger])
    make.campaign(agents=[agent, stranger], state="finished")
    gone.is_active = False
    db.session.commit()
    web_login(client, agent)
    assert page_data(client.get("/agente/"))["colleagues"] == [{"id": mate.agent.id, "name": "Beto"}]
