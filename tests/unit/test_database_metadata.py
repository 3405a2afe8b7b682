"""POST /api/v1/campaign/database_metadata/ (contract §2.2)."""
import pytest

URL = "/api/v1/campaign/database_metadata/"
FIELDS = ["TELEFONO", "NOMBRE", "FECHA", "HORA", "id_ext"]
OK_BODY = {"status": "OK", "main_phone": "TELEFONO", "external_id": "id_ext", "fields": FIELDS}


def _error(field, message_es):
    return {"status": "ERROR", "message": "Hubo errores en los datos recibidos",
            "errors": {field: [message_es]}}


@pytest.mark.parametrize("path", [URL, URL.rstrip("/")])
@pytest.mark.parametrize("as_string", [False, True])
def test_member_agent_gets_metadata(client, make, path, as_string):
    agent = make.agent()
    campaign = make.campaign(agents=[agent])
    campaign_id = str(campaign.id) if as_string else campaign.id
    response = client.post(path, json={"idCampaign": campaign_id}, headers=make.headers(agent))
    assert response.status_code == 200
    assert response.get_json() == OK_BODY
    assert list(response.get_json()) == ["status", "main_phone", "external_id", "fields"]


def test_form_body_and_supervisor_of_campaign(client, make):
    supervisor = make.user("Supervisor")
    campaign = make.campaign(supervisors=[supervisor])
    response = client.post(URL, data={"idCampaign": str(campaign.id)}, headers=make.headers(supervisor))
    assert response.status_code == 200
    assert response.get_json() == OK_BODY


@pytest.mark.parametrize("role", ["Administrador", "Gerente", "Supervisor", "Referente"])
def test_every_non_agent_role_needs_to_be_a_supervisor_of_the_campaign(client, make, role):
    user = make.user(role)
    listed = make.campaign(supervisors=[user])
    other = make.campaign()
    assert client.post(URL, json={"idCampaign": listed.id}, headers=make.headers(user)).status_code == 200
    response = client.post(URL, json={"idCampaign": other.id}, headers=make.headers(user))
    assert response.status_code == 400
    assert response.get_json() == _error("idCampaign", "No tiene permiso para editar la campaña.")


def test_database_without_external_id_and_other_columns(client, make):
    agent = make.agent()
    database = make.contact_database(columns=("tel", "alt", "name"), main_phone="tel",
                                     other_phones=("alt",), external_id=None)
    campaign = make.campaign(agents=[agent], database=database)
    response = client.post(URL, json={"idCampaign": campaign.id}, headers=make.headers(agent))
    assert response.get_json() == {"status": "OK", "main_phone": "tel", "external_id": None,
                                   "fields": ["tel", "alt", "name"]}


def test_external_ids(client, make):
    agent = make.agent()
    system = make.external_system()
    other_system = make.external_system()
    campaign = make.campaign(agents=[agent], external_system=system, external_id="c1")
    headers = make.headers(agent)
    for system_id in (system.id, str(system.id)):
        response = client.post(URL, json={"idCampaign": "c1", "idExternalSystem": system_id},
                               headers=headers)
        assert response.status_code == 200
        assert response.get_json() == OK_BODY
    response = client.post(URL, data={"idCampaign": "c1", "idExternalSystem": str(system.id)},
                           headers=headers)
    assert response.get_json() == OK_BODY
    # The external id belongs to one system only; the internal id is not an external id.
    for body in ({"idCampaign": "c1", "idExternalSystem": other_system.id},
                 {"idCampaign": str(campaign.id), "idExternalSystem": system.id}):
        response = client.post(URL, json=body, headers=headers)
        assert response.status_code == 400
        assert response.get_json() == _error("idCampaign", "Campaña inexistente.")


def test_numeric_external_campaign_id(client, make):
    agent = make.agent()
    system = make.external_system()
    make.campaign(agents=[agent], external_system=system, external_id="77")
    response = client.post(URL, json={"idCampaign": 77, "idExternalSystem": system.id},
                           headers=make.headers(agent))
    assert response.get_json() == OK_BODY


@pytest.mark.parametrize("system_id", [999999, "999999", "abc", "", None, "1.5", -1, True, [1]])
def test_unknown_external_system(client, make, system_id):
    agent = make.agent()
    make.campaign(agents=[agent])
    response = client.post(URL, json={"idCampaign": "c1", "idExternalSystem": system_id},
                           headers=make.headers(agent))
    assert response.status_code == 400
    assert response.get_json() == _error("idExternalSystem", "Sistema externo inexistente.")
    response = client.post(URL, json={"idExternalSystem": system_id},
                           headers=make.headers(agent, lang="en"))
    assert response.get_json() == {"status": "ERROR", "message": "There were errors on received data",
                                   "errors": {"idExternalSystem": ["Unkown external system"]}}


