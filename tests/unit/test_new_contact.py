"""POST /api/v1/new_contact/ (contract §2.3)."""
import threading

import pytest
from sqlalchemy import func, select

from oml_server.extensions import db
from oml_server.models import Contact

URL = "/api/v1/new_contact/"
DATA_ERRORS_ES = "Hubo errores en los datos recibidos"
DATA_ERRORS_EN = "There were errors on received data"
DUP_EXT_BODY = {"status": "ERROR", "message": DATA_ERRORS_ES,
                "errors": {"id_ext": ["Ya existe un contacto con ese id externo en la base de datos"]}}
DUP_PHONE_BODY = {"status": "ERROR", "message": DATA_ERRORS_ES,
                  "errors": {"__all__": ["Ya existe un contacto con el mismo teléfono."]}}


def _count(database):
    db.session.expire_all()
    return db.session.scalar(select(func.count(Contact.id)).where(Contact.database_id == database.id))


@pytest.fixture
def agent(make):
    return make.agent()


@pytest.fixture
def campaign(make, agent):
    return make.campaign(agents=[agent])


@pytest.mark.parametrize("path", [URL, URL.rstrip("/")])
def test_contact_added(client, make, agent, campaign, path):
    response = client.post(path, json={"idCampaign": campaign.id, "TELEFONO": "3511111111",
                                       "NOMBRE": "nombre"}, headers=make.headers(agent))
    assert response.status_code == 200
    body = response.get_json()
    assert list(body) == ["status", "message", "id", "contacto"]
    contact = db.session.get(Contact, body["id"])
    assert body == {"status": "OK", "message": "Contacto agregado", "id": contact.id,
                    "contacto": {"TELEFONO": "3511111111", "NOMBRE": "nombre", "FECHA": "",
                                 "HORA": "", "id_ext": None}}
    assert list(body["contacto"]) == ["TELEFONO", "NOMBRE", "FECHA", "HORA", "id_ext"]
    assert contact.database_id == campaign.database_id
    assert contact.main_phone == "3511111111" and contact.external_id is None
    assert contact.assigned_agent_id is None  # manual campaign: nobody is assigned


def test_form_body_string_ids_and_english(client, make, agent, campaign):
    response = client.post(URL, data={"idCampaign": str(campaign.id), "TELEFONO": "+5491155",
                                      "id_ext": "E-1", "HORA": "10:00"},
                           headers=make.headers(agent, lang="en"))
    assert response.status_code == 200
    body = response.get_json()
    assert body["message"] == "Contact added"
    assert body["contacto"] == {"TELEFONO": "+5491155", "NOMBRE": "", "FECHA": "", "HORA": "10:00",
                                "id_ext": "E-1"}
    assert db.session.get(Contact, body["id"]).external_id == "E-1"


def test_numbers_as_values(client, make, agent, campaign):
    response = client.post(URL, json={"idCampaign": str(campaign.id), "TELEFONO": 3512222222,
                                      "id_ext": 99}, headers=make.headers(agent))
    assert response.status_code == 200
    assert response.get_json()["contacto"]["TELEFONO"] == "3512222222"
    assert response.get_json()["contacto"]["id_ext"] == "99"


def test_external_ids(client, make, agent):
    system = make.external_system()
    campaign = make.campaign(agents=[agent], external_system=system, external_id="ext-c")
    response = client.post(URL, json={"idCampaign": "ext-c", "idExternalSystem": system.id,
                                      "TELEFONO": "351"}, headers=make.headers(agent))
    assert response.status_code == 200
    assert db.session.get(Contact, response.get_json()["id"]).database_id == campaign.database_id


@pytest.mark.parametrize("role", ["Administrador", "Gerente", "Supervisor"])
def test_supervisor_roles_of_the_campaign(client, make, role):
    user = make.user(role)
    campaign = make.campaign(supervisors=[user], type="preview")
    response = client.post(URL, json={"idCampaign": campaign.id, "TELEFONO": "3511111111"},
                           headers=make.headers(user))
    assert response.status_code == 200
    # Preview campaign, non-agent creator: the contact is assigned to no one.
    assert db.session.get(Contact, response.get_json()["id"]).assigned_agent_id is None


def test_referente_may_not_create_contacts(client, make):
    user = make.user("Referente")
    campaign = make.campaign(supervisors=[user])
    response = client.post(URL, json={"idCampaign": campaign.id, "TELEFONO": "351"},
                           headers=make.headers(user))
    assert response.status_code == 403
    assert response.get_json() == {"detail": "Usted no tiene permiso para realizar esta acción."}


def test_preview_campaign_assigns_the_calling_agent(client, make, agent):
    campaign = make.campaign(agents=[agent], type="preview")
    response = client.post(URL, json={"idCampaign": campaign.id, "TELEFONO": "351"},
                           headers=make.headers(agent))
    assert response.status_code == 200
    assert db.session.get(Contact, response.get_json()["id"]).assigned_agent_id == agent.agent.id


