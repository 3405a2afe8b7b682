"""Authentication and its failures (contract §1.3): every failure a 403 with DRF's detail."""
import time

import jwt
import pytest

from oml_server.extensions import db
from oml_server.services import users
from tests.factories import PASSWORD

PROTECTED = "/api/v1/disposition/"  # any agent endpoint


def detail(response):
    assert response.status_code == 403, response.get_data(as_text=True)
    return response.get_json()["detail"]


def test_token_from_login_opens_agent_endpoints(client, make):
    agent = make.agent()
    token = client.post("/api/v1/login", json={"username": agent.username,
                                                "password": PASSWORD}).get_json()["token"]
    assert client.get(PROTECTED, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.get(PROTECTED, headers={"Authorization": f"bearer {token}"}).status_code == 200


@pytest.mark.parametrize("lang,expected", [
    (None, "Las credenciales de autenticación no se proveyeron."),
    ("en", "Authentication credentials were not provided."),
])
def test_no_credentials(client, lang, expected):
    headers = {"Accept-Language": lang} if lang else {}
    assert detail(client.get(PROTECTED, headers=headers)) == expected


def test_token_keyword_is_not_ours(client, make):
    agent = make.agent()
    headers = {"Authorization": f"Token {make.token(agent)}"}
    assert detail(client.get(PROTECTED, headers=headers)) == \
        "Las credenciales de autenticación no se proveyeron."


@pytest.mark.parametrize("header,es,en", [
    ("Bearer", "Cabecera token inválida. Las credenciales no fueron suministradas.",
     "Invalid token header. No credentials provided."),
    ("Bearer abc def", "Cabecera token inválida. La cadena token no debe contener espacios.",
     "Invalid token header. Token string should not contain spaces."),
])
def test_malformed_bearer_headers(client, header, es, en):
    assert detail(client.get(PROTECTED, headers={"Authorization": header})) == es
    assert detail(client.get(PROTECTED, headers={"Authorization": header,
                                                 "Accept-Language": "en"})) == en


def test_forged_and_garbage_tokens(client, make, app):
    agent = make.agent()
    forged = jwt.encode({"sub": str(agent.id), "tv": 0, "type": "access", "exp": time.time() + 60},
                        "not-our-key", algorithm="HS256")
    none_alg = jwt.encode({"sub": str(agent.id), "tv": 0, "type": "access"}, None, algorithm="none")
    other_alg = jwt.encode({"sub": str(agent.id), "tv": 0, "type": "access", "exp": time.time() + 60},
                           app.config["JWT_SECRET_KEY"], algorithm="HS512")
    for token in (forged, none_alg, other_alg, "garbage"):
        assert detail(client.get(PROTECTED, headers={"Authorization": f"Bearer {token}"})) == "Invalid Token"


def test_token_expires_absolutely(client, make, app):
    agent = make.agent()
    # `exp` is whole seconds: a 1 s token made late in a second lived a few milliseconds
    # (the first request failed now and then); a 2 s one lives more than 1 s, at most 2.
    app.config["TOKEN_EXPIRED_AFTER_SECONDS"] = 2
    try:
        headers = make.headers(agent)
    finally:
        app.config["TOKEN_EXPIRED_AFTER_SECONDS"] = 32400
    assert client.get(PROTECTED, headers=headers).status_code == 200
    time.sleep(2.1)
    assert detail(client.get(PROTECTED, headers=headers)) == "The Token is expired"


def test_login_reports_configured_lifetime(client, make, app):
    agent = make.agent()
    app.config["TOKEN_EXPIRED_AFTER_SECONDS"] = 60
    try:
        body = client.post("/api/v1/login", json={"username": agent.username,
                                                   "password": PASSWORD}).get_json()
    finally:
        app.config["TOKEN_EXPIRED_AFTER_SECONDS"] = 32400
    assert body["expires_in"] == "59.99"


def test_deactivated_user_is_cut_off_at_once(client, make):
    agent = make.agent()
    headers = make.headers(agent)
    agent.is_active = False
    db.session.commit()
    assert detail(client.get(PROTECTED, headers=headers)) == "User is not active"
    response = client.post("/api/v1/login", json={"username": agent.username, "password": PASSWORD})
    assert response.status_code == 404
    assert response.get_json() == {"detail": "Invalid Credentials or activate account"}


def test_password_change_cuts_older_tokens(client, make):
    agent = make.agent()
    old = make.headers(agent)
    users.set_password(agent, "a-new-password")
    db.session.commit()
    assert detail(client.get(PROTECTED, headers=old)) == "Invalid Token"
    assert client.get(PROTECTED, headers=make.headers(agent)).status_code == 200


def test_wrong_role(client, make):
    sup = make.user("Supervisor")
    assert detail(client.get(PROTECTED, headers=make.headers(sup))) == \
        "Usted no tiene permiso para realizar esta acción."
    assert detail(client.get(PROTECTED, headers=make.headers(sup, "en"))) == \
        "You do not have permission to perform this action."


def test_password_is_stored_hashed(make):
    agent = make.agent()
    assert PASSWORD not in agent.password_hash
    assert agent.password_hash.startswith(("scrypt:", "pbkdf2:"))
