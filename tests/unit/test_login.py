"""POST /api/v1/login (contract §2.1) and the token rules of §1.3."""
import pytest

from oml_server.extensions import db

from tests.factories import PASSWORD

from .statements_sent import is_postgresql, statements_of


@pytest.mark.parametrize("path", ["/api/v1/login", "/api/v1/login/"])
def test_agent_login_returns_token_and_agent_id(client, make, path):
    agent = make.agent(first_name="Ana", last_name="Pérez", email="ana@example.com")
    response = client.post(path, json={"username": agent.username, "password": PASSWORD})
    assert response.status_code == 200
    body = response.get_json()
    assert body["user"] == {"first_name": "Ana", "last_name": "Pérez", "email": "ana@example.com",
                            "agent_id": agent.agent.id}
    assert body["expires_in"] == "32399.99"
    assert isinstance(body["token"], str) and body["token"]


def test_login_with_form_body(client, make):
    sup = make.user("Supervisor")
    response = client.post("/api/v1/login", data={"username": sup.username, "password": PASSWORD})
    assert response.status_code == 200
    assert "agent_id" not in response.get_json()["user"]


def test_bad_password_is_404(client, make):
    agent = make.agent()
    response = client.post("/api/v1/login", json={"username": agent.username, "password": "nope"})
    assert response.status_code == 404
    assert response.get_json() == {"detail": "Invalid Credentials or activate account"}


def test_missing_and_blank_fields(client):
    response = client.post("/api/v1/login", json={"password": ""})
    assert response.status_code == 400
    assert response.get_json() == {"username": ["Este campo es requerido."],
                                   "password": ["Este campo no puede estar en blanco."]}
    response = client.post("/api/v1/login", json={}, headers={"Accept-Language": "en"})
    assert response.get_json() == {"username": ["This field is required."],
                                   "password": ["This field is required."]}
    assert response.headers["Content-Language"] == "en"


def test_get_login_is_405_in_both_languages(client):
    response = client.get("/api/v1/login")
    assert response.status_code == 405
    assert response.get_json() == {"detail": 'Método "GET" no permitido.'}
    response = client.get("/api/v1/login", headers={"Accept-Language": "en"})
    assert response.get_json() == {"detail": 'Method "GET" not allowed.'}


def test_a_login_costs_two_statements_and_no_transaction_block(app, client, make):
    """The throttle's counters and the user (with its agent) are read in two statements,
    prepared on PostgreSQL; with no failures to clear, nothing is written. Each is atomic
    alone: on PostgreSQL no BEGIN, COMMIT or ROLLBACK goes with them (bench/README.md, round
    trips per request)."""
    agent = make.agent()
    username, agent_id = agent.username, agent.agent.id
    db.session.commit()   # the request then starts the session afresh, as in production
    response, sent = statements_of(lambda: client.post(
        "/api/v1/login", json={"username": username, "password": PASSWORD}))
    assert response.status_code == 200 and response.get_json()["user"]["agent_id"] == agent_id
    read = "EXECUTE" if is_postgresql(app) else "SELECT"
    assert [verb for verb, _ in sent] == [read, read]
    if is_postgresql(app):
        assert not any(in_block for _, in_block in sent), sent


def test_a_login_after_a_failure_clears_it_with_one_more_statement(app, client, make):
    username = make.agent().username
    assert client.post("/api/v1/login", json={"username": username,
                                              "password": "wrong"}).status_code == 404
    db.session.commit()
    response, sent = statements_of(lambda: client.post(
        "/api/v1/login", json={"username": username, "password": PASSWORD}))
    assert response.status_code == 200
    read = "EXECUTE" if is_postgresql(app) else "SELECT"
    assert [verb for verb, _ in sent] == [read, read, "DELETE"]
    if is_postgresql(app):
        assert not any(in_block for _, in_block in sent), sent
