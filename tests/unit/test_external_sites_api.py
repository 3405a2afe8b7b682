"""External sites, authentications and webhooks over REST: shapes, validation, 404s, roles,
secrets never returned; the browser's crm_interaction; the provisioning keys."""
import uuid

import pytest

from oml_server.extensions import db
from oml_server.models import Campaign, DispositionOption, ExternalSite, Webhook
from oml_server.services import call_state, provisioning
from tests.stub_crm import StubCrm

SITE = {"nombre": "crm-pop", "url": "https://crm.example.com/call", "disparador": 3,
        "metodo": 2, "formato": 4}
AUTH = {"nombre": "crm-auth", "url": "https://crm.example.com/token", "username": "oml",
        "password": "s3cret", "duracion": 3600}


@pytest.fixture
def admin_headers(make):
    return make.headers(make.user("Administrador"))


def test_site_crud_in_omnileads_shapes(client, admin_headers):
    created = client.post("/api/v1/external_sites/create/", json=SITE, headers=admin_headers)
    assert created.status_code == 201
    site = created.get_json()["externalSite"]
    assert site == {"id": site["id"], "nombre": "crm-pop", "url": SITE["url"], "oculto": False,
                    "disparador": 3, "metodo": 2, "formato": 4, "objetivo": None,
                    "autenticacion": None}
    listed = client.get("/api/v1/external_sites/", headers=admin_headers).get_json()
    assert listed == {"status": "SUCCESS",
                      "message": "Se obtuvieron los sitios externos de forma exitosa",
                      "externalSites": [site]}
    assert client.get(f"/api/v1/external_sites/{site['id']}", headers=admin_headers) \
        .get_json()["externalSiteDetail"] == site
    hidden = client.put(f"/api/v1/external_sites/{site['id']}/hide/", headers=admin_headers)
    assert hidden.get_json()["externalSite"]["oculto"] is True
    shown = client.put(f"/api/v1/external_sites/{site['id']}/show/", headers=admin_headers)
    assert shown.get_json()["externalSite"]["oculto"] is False
    updated = client.put(f"/api/v1/external_sites/{site['id']}/update/", headers=admin_headers,
                         json={**SITE, "metodo": 1, "formato": None})
    assert updated.get_json()["externalSite"]["metodo"] == 1
    assert client.delete(f"/api/v1/external_sites/{site['id']}/delete/",
                         headers=admin_headers).status_code == 200
    assert client.get("/api/v1/external_sites/", headers=admin_headers).get_json()["externalSites"] == []


@pytest.mark.parametrize("body, field", [
    ({**SITE, "metodo": 1, "formato": 2}, "formato"),        # GET takes no format
    ({**SITE, "formato": None}, "formato"),                  # POST needs one
    ({**SITE, "objetivo": 1}, "objetivo"),                   # Servidor takes no target
    ({**SITE, "disparador": 1, "formato": 4, "objetivo": 2}, "objetivo"),   # nor does JSON
    ({**SITE, "disparador": 1, "formato": 2}, "objetivo"),   # the browser's need one
    ({**SITE, "disparador": 7}, "disparador"),
    ({**SITE, "url": "not a url"}, "url"),
    ({**SITE, "autenticacion": 999}, "autenticacion"),
])
def test_site_validation(client, admin_headers, body, field):
    answer = client.post("/api/v1/external_sites/create/", json=body, headers=admin_headers)
    assert answer.status_code == 400
    payload = answer.get_json()
    assert payload["status"] == "ERROR" and field in payload["errors"]


def test_duplicate_name_unknown_id_and_roles(client, make, admin_headers):
    assert client.post("/api/v1/external_sites/create/", json=SITE, headers=admin_headers).status_code == 201
    again = client.post("/api/v1/external_sites/create/", json=SITE, headers=admin_headers)
    assert again.status_code == 400 and "nombre" in again.get_json()["errors"]
    missing = client.get("/api/v1/external_sites/999/", headers={**admin_headers, "Accept-Language": "en"})
    assert missing.status_code == 404
    assert missing.get_json() == {"status": "ERROR", "message": "External site not found"}
    assert client.put("/api/v1/external_sites/999/hide/", headers=admin_headers).status_code == 404
    agent = make.headers(make.agent())
    assert client.get("/api/v1/external_sites/", headers=agent).status_code == 403
    supervisor = make.headers(make.user("Supervisor"))
    assert client.get("/api/v1/external_sites/", headers=supervisor).status_code == 200
    assert client.get("/api/v1/webhooks/", headers=supervisor).status_code == 403


def test_authentication_secrets_are_never_returned(client, admin_headers):
    created = client.post("/api/v1/external_site_authentications/create/", json=AUTH,
                          headers=admin_headers)
    assert created.status_code == 201
    auth = created.get_json()["externalSiteAuthentication"]
    assert "password" not in auth and "token" not in auth
    assert auth["campo_token"] == "token" and auth["ssl_estricto"] is True
    # An update without the password keeps it.
    client.put(f"/api/v1/external_site_authentications/{auth['id']}/update/",
               json={k: v for k, v in AUTH.items() if k != "password"}, headers=admin_headers)
    listed = client.get("/api/v1/external_site_authentications/", headers=admin_headers).get_json()
    assert "s3cret" not in str(listed)
    no_lifetime = client.post("/api/v1/external_site_authentications/create/", headers=admin_headers,
                              json={**AUTH, "nombre": "x", "duracion": 0})
    assert "campo_duracion" in no_lifetime.get_json()["errors"]


