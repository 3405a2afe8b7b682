"""Agent session endpoints (contract §2.8, §2.10): asterisk_login/logout/pause/unpause/ready/
ringing/reject_call/disabled. Always HTTP 200 with exactly {"status": "OK"} or {"status": "ERROR"}."""
import pytest
from sqlalchemy import select

from oml_server.extensions import db
from oml_server.models import AgentActivity, AgentSession
from oml_server.services import agent_presence, telephony
from tests.factories import PASSWORD
from tests.fake_telephony import FakeTelephony, fake_telephony  # noqa: F401 (fixture)

OK = {"status": "OK"}
ERROR = {"status": "ERROR"}
ENDPOINTS = ("asterisk_login", "asterisk_logout", "asterisk_pause", "asterisk_unpause",
             "asterisk_ready", "asterisk_ringing", "asterisk_reject_call", "asterisk_disabled")


def post(client, make, user, name, slash=True, lang=None, **kwargs):
    path = f"/api/v1/{name}/" if slash else f"/api/v1/{name}"
    response = client.post(path, headers=make.headers(user, lang), **kwargs)
    assert response.status_code == 200
    return response.get_json()


def state(user):
    db.session.expire_all()
    return db.session.get(AgentSession, user.agent.id)


def events(user):
    db.session.expire_all()
    return [(a.event, a.pause_id) for a in db.session.scalars(
        select(AgentActivity).where(AgentActivity.agent_id == user.agent.id)
        .order_by(AgentActivity.id))]


# --- login / logout --------------------------------------------------------------------------

@pytest.mark.parametrize("slash", [True, False])
def test_login_logs_in_records_and_mirrors(client, make, fake_telephony, slash):
    agent = make.agent()
    assert post(client, make, agent, "asterisk_login", slash=slash) == OK
    row = state(agent)
    assert row.logged_in and not row.paused and row.idle_since is not None
    assert row.mirrored_state == "NOT_INUSE"
    assert events(agent) == [("login", None)]
    assert fake_telephony.mirrored == [agent.agent.id]


def test_login_twice_is_ok_and_changes_nothing(client, make, fake_telephony):
    agent = make.agent()
    assert post(client, make, agent, "asterisk_login") == OK
    assert post(client, make, agent, "asterisk_login", json={}) == OK
    assert events(agent) == [("login", None)]


def test_logout_ends_session_and_pause(client, make):
    agent, pause = make.agent(), make.pause()
    assert post(client, make, agent, "asterisk_logout") == OK  # already out: OK, nothing recorded
    assert events(agent) == []
    post(client, make, agent, "asterisk_login")
    assert post(client, make, agent, "asterisk_pause", json={"pause_id": pause.id}) == OK
    assert post(client, make, agent, "asterisk_logout", slash=False) == OK
    row = state(agent)
    assert not row.logged_in and not row.paused and row.pause_id is None and row.idle_since is None
    assert events(agent) == [("login", None), ("pause", str(pause.id)), ("logout", None)]


def test_login_after_logout_starts_unpaused(client, make):
    agent = make.agent()
    post(client, make, agent, "asterisk_login")
    post(client, make, agent, "asterisk_pause", json={"pause_id": "0"})
    post(client, make, agent, "asterisk_logout")
    assert post(client, make, agent, "asterisk_login") == OK
    assert not state(agent).paused


def test_login_creates_a_missing_presence_row(client, make):
    agent = make.agent()
    db.session.delete(db.session.get(AgentSession, agent.agent.id))
    db.session.commit()
    assert post(client, make, agent, "asterisk_login") == OK
    assert state(agent).logged_in


# --- pause / unpause / ready -----------------------------------------------------------------

@pytest.mark.parametrize("pause_id, stored", [("0", "0"), ("00", "00"), ("OW", "OW"), (0, "0")])
def test_system_pauses(client, make, pause_id, stored):
    agent = make.agent()
    post(client, make, agent, "asterisk_login")
    assert post(client, make, agent, "asterisk_pause", json={"pause_id": pause_id}) == OK
    row = state(agent)
    assert row.paused and row.pause_id == stored and row.idle_since is None


@pytest.mark.parametrize("as_string", [True, False])
def test_configured_pause_by_number_or_string_json_or_form(client, make, as_string):
    agent, pause = make.agent(), make.pause()
    post(client, make, agent, "asterisk_login")
    value = str(pause.id) if as_string else pause.id
    assert post(client, make, agent, "asterisk_pause", json={"pause_id": value}) == OK
    assert state(agent).pause_id == str(pause.id)
    assert post(client, make, agent, "asterisk_unpause", data={"pause_id": str(pause.id)}) == OK
    assert not state(agent).paused


