"""POST /api/v1/login (contract §2.1) and the token rules of §1.3."""
import pytest

from tests.factories import PASSWORD


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
