"""POST /api/v1/makeCall/ (contract §2.4) and POST /api/v1/hangupCall/ (§2.10).

Always HTTP 200. The telephony engine is a fake backend (tests/fake_telephony.py): it checks
the hand-off of the committed call row, and the failure path.
"""
import re
import threading

import pytest
from sqlalchemy import func, select

from oml_server import messages as M
from oml_server.extensions import db
from oml_server.models import Call, Event, ThrottleEvent
from oml_server.services import telephony
from oml_server.services.telephony import CallNotPlaced
from tests.fake_telephony import FakeTelephony, fake_telephony  # noqa: F401 (fixture)

from .statements_sent import is_postgresql, statements_of

DATA_ERRORS_ES = "Hubo errores en los datos recibidos"
DATA_ERRORS_EN = "There were errors on received data"
REQUIRED_ES = "Este campo es requerido."
REQUIRED_EN = "This field is required."
CHOICE_ES = "Escoja una opción válida. Esa opción no está entre las disponibles."
CHOICE_EN = "Select a valid choice. That choice is not one of the available choices."
PHONE_ES = 'Solo se permiten de 3-25 dígitos y puede comenzar con "+".'
PHONE_EN = 'Only 3-25 digits allowed and can begin with "+".'
BUSY_ES = "El agente ya está en una llamada."
BUSY_EN = "The agent is already on a call."


@pytest.fixture
def world(make):
    """An agent in a campaign whose database holds one contact."""
    agent = make.agent()
    campaign = make.campaign(agents=[agent])
    contact = make.contact(campaign.database, phone="3511111111", external_id="ext-1")
    return agent, campaign, contact


def call(client, make, user, body=None, lang=None, path="/api/v1/makeCall/", form=False):
    kwargs = {"data": body} if form else {"json": body}
    response = client.post(path, headers=make.headers(user, lang), **kwargs)
    assert response.status_code == 200
    return response.get_json()


def field_errors(errors, lang=None):
    return {"status": "ERROR", "message": DATA_ERRORS_EN if lang == "en" else DATA_ERRORS_ES,
            "errors": errors}


def calls():
    db.session.expire_all()
    return list(db.session.scalars(select(Call).order_by(Call.created_at)))


# --- success: the row and the hand-off -------------------------------------------------------

@pytest.mark.parametrize("path", ["/api/v1/makeCall/", "/api/v1/makeCall"])
def test_ok_writes_the_call_and_hands_it_to_the_engine(client, make, world, fake_telephony, path):
    agent, campaign, contact = world
    body = call(client, make, agent, {"idCampaign": campaign.id, "idAgent": agent.agent.id,
                                      "phone": "3512222222", "idContact": contact.id}, path=path)
    assert body == {"status": "OK", "callId": body["callId"]}
    assert re.fullmatch(r"[0-9a-f]{32}", body["callId"])
    [row] = calls()
    assert (row.id, row.kind, row.state, row.agent_id, row.campaign_id, row.contact_id,
            row.number, row.active_agent_id) == (body["callId"], "click_to_call", "requested",
                                                 agent.agent.id, campaign.id, contact.id,
                                                 "3512222222", agent.agent.id)
    assert fake_telephony.placed == [{"id": row.id, "state": "requested", "agent": agent.agent.id,
                                      "campaign": campaign.id, "contact": contact.id,
                                      "number": "3512222222", "active_agent_id": agent.agent.id}]


