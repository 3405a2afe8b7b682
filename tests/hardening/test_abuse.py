"""Item 5: login throttling, the click-to-call rate limit, security headers, cookie flags."""
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from oml_server.extensions import db
from oml_server.models import Call, ThrottleEvent
from oml_server.services import throttle
from tests.factories import PASSWORD

LOGIN = "/api/v1/login/"
INVALID = {"detail": "Invalid Credentials or activate account"}
LIMITS = {"LOGIN_WINDOW_SECONDS": 900, "LOGIN_SLOW_AFTER": 3, "LOGIN_MAX_FAILURES": 5,
          "LOGIN_MAX_FAILURES_PER_ADDRESS": 20, "LOGIN_SLOW_AFTER_PER_USER": 10,
          "LOGIN_SLOWDOWN_SECONDS": 1.0, "MAKECALL_MAX_PER_WINDOW": 10,
          "MAKECALL_WINDOW_SECONDS": 60}


@pytest.fixture
def limits(app, monkeypatch):
    """The production defaults (config.py); sleeps are recorded instead of slept."""
    for name, value in LIMITS.items():
        monkeypatch.setitem(app.config, name, value)
    slept = []
    monkeypatch.setattr(throttle, "sleep", slept.append)
    return slept


def _login(client, username, password, address="203.0.113.7", lang=None):
    headers = {"Accept-Language": lang} if lang else {}
    return client.post(LOGIN, json={"username": username, "password": password},
                       headers=headers, environ_base={"REMOTE_ADDR": address})


def _age_events(seconds):
    """Pretend every counted event happened `seconds` earlier (instead of waiting)."""
    db.session.execute(update(ThrottleEvent).values(
        created_at=ThrottleEvent.created_at - timedelta(seconds=seconds)))
    db.session.commit()


def test_failed_logins_are_slowed_then_refused_then_forgiven(client, make, limits):
    user = make.agent()
    codes = [_login(client, user.username, "wrong").status_code for _ in range(5)]
    assert codes == [404] * 5
    assert limits == [1.0, 1.0]  # the 4th and 5th attempts waited (slow after 3 failures)
    response = _login(client, user.username, "wrong")
    assert response.status_code == 429
    seconds = int(response.headers["Retry-After"])
    assert 890 <= seconds <= 900
    assert response.get_json() == {
        "detail": f"Demasiados intentos de ingreso fallidos; intente de nuevo en {seconds} segundos."}
    # the right password does not get through from there either, in English too
    response = _login(client, user.username, PASSWORD, lang="en")
    assert response.status_code == 429
    assert response.get_json() == {
        "detail": f"Too many failed login attempts; try again in {seconds} seconds."}
    # refused attempts are not counted: the cool-off ends with the window, never later
    _age_events(901)
    response = _login(client, user.username, PASSWORD)
    assert response.status_code == 200 and "token" in response.get_json()


def test_a_lock_out_never_reaches_the_user_elsewhere(client, make, limits):
    """An attacker at one address locks only that address out of that username."""
    user = make.agent()
    for _ in range(6):
        _login(client, user.username, "wrong", address="198.51.100.66")
    assert _login(client, user.username, PASSWORD, address="198.51.100.66").status_code == 429
    response = _login(client, user.username, PASSWORD, address="192.0.2.10")
    assert response.status_code == 200


def test_failures_from_everywhere_only_slow_a_username_down(client, make, limits):
    user = make.agent()
    for i in range(30):  # 30 addresses, 1 failure each: never refused
        assert _login(client, user.username, "wrong", address=f"10.0.{i}.1").status_code == 404
    assert len(limits) == 30 - 10  # slowed once the username had 10 failures in the window
    assert _login(client, user.username, PASSWORD, address="10.9.9.9").status_code == 200


