"""The token check remembers tokens it has verified (oml_server.auth._claims): a token already
used must still be cut off by a deactivation, a password change, a new signing key or its
expiry, exactly like a token seen for the first time."""
import time

from oml_server.extensions import db
from oml_server.services import users

PROTECTED = "/api/v1/disposition/"  # any agent endpoint


def detail(response):
    assert response.status_code == 403, response.get_data(as_text=True)
    return response.get_json()["detail"]


def test_used_token_is_cut_off_by_deactivation(client, make):
    agent = make.agent()
    headers = make.headers(agent)
    assert client.get(PROTECTED, headers=headers).status_code == 200
    agent.is_active = False
    db.session.commit()
    assert detail(client.get(PROTECTED, headers=headers)) == "User is not active"


def test_used_token_is_cut_off_by_password_change(client, make):
    agent = make.agent()
    headers = make.headers(agent)
    assert client.get(PROTECTED, headers=headers).status_code == 200
    users.set_password(agent, "a-new-password")
    db.session.commit()
    assert detail(client.get(PROTECTED, headers=headers)) == "Invalid Token"


def test_used_token_is_refused_under_a_new_signing_key(client, make, app):
    agent = make.agent()
    headers = make.headers(agent)
    assert client.get(PROTECTED, headers=headers).status_code == 200
    old_key = app.config["JWT_SECRET_KEY"]
    app.config["JWT_SECRET_KEY"] = old_key + "-rotated"
    try:
        assert detail(client.get(PROTECTED, headers=headers)) == "Invalid Token"
    finally:
        app.config["JWT_SECRET_KEY"] = old_key
    assert client.get(PROTECTED, headers=headers).status_code == 200


def test_used_token_expires_with_the_leeway(client, make, app):
    agent = make.agent()
    app.config["TOKEN_EXPIRED_AFTER_SECONDS"] = 1
    app.config["JWT_DECODE_LEEWAY"] = 2
    try:
        issued = time.time()
        headers = make.headers(agent)   # exp is a whole second in (issued, issued + 1]
        assert client.get(PROTECTED, headers=headers).status_code == 200
        time.sleep(max(0, issued + 1.2 - time.time()))  # past exp, within the leeway
        assert client.get(PROTECTED, headers=headers).status_code == 200
        time.sleep(max(0, issued + 3.2 - time.time()))  # past exp + leeway
        assert detail(client.get(PROTECTED, headers=headers)) == "The Token is expired"
    finally:
        app.config["TOKEN_EXPIRED_AFTER_SECONDS"] = 32400
        app.config["JWT_DECODE_LEEWAY"] = 0