def test_the_call_its_event_and_its_count_are_written_together(app, client, make, world,
                                                               fake_telephony):
    """The row, its `call.requested` event and the agent's makeCall count, on both databases;
    on PostgreSQL the request sends three statements, none in a transaction block: the token
    check, the checks, and the call with its event and count (it was BEGIN, the two reads, the
    count, the prune, the new count, the row, the event, COMMIT)."""
    agent, campaign, contact = world
    headers, body = make.headers(agent), {"idCampaign": campaign.id, "idAgent": agent.agent.id,
                                          "phone": "3512222222", "idContact": contact.id}
    agent_id, campaign_id = agent.agent.id, campaign.id
    db.session.commit()
    response, sent = statements_of(lambda: client.post("/api/v1/makeCall/", headers=headers,
                                                       json=body))
    call_id = response.get_json()["callId"]
    [event] = db.session.scalars(select(Event).where(Event.call_id == call_id))
    assert (event.type, event.agent_id, event.campaign_id, event.data) == (
        "call.requested", agent_id, campaign_id,
        {"state": "requested", "kind": "click_to_call", "number": "3512222222"})
    [row] = calls()
    assert row.created_at is not None and row.node == "local"
    assert db.session.scalar(select(func.count(ThrottleEvent.id)).where(
        ThrottleEvent.key == f"call:{agent_id}")) == 1
    if is_postgresql(app):
        assert len(sent) == 3 and not any(in_block for _, in_block in sent), sent


def test_ok_with_form_body_and_string_ids(client, make, world, fake_telephony):
    agent, campaign, contact = world
    body = call(client, make, agent, {"idCampaign": str(campaign.id), "idAgent": str(agent.agent.id),
                                      "phone": "+5493511234567", "idContact": str(contact.id)},
                form=True)
    assert body["status"] == "OK"
    assert calls()[0].number == "+5493511234567"


def test_contact_is_optional_and_phone_may_be_a_number(client, make, world, fake_telephony):
    agent, campaign, _ = world
    body = call(client, make, agent, {"idCampaign": campaign.id, "idAgent": agent.agent.id,
                                      "phone": 3513333333, "idContact": ""})
    assert body["status"] == "OK"
    [row] = calls()
    assert row.contact_id is None and row.number == "3513333333"


@pytest.mark.parametrize("keys", [("idContacto",), ("idContact", "idContacto")])
def test_idcontacto_is_accepted(client, make, world, fake_telephony, keys):
    agent, campaign, contact = world
    body = {"idCampaign": campaign.id, "idAgent": agent.agent.id, "phone": "3512222222"}
    body.update({key: contact.id for key in keys})
    body[keys[-1]] = str(contact.id)  # the same id, once as a string
    assert call(client, make, agent, body)["status"] == "OK"
    assert calls()[0].contact_id == contact.id


def test_idcontact_and_idcontacto_must_agree(client, make, world, fake_telephony):
    agent, campaign, contact = world
    other = make.contact(campaign.database, phone="3519999999")
    body = {"idCampaign": campaign.id, "idAgent": agent.agent.id, "phone": "3512222222",
            "idContact": contact.id, "idContacto": other.id}
    assert call(client, make, agent, body) == field_errors({"idContacto": [CHOICE_ES]})
    assert call(client, make, agent, body, "en") == field_errors({"idContacto": [CHOICE_EN]}, "en")
    assert calls() == [] and fake_telephony.placed == []


# --- failure to place the call ---------------------------------------------------------------

def test_without_an_engine_the_call_is_refused_and_marked_failed(client, make, world):
    agent, campaign, _ = world
    request = {"idCampaign": campaign.id, "idAgent": agent.agent.id, "phone": "3512222222"}
    assert call(client, make, agent, request) == {
        "status": "ERROR", "message": "Error al ejecutar la llamada",
        "errors": ["Las llamadas no están habilitadas en este servidor."]}
    assert call(client, make, agent, request, "en") == {
        "status": "ERROR", "message": "Error when executing the call",
        "errors": ["Calls are not enabled on this server."]}
    rows = calls()
    assert len(rows) == 2  # the first failure freed the agent: the second was not "busy"
    for row in rows:
        assert (row.state, row.reason, row.active_agent_id) == \
            ("failed", "Calls are not enabled on this server.", None)
        assert row.ended_at is not None