def test_one_address_trying_many_usernames_is_refused(client, make, limits):
    for i in range(20):
        assert _login(client, f"nobody{i}", "wrong").status_code == 404
    response = _login(client, "nobody-else", "wrong")
    assert response.status_code == 429 and int(response.headers["Retry-After"]) > 0
    assert _login(client, "nobody-else", "wrong", address="203.0.113.8").status_code == 404


def test_a_success_clears_that_addresss_failures(client, make, limits):
    user = make.agent()
    for _ in range(4):
        _login(client, user.username, "wrong")
    assert _login(client, user.username, PASSWORD).status_code == 200
    for _ in range(4):  # a fresh budget
        assert _login(client, user.username, "wrong").status_code == 404


def test_the_web_login_form_is_throttled_too(app, make, limits):
    client = app.test_client()
    user = make.agent()
    for _ in range(5):
        _login(client, user.username, "wrong", address="127.0.0.1")
    page = client.get("/accounts/login/")
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    response = client.post("/accounts/login/", data={"username": user.username,
                                                     "password": PASSWORD,
                                                     "csrfmiddlewaretoken": csrf})
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert "Demasiados intentos" in response.get_data(as_text=True)


def test_forwarded_for_is_ignored_unless_a_proxy_is_trusted(client, make, limits):
    user = make.agent()
    for i in range(6):  # an attacker rotating X-Forwarded-For gains nothing
        client.post(LOGIN, json={"username": user.username, "password": "wrong"},
                    headers={"X-Forwarded-For": f"10.1.1.{i}"})
    response = client.post(LOGIN, json={"username": user.username, "password": PASSWORD},
                           headers={"X-Forwarded-For": "10.1.1.99"})
    assert response.status_code == 429


def test_the_refusal_is_documented(client):
    spec = client.get("/openapi.json").get_json()
    responses = spec["paths"]["/api/v1/login/"]["post"]["responses"]
    assert "429" in responses


def test_old_events_of_every_key_are_pruned(client, make, limits, monkeypatch):
    for i in range(3):
        _login(client, f"gone{i}", "wrong", address=f"10.7.0.{i}")
    _age_events(901)
    monkeypatch.setattr(throttle, "PRUNE_CHANCE", 1.0)
    _login(client, "someone", "wrong", address="10.7.1.1")
    keys = set(db.session.scalars(select(ThrottleEvent.key)))
    assert keys == {"login-pair:someone@10.7.1.1", "login-addr:10.7.1.1", "login-user:someone"}


# --- click-to-call ---------------------------------------------------------------------------

def test_a_make_call_prunes_old_events_of_every_key_too(client, make, world, fake_telephony,
                                                        limits, monkeypatch):
    for i in range(3):
        _login(client, f"gone{i}", "wrong", address=f"10.7.0.{i}")
    _age_events(901)
    monkeypatch.setattr(throttle, "PRUNE_CHANCE", 1.0)
    assert _make_call(client, make, world)["status"] == "OK"
    keys = set(db.session.scalars(select(ThrottleEvent.key)))
    assert keys == {f"call:{world.alice.agent.id}"}


def _make_call(client, make, world):
    return client.post("/api/v1/makeCall/", json={
        "idCampaign": world.campaign_a.id, "idAgent": world.alice.agent.id,
        "phone": "3511234567"}, headers=make.headers(world.alice)).get_json()


def _end_live_calls():
    db.session.execute(update(Call).values(state="ended", active_agent_id=None))
    db.session.commit()


def test_click_to_call_is_rate_limited_per_agent(client, make, world, fake_telephony, limits):
    for _ in range(10):
        assert _make_call(client, make, world)["status"] == "OK"
        _end_live_calls()  # a CRM in a loop: each call ends, the next one is asked at once
    assert _make_call(client, make, world) == {
        "status": "ERROR", "message": "Error al ejecutar la llamada",
        "errors": ["Demasiadas llamadas pedidas para este agente; intente de nuevo en un momento."]}
    assert len(fake_telephony.placed) == 10
    assert db.session.scalar(select(func.count()).select_from(Call)) == 10
    # another agent is not affected
    body = client.post("/api/v1/makeCall/", json={
        "idCampaign": world.campaign_a.id, "idAgent": world.bob.agent.id,
        "phone": "3511234567"}, headers=make.headers(world.bob)).get_json()
    assert body["status"] == "OK"
    # a minute later the agent may call again
    _age_events(61)
    _end_live_calls()
    assert _make_call(client, make, world)["status"] == "OK"