def test_the_authentication_test_endpoint_fetches_a_token(client, admin_headers):
    crm = StubCrm().up()
    try:
        ok = client.post("/api/v1/external_site_authentications/test/", headers=admin_headers,
                         json={**AUTH, "url": crm.url + "/token"})
        assert ok.status_code == 200 and ok.get_json()["status"] == "SUCCESS"
        created = client.post("/api/v1/external_site_authentications/create/", headers=admin_headers,
                              json={**AUTH, "url": crm.url + "/nothing-here"})
        pk = created.get_json()["externalSiteAuthentication"]["id"]
        crm.fail_next(404)
        bad = client.post(f"/api/v1/external_site_authentications/{pk}/test/", headers=admin_headers)
        assert bad.status_code == 400 and bad.get_json()["status"] == "ERROR"
        assert crm.token_fetches == 1
    finally:
        crm.down()


def test_webhooks_crud_and_filters(client, admin_headers):
    created = client.post("/api/v1/webhooks/", headers=admin_headers, json={
        "url": "https://crm.example.com/events", "events": ["call.*", "disposition.created"],
        "secret": "whsec-1"})
    assert created.status_code == 201
    hook = created.get_json()
    assert hook["signed"] is True and "secret" not in hook
    assert client.put(f"/api/v1/webhooks/{hook['id']}/", headers=admin_headers,
                      json={"url": hook["url"], "events": "*"}).get_json()["events"] == ["*"]
    assert db.session.get(Webhook, hook["id"]).secret == "whsec-1"   # kept
    bad = client.post("/api/v1/webhooks/", headers=admin_headers,
                      json={"url": "https://x.example.com", "events": ["call.exploded"]})
    assert bad.status_code == 400 and "events" in bad.get_json()["errors"]
    assert client.get("/api/v1/webhooks/999/deliveries/", headers=admin_headers).status_code == 404
    assert client.delete(f"/api/v1/webhooks/{hook['id']}/", headers=admin_headers).status_code == 204


def test_crm_interaction_gives_the_browser_its_configuration(client, make):
    agent = make.agent()
    contact_db = make.contact_database()
    contact = make.contact(contact_db, external_id="c-5")
    campaign = make.campaign(agents=[agent], database=contact_db)
    site = ExternalSite(nombre="crm-tab", url="https://crm.example.com/c/{1}", disparador=1,
                        metodo=2, formato=2, objetivo=2)
    db.session.add(site)
    db.session.flush()
    campaign.external_site_id = site.id
    campaign.crm_parameters = [{"name": "{1}", "type": "contact", "value": "id_ext"},
                               {"name": "tel", "type": "call", "value": "telefono"}]
    db.session.commit()
    call_id = uuid.uuid4().hex
    call_state.create(call_id, "click_to_call", agent_id=agent.agent.id, campaign_id=campaign.id,
                      contact_id=contact.id, number="351999")
    answer = client.get(f"/api/v1/calls/{call_id}/crm_interaction/", headers=make.headers(agent))
    assert answer.status_code == 200
    assert answer.get_json() == {"dispara_agente": True, "formato": "application/x-www-form-urlencoded",
                                 "formato_es_JSON": False, "url": "https://crm.example.com/c/c-5",
                                 "abre_pestana": True, "metodo": "POST",
                                 "parametros": {"tel": "351999"}}
    other = make.headers(make.agent())
    assert client.get(f"/api/v1/calls/{call_id}/crm_interaction/", headers=other).status_code == 404


def test_provisioning_writes_the_crm_keys(app, make):
    make.user("Agente", username="agent1")
    spec = {
        "external_site_authentications": [{"name": "crm-auth", "url": "https://crm.example.com/t",
                                           "username": "oml", "password": "pw", "duration": 3600}],
        "external_sites": [{"name": "crm-pop", "url": "https://crm.example.com/oml/call",
                            "trigger": "server", "method": "POST", "format": "json",
                            "authentication": "crm-auth", "signing_secret": "whsec-123"}],
        "webhooks": [{"url": "https://crm.example.com/oml/events",
                      "events": ["call.*", "disposition.created"], "secret": "whsec-456"}],
        "contact_databases": [{"name": "leads", "columns": ["TELEFONO", "id_ext"],
                               "main_phone": "TELEFONO", "external_id": "id_ext"}],
        "campaigns": [{"name": "sales", "database": "leads", "agents": ["agent1"],
                       "external_site": "crm-pop",
                       "crm_parameters": [{"name": "call", "type": "call", "value": "call_id"},
                                          {"name": "src", "type": "fixed", "value": "oml"}],
                       "disposition_options": [{"name": "Venta", "type": "engaged",
                                                "crm_interaction": True}]}],
    }
    provisioning.provision(spec)
    provisioning.provision(spec)   # twice: the same result
    site = db.session.scalars(db.select(ExternalSite)).one()
    assert (site.disparador, site.metodo, site.formato, site.objetivo) == (3, 2, 4, None)
    assert site.autenticacion.nombre == "crm-auth" and site.signing_secret == "whsec-123"
    campaign = db.session.scalars(db.select(Campaign)).one()
    assert campaign.external_site_id == site.id and campaign.crm_parameters[1]["value"] == "oml"
    assert db.session.scalars(db.select(DispositionOption)).one().crm_interaction is True
    assert db.session.scalars(db.select(Webhook)).one().events == ["call.*", "disposition.created"]
    with pytest.raises(provisioning.ProvisioningError, match="objetivo|target"):
        provisioning.provision({"external_sites": [{**spec["external_sites"][0], "target": "new_tab"}]})
    with pytest.raises(provisioning.ProvisioningError, match="crm_parameters"):
        provisioning.provision({**spec, "campaigns": [{**spec["campaigns"][0], "crm_parameters": [
            {"name": "x", "type": "call", "value": "nope"}]}]})