def test_engine_refusal_reason_is_shown_and_stored(client, make, world):
    agent, campaign, _ = world
    fake = FakeTelephony(place_error=CallNotPlaced(M.AGENT_OFFLINE))
    previous = telephony.set_backend(fake)
    try:
        body = call(client, make, agent, {"idCampaign": campaign.id, "idAgent": agent.agent.id,
                                          "phone": "3512222222"}, "en")
    finally:
        telephony.set_backend(previous)
    assert body == {"status": "ERROR", "message": "Error when executing the call",
                    "errors": ["The agent's phone is not registered."]}
    [row] = calls()
    assert fake.placed[0]["id"] == row.id and fake.placed[0]["state"] == "requested"
    assert (row.state, row.reason, row.active_agent_id) == \
        ("failed", "The agent's phone is not registered.", None)


def test_an_engine_crash_is_a_clean_error(client, make, world):
    agent, campaign, _ = world
    previous = telephony.set_backend(FakeTelephony(place_error=RuntimeError("boom")))
    try:
        body = call(client, make, agent, {"idCampaign": campaign.id, "idAgent": agent.agent.id,
                                          "phone": "3512222222"}, "en")
    finally:
        telephony.set_backend(previous)
    assert body == {"status": "ERROR", "message": "Error when executing the call",
                    "errors": ["The telephony server is not reachable."]}
    assert calls()[0].state == "failed" and calls()[0].active_agent_id is None


def test_a_second_live_call_for_the_agent_is_refused(client, make, world, fake_telephony):
    agent, campaign, _ = world
    request = {"idCampaign": campaign.id, "idAgent": agent.agent.id, "phone": "3512222222"}
    first = call(client, make, agent, request)
    assert first["status"] == "OK"
    assert call(client, make, agent, request) == {
        "status": "ERROR", "message": "Error al ejecutar la llamada", "errors": [BUSY_ES]}
    assert call(client, make, agent, request, "en") == {
        "status": "ERROR", "message": "Error when executing the call", "errors": [BUSY_EN]}
    assert [row.id for row in calls()] == [first["callId"]]
    assert len(fake_telephony.placed) == 1
    # A refused request still counts against the makeCall limit (a CRM looping on a busy agent).
    assert db.session.scalar(select(func.count(ThrottleEvent.id)).where(
        ThrottleEvent.key == f"call:{agent.agent.id}")) == 3


THREADS = 50  # racing requests (the hardening issue asks for at least 50)


def test_concurrent_calls_for_one_agent_one_wins(app, make, world, fake_telephony):
    agent, campaign, _ = world
    headers = make.headers(agent)
    request = {"idCampaign": campaign.id, "idAgent": agent.agent.id, "phone": "3512222222"}
    db.session.commit()
    barrier, results, lock = threading.Barrier(THREADS), [], threading.Lock()

    def worker():
        client = app.test_client()
        barrier.wait()
        response = client.post("/api/v1/makeCall/", json=request, headers=headers)
        with lock:
            results.append((response.status_code, response.get_json()))

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == THREADS
    assert all(status == 200 for status, _ in results)
    oks = [body for _, body in results if body["status"] == "OK"]
    busy = [body for _, body in results if body == {
        "status": "ERROR", "message": "Error al ejecutar la llamada", "errors": [BUSY_ES]}]
    assert len(oks) == 1 and len(busy) == THREADS - 1
    live = db.session.scalar(select(func.count()).select_from(Call)
                             .where(Call.active_agent_id == agent.agent.id))
    assert live == 1
    assert [row.id for row in calls()] == [oks[0]["callId"]]
    assert len(fake_telephony.placed) == 1


# --- field errors ----------------------------------------------------------------------------

def test_everything_missing(client, make, world, fake_telephony):
    agent = world[0]
    assert call(client, make, agent, {}) == field_errors(
        {"phone": [REQUIRED_ES], "idCampaign": [REQUIRED_ES], "idAgent": [REQUIRED_ES]})
    assert call(client, make, agent, {"phone": " ", "idCampaign": "", "idAgent": None}, "en") == \
        field_errors({"phone": [REQUIRED_EN], "idCampaign": [REQUIRED_EN],
                      "idAgent": [REQUIRED_EN]}, "en")
    assert calls() == []