@pytest.mark.parametrize("body", [{}, {"pause_id": None}, {"pause_id": ""}, {"pause_id": 999},
                                  {"pause_id": "abc"}, {"pause_id": "000"}, {"pause_id": [1]},
                                  {"pause_id": True}, {"pause_id": 1.5}, {"pause_id": -1}])
def test_missing_or_unknown_pause_id_is_error(client, make, body):
    agent = make.agent()
    post(client, make, agent, "asterisk_login")
    assert post(client, make, agent, "asterisk_pause", json=body) == ERROR
    assert post(client, make, agent, "asterisk_pause", json=body, lang="en") == ERROR
    assert not state(agent).paused
    post(client, make, agent, "asterisk_pause", json={"pause_id": "0"})
    assert post(client, make, agent, "asterisk_unpause", json=body) == ERROR
    assert state(agent).paused  # a bad unpause changes nothing
    assert events(agent) == [("login", None), ("pause", "0")]


def test_malformed_body_is_error(client, make):
    agent = make.agent()
    post(client, make, agent, "asterisk_login")
    assert post(client, make, agent, "asterisk_pause", data="{not json",
                content_type="application/json") == ERROR
    assert post(client, make, agent, "asterisk_pause", data="pause_id=0",
                content_type="text/plain") == ERROR


def test_pause_while_logged_out_is_error(client, make, fake_telephony):
    agent, pause = make.agent(), make.pause()
    assert post(client, make, agent, "asterisk_pause", json={"pause_id": pause.id}) == ERROR
    assert post(client, make, agent, "asterisk_unpause", json={"pause_id": pause.id}) == ERROR
    assert post(client, make, agent, "asterisk_ready") == ERROR
    assert events(agent) == [] and fake_telephony.mirrored == []


def test_same_pause_twice_is_one_change_another_pause_switches(client, make):
    agent, first, second = make.agent(), make.pause(), make.pause(type="productive")
    post(client, make, agent, "asterisk_login")
    assert post(client, make, agent, "asterisk_pause", json={"pause_id": first.id}) == OK
    assert post(client, make, agent, "asterisk_pause", json={"pause_id": first.id}) == OK
    assert post(client, make, agent, "asterisk_pause", json={"pause_id": second.id}) == OK
    assert state(agent).pause_id == str(second.id)
    assert events(agent) == [("login", None), ("pause", str(first.id)), ("pause", str(second.id))]


def test_unpause_when_not_paused_is_ok_and_records_nothing(client, make):
    agent = make.agent()
    post(client, make, agent, "asterisk_login")
    assert post(client, make, agent, "asterisk_unpause", json={"pause_id": "0"}) == OK
    assert events(agent) == [("login", None)]


def test_unpause_with_another_valid_id_ends_the_current_pause(client, make):
    agent, pause = make.agent(), make.pause()
    post(client, make, agent, "asterisk_login")
    post(client, make, agent, "asterisk_pause", json={"pause_id": pause.id})
    before = state(agent).idle_since
    assert before is None
    assert post(client, make, agent, "asterisk_unpause", json={"pause_id": "00"}) == OK
    row = state(agent)
    assert not row.paused and row.pause_id is None and row.idle_since is not None
    assert events(agent)[-1] == ("unpause", str(pause.id))  # names the pause that ended


def test_ready_unpauses(client, make):
    agent = make.agent()
    post(client, make, agent, "asterisk_login")
    post(client, make, agent, "asterisk_pause", json={"pause_id": "OW"})
    assert post(client, make, agent, "asterisk_ready", slash=False) == OK
    assert not state(agent).paused
    assert post(client, make, agent, "asterisk_ready") == OK  # already ready
    assert events(agent) == [("login", None), ("pause", "OW"), ("unpause", "OW")]


# --- ringing / reject / disabled -------------------------------------------------------------

def test_ringing_true_false_as_the_console_sends_it(client, make):
    agent = make.agent()  # the phone state does not need a session
    assert post(client, make, agent, "asterisk_ringing", data={"ringing": "true"}) == OK
    assert state(agent).ringing is True
    assert post(client, make, agent, "asterisk_ringing", data={"ringing": "true"}) == OK
    assert post(client, make, agent, "asterisk_ringing", json={"ringing": False}) == OK
    assert state(agent).ringing is False
    assert events(agent) == [("ringing", None), ("ringing_stopped", None)]


@pytest.mark.parametrize("body", [{}, {"ringing": "maybe"}, {"ringing": ""}, {"ringing": None},
                                  {"ringing": 2}])
def test_bad_ringing_is_error(client, make, body):
    agent = make.agent()
    assert post(client, make, agent, "asterisk_ringing", json=body) == ERROR
    assert events(agent) == []