def test_campaign_checks_of_database_metadata(client, make, agent, campaign):
    headers = make.headers(agent)
    cases = [
        ({"idCampaign": "c", "idExternalSystem": "nope", "TELEFONO": "351"},
         {"idExternalSystem": ["Sistema externo inexistente."]}),
        ({"TELEFONO": "351"}, {"idCampaign": ["Debe indicar un idCampaign válido."]}),
        ({"idCampaign": "x1", "TELEFONO": "351"}, {"idCampaign": ["Debe indicar un idCampaign válido."]}),
        ({"idCampaign": campaign.id + 100, "TELEFONO": "351"}, {"idCampaign": ["Campaña inexistente."]}),
        ({"idCampaign": make.campaign().id, "TELEFONO": "351"},
         {"idCampaign": ["No tiene permiso para editar la campaña."]}),
    ]
    for body, errors in cases:
        response = client.post(URL, json=body, headers=headers)
        assert response.status_code == 400
        assert response.get_json() == {"status": "ERROR", "message": DATA_ERRORS_ES, "errors": errors}
    inactive = make.campaign(agents=[agent], state="inactive")
    response = client.post(URL, json={"idCampaign": inactive.id, "TELEFONO": "351"}, headers=headers)
    assert response.get_json()["errors"] == {"idCampaign": ["Campaña inexistente."]}
    assert _count(campaign.database) == 0


def test_unknown_fields_are_a_list(client, make, agent, campaign):
    response = client.post(URL, json={"idCampaign": campaign.id, "FOO": 1, "TELEFONO": "351", "BAR": ""},
                           headers=make.headers(agent))
    assert response.status_code == 400
    assert response.get_json() == {"status": "ERROR", "message": "Se recibieron campos incorrectos",
                                   "errors": ["FOO", "BAR"]}
    response = client.post(URL, json={"idCampaign": campaign.id, "FOO": 1},
                           headers=make.headers(agent, lang="en"))
    assert response.get_json() == {"status": "ERROR", "message": "Incorrect fields were received",
                                   "errors": ["FOO"]}


def test_confirmar_duplicado_is_tolerated(client, make, agent, campaign):
    response = client.post(URL, data={"idCampaign": campaign.id, "TELEFONO": "351",
                                      "confirmar_duplicado": "true"}, headers=make.headers(agent))
    assert response.status_code == 200
    assert "confirmar_duplicado" not in response.get_json()["contacto"]


@pytest.mark.parametrize("phone", [None, "", "   "])
def test_main_phone_missing_is_a_string(client, make, agent, campaign, phone):
    body = {"idCampaign": campaign.id, "NOMBRE": "x"}
    if phone is not None:
        body["TELEFONO"] = phone
    response = client.post(URL, json=body, headers=make.headers(agent))
    assert response.status_code == 400
    assert response.get_json() == {"status": "ERROR", "message": "El campo es obligatorio",
                                   "errors": "TELEFONO"}
    response = client.post(URL, json=body, headers=make.headers(agent, lang="en"))
    assert response.get_json()["message"] == "The field is required"
    assert _count(campaign.database) == 0


def test_every_phone_column_is_checked(client, make, agent):
    database = make.contact_database(columns=("tel", "cel", "name", "ext"), main_phone="tel",
                                     other_phones=("cel",), external_id="ext")
    campaign = make.campaign(agents=[agent], database=database)
    response = client.post(URL, json={"idCampaign": campaign.id, "tel": "12", "cel": "abc123"},
                           headers=make.headers(agent))
    assert response.status_code == 400
    message = 'Solo se permiten de 3-25 dígitos y puede comenzar con "+".'
    assert response.get_json() == {"status": "ERROR", "message": DATA_ERRORS_ES,
                                   "errors": {"tel": [message], "cel": [message]}}
    response = client.post(URL, json={"idCampaign": campaign.id, "tel": "1" * 26},
                           headers=make.headers(agent, lang="en"))
    assert response.get_json() == {"status": "ERROR", "message": DATA_ERRORS_EN, "errors": {
        "tel": ['Only 3-25 digits allowed and can begin with "+".']}}
    # An empty secondary phone is fine.
    response = client.post(URL, json={"idCampaign": campaign.id, "tel": "+" + "1" * 25, "cel": ""},
                           headers=make.headers(agent))
    assert response.status_code == 200


def test_odd_values_are_field_errors_not_500(client, make, agent, campaign):
    response = client.post(URL, json={"idCampaign": campaign.id, "TELEFONO": "351",
                                      "NOMBRE": {"a": 1}, "id_ext": "x" * 129},
                           headers=make.headers(agent))
    assert response.status_code == 400
    body = response.get_json()
    assert body["status"] == "ERROR" and body["message"] == DATA_ERRORS_ES
    assert set(body["errors"]) == {"NOMBRE", "id_ext"}
    assert _count(campaign.database) == 0