def test_only_phone_missing(client, make, world, fake_telephony):
    agent, campaign, _ = world
    assert call(client, make, agent, {"idCampaign": campaign.id, "idAgent": agent.agent.id}) == \
        field_errors({"phone": [REQUIRED_ES]})


@pytest.mark.parametrize("phone", ["12", "abc", "+", "351-111-1111", "3" * 26, "++351111",
                                   "351 1111", True, [1, 2], {"a": 1}, 3.5])
def test_invalid_phone(client, make, world, fake_telephony, phone):
    agent, campaign, _ = world
    request = {"idCampaign": campaign.id, "idAgent": agent.agent.id, "phone": phone}
    assert call(client, make, agent, request) == field_errors({"phone": [PHONE_ES]})
    assert call(client, make, agent, request, "en") == field_errors({"phone": [PHONE_EN]}, "en")
    assert calls() == []


@pytest.mark.parametrize("phone", ["123", "+" + "9" * 25, " 3511111111 "])
def test_phone_limits(client, make, world, fake_telephony, phone):
    agent, campaign, _ = world
    assert call(client, make, agent, {"idCampaign": campaign.id, "idAgent": agent.agent.id,
                                      "phone": phone})["status"] == "OK"
    assert calls()[0].number == phone.strip()


def test_unknown_inactive_or_malformed_campaign(client, make, world, fake_telephony):
    agent, _, _ = world
    inactive = make.campaign(agents=[agent], state="inactive")
    for value in (99999, "abc", inactive.id, "1.5", -1, [1]):
        assert call(client, make, agent, {"idCampaign": value, "idAgent": agent.agent.id,
                                          "phone": "3512222222"}) == \
            field_errors({"idCampaign": [CHOICE_ES]}), value
    assert calls() == []


def test_agent_must_be_the_caller(client, make, world, fake_telephony):
    agent, campaign, _ = world
    colleague = make.agent()
    campaign.agents.append(colleague.agent)
    db.session.commit()
    for value in (colleague.agent.id, 99999, "x"):
        assert call(client, make, agent, {"idCampaign": campaign.id, "idAgent": value,
                                          "phone": "3512222222"}, "en") == \
            field_errors({"idAgent": [CHOICE_EN]}, "en"), value
    assert calls() == []


def test_agent_must_be_a_member(client, make, fake_telephony):
    agent = make.agent()
    campaign = make.campaign()
    assert call(client, make, agent, {"idCampaign": campaign.id, "idAgent": agent.agent.id,
                                      "phone": "3512222222"}) == \
        field_errors({"idAgent": ["El agente no participa en la campaña."]})
    assert call(client, make, agent, {"idCampaign": campaign.id, "idAgent": agent.agent.id,
                                      "phone": "3512222222"}, "en") == \
        field_errors({"idAgent": ["The agent is not related to campaign"]}, "en")


def test_contact_must_exist_and_belong_to_the_campaign(client, make, world, fake_telephony):
    agent, campaign, _ = world
    stranger = make.contact(make.contact_database())
    base = {"idCampaign": campaign.id, "idAgent": agent.agent.id, "phone": "3512222222"}
    assert call(client, make, agent, {**base, "idContact": 99999}) == \
        field_errors({"idContact": [CHOICE_ES]})
    assert call(client, make, agent, {**base, "idContacto": "nope"}) == \
        field_errors({"idContacto": [CHOICE_ES]})
    assert call(client, make, agent, {**base, "idContact": stranger.id}) == \
        field_errors({"idContact": ["El contacto no corresponde a la campaña."]})
    assert call(client, make, agent, {**base, "idContact": stranger.id}, "en") == \
        field_errors({"idContact": ["The contact is not related to campaign."]}, "en")
    assert calls() == []