def test_reject_call_stops_ringing_and_is_recorded(client, make):
    agent = make.agent()
    post(client, make, agent, "asterisk_ringing", data={"ringing": "true"})
    assert post(client, make, agent, "asterisk_reject_call") == OK
    assert state(agent).ringing is False
    assert post(client, make, agent, "asterisk_reject_call", slash=False) == OK
    assert events(agent) == [("ringing", None), ("reject_call", None), ("reject_call", None)]


def test_disabled_is_always_ok(client, make):
    agent = make.agent()
    assert post(client, make, agent, "asterisk_disabled") == OK
    assert post(client, make, agent, "asterisk_disabled", data="garbage",
                content_type="application/json") == OK
    assert events(agent) == [("disabled", None), ("disabled", None)]


# --- the mirror into Asterisk ----------------------------------------------------------------

def test_a_failed_mirror_keeps_the_change_and_marks_it_still_to_write(client, make):
    agent = make.agent()
    fake = FakeTelephony(mirror_error=ConnectionError("ARI down"))
    previous = telephony.set_backend(fake)
    try:
        assert post(client, make, agent, "asterisk_login") == OK
        row = state(agent)
        assert row.logged_in and row.mirrored_state is None
        assert events(agent) == [("login", None)]
        fake.mirror_error = None  # the engine is back: a repeated login retries the mirror
        assert post(client, make, agent, "asterisk_login") == OK
        assert state(agent).mirrored_state == "NOT_INUSE"
        assert fake.mirrored == [agent.agent.id, agent.agent.id]
        assert events(agent) == [("login", None)]
    finally:
        telephony.set_backend(previous)


def test_each_change_resets_the_mirrored_state(client, make, fake_telephony):
    agent = make.agent()
    post(client, make, agent, "asterisk_login")
    fake_telephony.mirror_result = None  # the engine wrote nothing this time
    post(client, make, agent, "asterisk_pause", json={"pause_id": "0"})
    assert state(agent).mirrored_state is None


def test_without_an_engine_nothing_is_mirrored(client, make):
    agent = make.agent()
    assert post(client, make, agent, "asterisk_login") == OK
    assert state(agent).mirrored_state is None


def test_web_logout_logs_the_agent_out(client, make):
    agent = make.agent()
    post(client, make, agent, "asterisk_login")
    agent_presence.logout_user_id(agent.id)
    assert not state(agent).logged_in
    agent_presence.logout_user_id(agent.id)  # twice: nothing more
    assert events(agent) == [("login", None), ("logout", None)]


# --- framework-level answers -----------------------------------------------------------------

@pytest.mark.parametrize("name", ENDPOINTS)
def test_get_is_405(client, make, name):
    agent = make.agent()
    response = client.get(f"/api/v1/{name}/", headers=make.headers(agent))
    assert response.status_code == 405
    assert response.get_json() == {"detail": 'Método "GET" no permitido.'}
    response = client.get(f"/api/v1/{name}/", headers=make.headers(agent, "en"))
    assert response.get_json() == {"detail": 'Method "GET" not allowed.'}


@pytest.mark.parametrize("name", ENDPOINTS)
def test_agents_only(client, make, name):
    supervisor = make.user("Supervisor")
    response = client.post(f"/api/v1/{name}/", headers=make.headers(supervisor, "en"))
    assert response.status_code == 403
    assert response.get_json() == {"detail": "You do not have permission to perform this action."}
    response = client.post(f"/api/v1/{name}/")
    assert response.status_code == 403
    assert response.get_json() == {"detail": "Las credenciales de autenticación no se proveyeron."}


def test_session_auth_with_csrf_form_posts(client, make):
    """The OMniLeads console: web session cookie, X-CSRFToken header, form-encoded bodies."""
    agent = make.agent()
    client.get("/accounts/login/")
    token = client.get_cookie("csrftoken").value
    response = client.post("/accounts/login/", data={"username": agent.username,
                                                     "password": PASSWORD,
                                                     "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    csrf = client.get_cookie("csrftoken").value
    response = client.post("/api/v1/asterisk_login/", headers={"X-CSRFToken": csrf})
    assert response.status_code == 200 and response.get_json() == OK
    response = client.post("/api/v1/asterisk_pause/", data={"pause_id": "0"},
                           headers={"X-CSRFToken": csrf, "X-Requested-With": "XMLHttpRequest"})
    assert response.get_json() == OK
    response = client.post("/api/v1/asterisk_unpause/", data={"pause_id": "0"})
    assert response.status_code == 403  # no CSRF header
    assert state(agent).paused