@pytest.mark.parametrize("body", [{}, {"idCampaign": None}, {"idCampaign": "abc"},
                                  {"idCampaign": ""}, {"idCampaign": "1.5"}, {"idCampaign": 1.5},
                                  {"idCampaign": -3}, {"idCampaign": True}, {"idCampaign": [1]},
                                  {"idCampaign": {"a": 1}}, {"idCampaign": 10**30}])
def test_invalid_campaign_id(client, make, body):
    agent = make.agent()
    response = client.post(URL, json=body, headers=make.headers(agent))
    assert response.status_code == 400
    assert response.get_json() == _error("idCampaign", "Debe indicar un idCampaign válido.")
    response = client.post(URL, json=body, headers=make.headers(agent, lang="en"))
    assert response.get_json()["errors"] == {"idCampaign": ["You must provide a valid idCampaign"]}


def test_missing_external_campaign_id(client, make):
    agent = make.agent()
    system = make.external_system()
    response = client.post(URL, json={"idExternalSystem": system.id}, headers=make.headers(agent))
    assert response.status_code == 400
    assert response.get_json() == _error("idCampaign", "Debe indicar un idCampaign válido.")


@pytest.mark.parametrize("state", ["inactive", "paused", "finished"])
def test_only_active_campaigns_are_found(client, make, state):
    agent = make.agent()
    system = make.external_system()
    campaign = make.campaign(agents=[agent], state=state, external_system=system, external_id="x")
    for body in ({"idCampaign": campaign.id}, {"idCampaign": "x", "idExternalSystem": system.id}):
        response = client.post(URL, json=body, headers=make.headers(agent))
        assert response.status_code == 400
        assert response.get_json() == _error("idCampaign", "Campaña inexistente.")


def test_unknown_campaign_in_english(client, make):
    agent = make.agent()
    response = client.post(URL, json={"idCampaign": 424242}, headers=make.headers(agent, lang="en"))
    assert response.status_code == 400
    assert response.get_json() == {"status": "ERROR", "message": "There were errors on received data",
                                   "errors": {"idCampaign": ["Campaign not found"]}}
    assert response.headers["Content-Language"] == "en"


def test_agent_not_member(client, make):
    agent = make.agent()
    campaign = make.campaign(agents=[make.agent()])
    response = client.post(URL, json={"idCampaign": campaign.id}, headers=make.headers(agent))
    assert response.status_code == 400
    assert response.get_json() == _error("idCampaign", "No tiene permiso para editar la campaña.")
    response = client.post(URL, json={"idCampaign": campaign.id}, headers=make.headers(agent, "en"))
    assert response.get_json()["errors"] == {
        "idCampaign": ["You don't have permission to edit the campaign"]}


def test_checks_run_in_contract_order(client, make):
    """An unknown system wins over a bad id; a bad id over a missing campaign."""
    agent = make.agent()
    response = client.post(URL, json={"idCampaign": "zz", "idExternalSystem": 5555},
                           headers=make.headers(agent))
    assert response.get_json()["errors"] == {"idExternalSystem": ["Sistema externo inexistente."]}
    inactive_foreign = make.campaign(state="inactive")
    response = client.post(URL, json={"idCampaign": inactive_foreign.id}, headers=make.headers(agent))
    assert response.get_json()["errors"] == {"idCampaign": ["Campaña inexistente."]}


@pytest.mark.parametrize("raw,content_type", [(b"{not json", "application/json"),
                                              (b"[1, 2]", "application/json"),
                                              (b"idCampaign=1", "text/plain")])
def test_malformed_body_is_a_business_error(client, make, raw, content_type):
    agent = make.agent()
    response = client.post(URL, data=raw, content_type=content_type, headers=make.headers(agent))
    assert response.status_code == 400
    body = response.get_json()
    assert body["status"] == "ERROR"
    assert body["message"] == "Hubo errores en los datos recibidos"
    assert list(body["errors"]) == ["__all__"]


def test_authentication_and_method(client, make):
    response = client.post(URL, json={"idCampaign": 1})
    assert response.status_code == 403
    assert response.get_json() == {"detail": "Las credenciales de autenticación no se proveyeron."}
    response = client.get(URL, headers=make.headers(make.agent()))
    assert response.status_code == 405
    assert response.get_json() == {"detail": 'Método "GET" no permitido.'}
