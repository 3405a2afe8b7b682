"""The web session of OMniLeads' agent console (contract §1.3): login form, CSRF, logout."""
import re

import pytest

from tests.factories import PASSWORD

PROTECTED = "/api/v1/asterisk_login/"


def web_login(client, user):
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    assert client.get_cookie("csrftoken").value == token
    response = client.post("/accounts/login/", data={"username": user.username, "password": PASSWORD,
                                                      "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    return client.get_cookie("csrftoken").value


def test_session_post_needs_the_csrf_header(client, make):
    agent = make.agent()
    csrf = web_login(client, agent)
    response = client.post(PROTECTED, headers={"X-Requested-With": "XMLHttpRequest"})
    assert response.status_code == 403
    assert response.get_json() == {"detail": "CSRF Failed: CSRF token missing or incorrect."}
    response = client.post(PROTECTED, headers={"X-CSRFToken": "wrong"})
    assert response.status_code == 403
    response = client.post(PROTECTED, headers={"X-CSRFToken": csrf})
    assert response.status_code == 200
    assert response.get_json() == {"status": "OK"}


def test_session_get_needs_no_csrf(client, make):
    agent = make.agent()
    web_login(client, agent)
    assert client.get("/api/v1/disposition/").status_code == 200


def test_session_cookie_flags(client, make):
    agent = make.agent()
    page = client.get("/accounts/login/")
    token = re.search(r'value="([^"]+)"', page.get_data(as_text=True)).group(1)
    response = client.post("/accounts/login/", data={"username": agent.username, "password": PASSWORD,
                                                     "csrfmiddlewaretoken": token})
    cookies = response.headers.getlist("Set-Cookie")
    session_cookie = next(c for c in cookies if c.startswith("sessionid="))
    assert "HttpOnly" in session_cookie and "SameSite=Lax" in session_cookie


def test_a_script_reads_the_sessionid_cookie_by_name_and_uses_it(app, client, make):
    """OMniLeads' console harness logs in through the form, then carries `sessionid` alone."""
    agent = make.agent()
    web_login(client, agent)
    assert client.get_cookie("session") is None
    sessionid = client.get_cookie("sessionid").value
    other = app.test_client()
    other.set_cookie("sessionid", sessionid)
    assert other.get("/api/v1/disposition/").status_code == 200


def test_login_form_rejects_bad_password_and_missing_csrf(client, make):
    agent = make.agent()
    client.get("/accounts/login/")
    response = client.post("/accounts/login/", data={"username": agent.username, "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/api/v1/disposition/").status_code == 403


def test_logout_ends_the_session_and_redirects(client, make):
    agent = make.agent()
    web_login(client, agent)
    response = client.get("/agente/logout/")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/accounts/login/")
    assert client.get("/api/v1/disposition/").status_code == 403


def test_security_headers_on_every_response(client):
    for response in (client.get("/accounts/login/"), client.post("/api/v1/login", json={}),
                     client.get("/openapi.json")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "same-origin"


def _form(user, **extra):
    return {"username": user.username, "password": PASSWORD, **extra}


def test_login_without_any_csrf_token_and_no_session_is_refused(client, make):
    """Login CSRF: a page elsewhere posting the form straight away (no GET, no cookie)."""
    agent = make.agent()
    response = client.post("/accounts/login/", data=_form(agent))
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    assert client.get("/api/v1/disposition/").status_code == 403


@pytest.mark.parametrize("cookie, sent", [
    (None, "made-up"),                        # a form token, no cookie
    ("the-cookie-value", "another-value"),    # a form token other than the cookie
    ("the-cookie-value", None),               # a cookie, no form token
    ("abc", "ábc"),                           # non-ASCII: refused, not a crash
])
def test_login_whose_form_token_does_not_match_the_cookie_is_refused(client, make, cookie, sent):
    agent = make.agent()
    if cookie is not None:
        client.set_cookie("csrftoken", cookie)
    extra = {} if sent is None else {"csrfmiddlewaretoken": sent}
    response = client.post("/accounts/login/", data=_form(agent, **extra))
    assert response.status_code == 400
    assert client.get("/api/v1/disposition/").status_code == 403


def test_login_with_matching_cookie_and_form_token_needs_no_prior_session(client, make):
    """Django's double submit: the cookie and the form field agree, whatever set them."""
    agent = make.agent()
    client.set_cookie("csrftoken", "same-value-in-both")
    response = client.post("/accounts/login/", data=_form(agent, csrfmiddlewaretoken="same-value-in-both"))
    assert response.status_code == 302
    assert client.get("/api/v1/disposition/").status_code == 200


def _login_to(client, agent, target):
    page = client.get("/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    response = client.post("/accounts/login/", query_string={"next": target},
                           data=_form(agent, csrfmiddlewaretoken=token))
    assert response.status_code == 302
    return response.headers["Location"]


def test_next_keeps_a_local_path(client, make):
    assert _login_to(client, make.agent(), "/agente/console/?x=1") == "/agente/console/?x=1"


@pytest.mark.parametrize("target", [
    "//evil.example/", "/\t/evil.example", "/\\evil.example", "/\\/evil.example",
    "\\\\evil.example", "https://evil.example/", "javascript:alert(1)", "/\n/evil.example",
    "/\r\n/evil.example", "/\x00/evil", " //evil.example", "evil.example", "/%0a\x7f/evil",
])
def test_next_falls_back_to_the_default_for_anything_but_a_local_path(client, make, target):
    assert _login_to(client, make.agent(), target) == "/docs"