def test_errors_of_every_field_at_once_in_form_order(client, make, fake_telephony):
    agent = make.agent()
    campaign = make.campaign()
    stranger = make.contact(make.contact_database())
    body = call(client, make, agent, {"idContact": stranger.id, "idAgent": agent.agent.id,
                                      "idCampaign": campaign.id, "phone": "1"})
    assert body == field_errors({"phone": [PHONE_ES],
                                 "idAgent": ["El agente no participa en la campaña."],
                                 "idContact": ["El contacto no corresponde a la campaña."]})
    assert list(body["errors"]) == ["phone", "idAgent", "idContact"]


def test_malformed_body_is_a_field_error(client, make, world, fake_telephony):
    agent = world[0]
    response = client.post("/api/v1/makeCall/", data="{oops", content_type="application/json",
                           headers=make.headers(agent))
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ERROR" and body["message"] == DATA_ERRORS_ES
    assert list(body["errors"]) == ["__all__"]


# --- external ids ----------------------------------------------------------------------------

@pytest.fixture
def external(make):
    system = make.external_system()
    agent = make.agent()
    make.link_agent(agent, system, "crm-agent-7")
    campaign = make.campaign(agents=[agent], external_system=system, external_id="crm-camp-1")
    contact = make.contact(campaign.database, external_id="crm-contact-9")
    return system, agent, campaign, contact


def test_external_ids(client, make, external, fake_telephony):
    system, agent, campaign, contact = external
    body = call(client, make, agent, {"idExternalSystem": system.id, "idCampaign": "crm-camp-1",
                                      "idAgent": "crm-agent-7", "idContact": "crm-contact-9",
                                      "phone": "3512222222"})
    assert body["status"] == "OK"
    [row] = calls()
    assert (row.campaign_id, row.agent_id, row.contact_id) == (campaign.id, agent.agent.id, contact.id)


def test_external_ids_as_form_and_unknown_contact_is_ignored(client, make, external, fake_telephony):
    system, agent, campaign, _ = external
    body = call(client, make, agent, {"idExternalSystem": str(system.id), "idCampaign": "crm-camp-1",
                                      "idAgent": "crm-agent-7", "idContacto": "no-such-contact",
                                      "phone": "3512222222"}, form=True)
    assert body["status"] == "OK"
    assert calls()[0].contact_id is None


@pytest.mark.parametrize("value", [99999, "abc", None, ""])
def test_unknown_external_system_is_the_only_error(client, make, external, fake_telephony, value):
    agent = external[1]
    assert call(client, make, agent, {"idExternalSystem": value}) == \
        field_errors({"idExternalSystem": ["Sistema externo inexistente."]})
    assert call(client, make, agent, {"idExternalSystem": value}, "en") == \
        field_errors({"idExternalSystem": ["Unkown external system"]}, "en")


def test_external_campaign_must_be_the_systems(client, make, external, fake_telephony):
    system, agent, campaign, _ = external
    # An internal id is not an external id; the agent is not looked at without a campaign.
    assert call(client, make, agent, {"idExternalSystem": system.id, "idCampaign": campaign.id,
                                      "idAgent": "unknown", "phone": "3512222222"}) == \
        field_errors({"idCampaign": [CHOICE_ES]})
    other = make.external_system()
    assert call(client, make, agent, {"idExternalSystem": other.id, "idCampaign": "crm-camp-1",
                                      "idAgent": "crm-agent-7", "phone": "3512222222"}) == \
        field_errors({"idCampaign": [CHOICE_ES]})
    assert call(client, make, agent, {"idExternalSystem": system.id,
                                      "phone": "3512222222"}) == \
        field_errors({"idCampaign": [REQUIRED_ES], "idAgent": [REQUIRED_ES]})


