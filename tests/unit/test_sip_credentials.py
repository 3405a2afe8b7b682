"""GET /api/v1/sip/credentials/agent/ (contract §2.9)."""
import base64
import hashlib
import hmac

import pytest

from oml_server.extensions import db
from oml_server.models import AgentProfile
from oml_server.services import sip_credentials, telephony
from tests.fake_telephony import FakeTelephony, fake_telephony  # noqa: F401 (fixture)

NOW = 1_732_666_000


@pytest.fixture
def frozen_time(monkeypatch):
    monkeypatch.setattr(sip_credentials.time, "time", lambda: NOW + 0.75)


def expected_password(secret, user):
    return base64.b64encode(hmac.new(secret.encode(), user.encode(), hashlib.sha1).digest()).decode()


@pytest.mark.parametrize("path", ["/api/v1/sip/credentials/agent/", "/api/v1/sip/credentials/agent"])
def test_credentials_follow_the_ephemeral_scheme(client, make, app, frozen_time, path):
    agent = make.agent()
    response = client.get(path, headers=make.headers(agent))
    assert response.status_code == 200
    ttl = app.config["EPHEMERAL_USER_TTL"]
    user = f"{NOW + ttl}:{1000 + agent.id}"
    assert response.get_json() == {
        "status": "OK", "sip_user": user,
        "sip_password": expected_password(app.config["SIP_SECRET_KEY"], user)}


def test_known_vector():
    # Independent of the implementation: HMAC-SHA1("key", "1732694400:1005"), base64.
    assert sip_credentials.sip_password("key", "1732694400:1005") == \
        base64.b64encode(hmac.new(b"key", b"1732694400:1005", "sha1").digest()).decode()
    assert len(sip_credentials.sip_password("key", "x")) == 28  # 20 bytes in base64


def test_secret_ttl_and_extension_come_from_settings_and_profile(client, make, app, monkeypatch,
                                                                  frozen_time):
    monkeypatch.setitem(app.config, "SIP_SECRET_KEY", "another-secret")
    monkeypatch.setitem(app.config, "EPHEMERAL_USER_TTL", 60)
    agent = make.agent(sip_extension="2042")
    body = client.get("/api/v1/sip/credentials/agent/", headers=make.headers(agent)).get_json()
    assert body["sip_user"] == f"{NOW + 60}:2042"
    assert body["sip_password"] == expected_password("another-secret", f"{NOW + 60}:2042")


def test_issued_credentials_are_stored_and_pushed(client, make, app, fake_telephony, frozen_time):
    agent = make.agent()
    body = client.get("/api/v1/sip/credentials/agent/", headers=make.headers(agent)).get_json()
    db.session.expire_all()
    profile = db.session.get(AgentProfile, agent.agent.id)
    assert profile.sip_username == body["sip_user"]
    assert profile.sip_expires_at == NOW + app.config["EPHEMERAL_USER_TTL"]
    assert fake_telephony.credentials == [(agent.agent.id, body["sip_user"], body["sip_password"])]


def test_a_push_the_backend_refuses_is_an_error_and_stores_nothing(client, make, frozen_time):
    agent = make.agent()
    previous = telephony.set_backend(FakeTelephony(push_error=ConnectionError("ARI down")))
    try:
        response = client.get("/api/v1/sip/credentials/agent/", headers=make.headers(agent))
        assert response.status_code == 200
        assert response.get_json() == {"status": "ERROR", "message": "Error al generar sip password"}
        response = client.get("/api/v1/sip/credentials/agent/", headers=make.headers(agent, "en"))
        assert response.get_json() == {"status": "ERROR", "message": "Error creating sip password"}
    finally:
        telephony.set_backend(previous)
    db.session.expire_all()
    assert db.session.get(AgentProfile, agent.agent.id).sip_username is None


@pytest.mark.parametrize("setting, value", [("SIP_SECRET_KEY", ""), ("EPHEMERAL_USER_TTL", 0)])
def test_missing_settings_are_an_error(client, make, app, monkeypatch, setting, value):
    monkeypatch.setitem(app.config, setting, value)
    agent = make.agent()
    response = client.get("/api/v1/sip/credentials/agent/", headers=make.headers(agent, "en"))
    assert response.status_code == 200
    assert response.get_json() == {"status": "ERROR", "message": "Error creating sip password"}


def test_agents_and_supervisors_phones_only_and_get_only(client, make):
    referente, agent = make.user("Referente"), make.agent()
    response = client.get("/api/v1/sip/credentials/agent/", headers=make.headers(referente))
    assert response.status_code == 403
    assert response.get_json() == {"detail": "Usted no tiene permiso para realizar esta acción."}
    # A supervisor without a phone: nothing to issue.
    response = client.get("/api/v1/sip/credentials/agent/",
                          headers=make.headers(make.user("Supervisor"), "en"))
    assert response.get_json() == {"status": "ERROR", "message": "Error creating sip password"}
    response = client.get("/api/v1/sip/credentials/agent/")
    assert response.status_code == 403
    response = client.post("/api/v1/sip/credentials/agent/", headers=make.headers(agent, "en"))
    assert response.status_code == 405
    assert response.get_json() == {"detail": 'Method "POST" not allowed.'}


def test_the_console_asks_for_a_webrtc_phone_and_a_plain_phone_takes_it_back(client, make,
                                                                              fake_telephony):
    agent = make.agent()

    def webrtc_after(path):
        assert client.get(path, headers=make.headers(agent)).get_json()["status"] == "OK"
        db.session.expire_all()
        return db.session.get(AgentProfile, agent.agent.id).sip_webrtc
    assert webrtc_after("/api/v1/sip/credentials/agent/?webrtc=1") is True
    assert webrtc_after("/api/v1/sip/credentials/agent/") is False
    assert webrtc_after("/api/v1/sip/credentials/agent/?webrtc=nonsense") is False


def test_a_supervisor_phone_gets_credentials_pushed_like_an_agent(client, make, app,
                                                                   fake_telephony, frozen_time):
    from oml_server.models import SupervisorProfile
    from oml_server.services import users
    supervisor = make.user("Supervisor")
    phone = users.ensure_supervisor_phone(supervisor, "1101")
    db.session.commit()
    pushed = []
    fake_telephony.supervisor_credentials_issued = lambda *args: pushed.append(args)
    body = client.get("/api/v1/sip/credentials/agent/", headers=make.headers(supervisor)).get_json()
    user = f"{NOW + app.config['EPHEMERAL_USER_TTL']}:1101"
    assert body == {"status": "OK", "sip_user": user,
                    "sip_password": expected_password(app.config["SIP_SECRET_KEY"], user)}
    assert pushed == [(phone.id, user, body["sip_password"])]
    assert fake_telephony.credentials == []  # not an agent's push
    db.session.expire_all()
    assert db.session.get(SupervisorProfile, phone.id).sip_username == user