def test_duplicate_external_id_same_database_only(client, make, agent, campaign):
    headers = make.headers(agent)
    make.contact(campaign.database, phone="111", external_id="E1")
    response = client.post(URL, json={"idCampaign": campaign.id, "TELEFONO": "222", "id_ext": "E1"},
                           headers=headers)
    assert response.status_code == 400
    assert response.get_json() == DUP_EXT_BODY
    response = client.post(URL, json={"idCampaign": campaign.id, "TELEFONO": "222", "id_ext": "E1"},
                           headers=make.headers(agent, lang="en"))
    assert response.get_json()["errors"] == {
        "id_ext": ["A contact with that external id already exist in database"]}
    other = make.campaign(agents=[agent])
    response = client.post(URL, json={"idCampaign": other.id, "TELEFONO": "222", "id_ext": "E1"},
                           headers=headers)
    assert response.status_code == 200
    # Contacts without an external id never collide.
    for _ in range(2):
        response = client.post(URL, json={"idCampaign": campaign.id, "TELEFONO": "333", "id_ext": ""},
                               headers=headers)
        assert response.status_code == 200


def test_duplicate_phone_only_where_the_campaign_forbids_it(client, make, agent):
    headers = make.headers(agent)
    allowing = make.campaign(agents=[agent])
    forbidding = make.campaign(agents=[agent], allow_duplicate_phones=False)
    for _ in range(2):
        response = client.post(URL, json={"idCampaign": allowing.id, "TELEFONO": "3511111111"},
                               headers=headers)
        assert response.status_code == 200
    body = {"idCampaign": forbidding.id, "TELEFONO": "3511111111"}
    assert client.post(URL, json=body, headers=headers).status_code == 200
    response = client.post(URL, json=body, headers=headers)
    assert response.status_code == 400
    assert response.get_json() == DUP_PHONE_BODY
    response = client.post(URL, json=body, headers=make.headers(agent, lang="en"))
    assert response.get_json()["errors"] == {"__all__": ["A contact with that phone number already exists."]}
    assert _count(forbidding.database) == 1


def test_external_id_is_checked_before_phone(client, make, agent):
    campaign = make.campaign(agents=[agent], allow_duplicate_phones=False)
    body = {"idCampaign": campaign.id, "TELEFONO": "3511111111", "id_ext": "A"}
    assert client.post(URL, json=body, headers=make.headers(agent)).status_code == 200
    response = client.post(URL, json=body, headers=make.headers(agent))
    assert response.get_json() == DUP_EXT_BODY


@pytest.mark.parametrize("raw,content_type", [(b"{broken", "application/json"),
                                              (b'"text"', "application/json"),
                                              (b"TELEFONO=1", "text/csv")])
def test_malformed_body_is_a_business_error(client, make, agent, raw, content_type):
    response = client.post(URL, data=raw, content_type=content_type, headers=make.headers(agent))
    assert response.status_code == 400
    body = response.get_json()
    assert body["status"] == "ERROR" and body["message"] == DATA_ERRORS_ES
    assert list(body["errors"]) == ["__all__"]


def test_no_credentials_and_method(client, make, agent):
    response = client.post(URL, json={})
    assert response.status_code == 403
    response = client.put(URL, json={}, headers=make.headers(agent, lang="en"))
    assert response.status_code == 405
    assert response.get_json() == {"detail": 'Method "PUT" not allowed.'}


THREADS = 50


def _race(app, headers, body):
    """POST `body` from THREADS threads at once, each with its own client; the responses."""
    barrier = threading.Barrier(THREADS)
    results = [None] * THREADS

    def worker(i):
        client = app.test_client()
        barrier.wait()
        response = client.post(URL, json=body, headers=headers)
        results[i] = (response.status_code, response.get_json())

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_concurrent_duplicate_external_id(app, make, agent, campaign):
    body = {"idCampaign": campaign.id, "TELEFONO": "3511111111", "id_ext": "RACE"}
    results = _race(app, make.headers(agent), body)
    oks = [r for r in results if r[0] == 200]
    assert len(oks) == 1, results
    assert all(r == (400, DUP_EXT_BODY) for r in results if r[0] != 200), results
    assert _count(campaign.database) == 1


def test_concurrent_duplicate_phone(app, make, agent):
    campaign = make.campaign(agents=[agent], allow_duplicate_phones=False)
    body = {"idCampaign": campaign.id, "TELEFONO": "3519999999"}
    results = _race(app, make.headers(agent), body)
    oks = [r for r in results if r[0] == 200]
    assert len(oks) == 1, results
    assert all(r == (400, DUP_PHONE_BODY) for r in results if r[0] != 200), results
    assert _count(campaign.database) == 1