def test_external_agent_checks(client, make, external, fake_telephony):
    system, agent, campaign, _ = external
    base = {"idExternalSystem": system.id, "idCampaign": "crm-camp-1", "phone": "3512222222"}
    assert call(client, make, agent, {**base, "idAgent": "nobody"}) == \
        field_errors({"idAgent": ["El agente no corresponde al sistema externo."]})
    assert call(client, make, agent, {**base, "idAgent": "nobody"}, "en") == \
        field_errors({"idAgent": ["The agent is not related to external system."]}, "en")
    colleague = make.agent()
    make.link_agent(colleague, system, "crm-agent-8")
    assert call(client, make, agent, {**base, "idAgent": "crm-agent-8"}) == \
        field_errors({"idAgent": [CHOICE_ES]})
    loner = make.agent()
    make.link_agent(loner, system, "crm-agent-9")
    assert call(client, make, loner, {**base, "idAgent": "crm-agent-9"}) == \
        field_errors({"idAgent": ["El agente no participa en la campaña."]})
    assert calls() == []


# --- framework-level answers -----------------------------------------------------------------

def test_agents_only_post_only(client, make, world):
    supervisor = make.user("Supervisor")
    response = client.post("/api/v1/makeCall/", json={}, headers=make.headers(supervisor))
    assert response.status_code == 403
    assert response.get_json() == {"detail": "Usted no tiene permiso para realizar esta acción."}
    response = client.post("/api/v1/makeCall/", json={})
    assert response.status_code == 403
    response = client.get("/api/v1/makeCall/", headers=make.headers(world[0], "en"))
    assert response.status_code == 405
    assert response.get_json() == {"detail": 'Method "GET" not allowed.'}


# --- hangupCall ------------------------------------------------------------------------------

def test_hangup_hands_the_live_call_to_the_engine(client, make, world, fake_telephony):
    agent, campaign, _ = world
    call_id = call(client, make, agent, {"idCampaign": campaign.id, "idAgent": agent.agent.id,
                                         "phone": "3512222222"})["callId"]
    response = client.post("/api/v1/hangupCall", headers=make.headers(agent))
    assert response.status_code == 200 and response.get_json() == {"status": "OK"}
    assert fake_telephony.hung_up == [call_id]


def test_hangup_without_a_live_call_is_error(client, make, world, fake_telephony):
    agent = world[0]
    response = client.post("/api/v1/hangupCall/", headers=make.headers(agent))
    assert response.status_code == 200 and response.get_json() == {"status": "ERROR"}
    assert fake_telephony.hung_up == []


def test_hangup_failure_in_the_engine_is_error(client, make, world):
    agent, campaign, _ = world
    fake = FakeTelephony(hangup_error=ConnectionError("ARI down"))
    previous = telephony.set_backend(fake)
    try:
        call(client, make, agent, {"idCampaign": campaign.id, "idAgent": agent.agent.id,
                                   "phone": "3512222222"})
        response = client.post("/api/v1/hangupCall/", headers=make.headers(agent))
    finally:
        telephony.set_backend(previous)
    assert response.get_json() == {"status": "ERROR"}
    assert calls()[0].active_agent_id == agent.agent.id  # still live: the engine reconciles it


def test_hangup_without_an_engine_ends_the_row(client, make, world):
    agent, campaign, _ = world
    db.session.add(Call(id="c" * 32, kind="click_to_call", state="bridged", agent_id=agent.agent.id,
                        active_agent_id=agent.agent.id, campaign_id=campaign.id, number="351"))
    db.session.commit()
    response = client.post("/api/v1/hangupCall/", headers=make.headers(agent))
    assert response.get_json() == {"status": "OK"}
    [row] = calls()
    assert row.state == "ended" and row.active_agent_id is None and row.ended_at is not None
    response = client.post("/api/v1/hangupCall/", headers=make.headers(agent))
    assert response.get_json() == {"status": "ERROR"}


def test_hangup_is_for_agents_and_post_only(client, make, world):
    response = client.post("/api/v1/hangupCall/", headers=make.headers(make.user("Gerente")))
    assert response.status_code == 403
    response = client.get("/api/v1/hangupCall/", headers=make.headers(world[0]))
    assert response.status_code == 405