# --- headers and cookies ---------------------------------------------------------------------

HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
           "Referrer-Policy": "same-origin"}


@pytest.mark.parametrize("method,path", [
    ("get", "/api/v1/health/"), ("post", "/api/v1/login/"), ("get", "/api/v1/disposition/"),
    ("get", "/api/v1/nowhere/"), ("patch", "/api/v1/login/"), ("get", "/openapi.json"),
    ("get", "/docs"), ("get", "/accounts/login/"), ("get", "/agente/logout/"),
    ("post", "/api/v1/makeCall/")])
def test_security_headers_on_every_response(client, method, path):
    response = getattr(client, method)(path, data=b"{", content_type="application/json")
    for name, value in HEADERS.items():
        assert response.headers.get(name) == value, (path, name)


def test_security_headers_on_a_413_and_a_500(app, client, monkeypatch):
    big = b"x" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    response = client.post(LOGIN, data=big, content_type="application/json")
    assert response.status_code == 413
    assert all(response.headers.get(k) == v for k, v in HEADERS.items())
    from oml_server.services import users

    def boom(*args):
        raise RuntimeError("boom")
    monkeypatch.setattr(users, "check_credentials", boom)
    response = client.post(LOGIN, json={"username": "u", "password": "p"})
    assert response.status_code == 500
    assert all(response.headers.get(k) == v for k, v in HEADERS.items())


def _cookie_flags(response, name):
    for header in response.headers.getlist("Set-Cookie"):
        if header.startswith(name + "="):
            return header
    raise AssertionError(f"no {name} cookie")


def _form_login(client, user, **kwargs):
    page = client.get("/accounts/login/", **kwargs)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    return client.post("/accounts/login/", data={"username": user.username, "password": PASSWORD,
                                                 "csrfmiddlewaretoken": csrf}, **kwargs)


def test_session_cookie_is_httponly_samesite_not_secure_over_http(app, make):
    response = _form_login(app.test_client(), make.agent())
    session = _cookie_flags(response, "sessionid")
    assert "HttpOnly" in session and "SameSite=Lax" in session and "Secure" not in session
    csrf = _cookie_flags(response, "csrftoken")
    assert "SameSite=Lax" in csrf and "HttpOnly" not in csrf  # the page's script copies it


def test_cookies_are_secure_over_https(app, make):
    response = _form_login(app.test_client(), make.agent(), base_url="https://localhost")
    assert "Secure" in _cookie_flags(response, "sessionid")
    assert "Secure" in _cookie_flags(response, "csrftoken")


def test_cookies_are_secure_when_configured(app, make, monkeypatch):
    monkeypatch.setitem(app.config, "SESSION_COOKIE_SECURE", True)
    response = _form_login(app.test_client(), make.agent())
    assert "Secure" in _cookie_flags(response, "sessionid")
    assert "Secure" in _cookie_flags(response, "csrftoken")


def test_forwarded_proto_counts_only_behind_a_trusted_proxy(database_url, make):
    from oml_server import create_app
    from tests.conftest import TEST_CONFIG
    user = make.agent()
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.1"}
    untrusted = create_app({**TEST_CONFIG, "SQLALCHEMY_DATABASE_URI": database_url})
    trusted = create_app({**TEST_CONFIG, "SQLALCHEMY_DATABASE_URI": database_url,
                          "TRUSTED_PROXIES": 1})
    for app, secure in ((untrusted, False), (trusted, True)):
        with app.app_context():
            response = _form_login(app.test_client(), user, headers=headers)
            assert ("Secure" in _cookie_flags(response, "sessionid")) is secure
