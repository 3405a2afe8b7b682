"""Agents' SIP accounts pushed into Asterisk (ari_engine/sip_accounts.py) and the device-state
mirror (ari_engine/presence.py), against a fake ARI that keeps the dynamic configuration."""
import time

import pytest

from ari_engine.ari_client import AriError, AriNotFound, AriUnavailable
from ari_engine.presence import Presence, device_state_for
from ari_engine.sip_accounts import SipAccounts, password_for
from oml_server.extensions import db
from oml_server.models import AgentSession

KEY = "test-sip-key"


class ConfigAri:
    """Keeps PJSIP objects as Asterisk's memory wizard would; records the order of PUTs."""

    def __init__(self):
        self.objects, self.order, self.states = {}, [], {}
        self.registrations = {}   # extension -> "online" / "offline" (GET /endpoints)
        self.down = False

    def _check(self):
        if self.down:
            raise AriUnavailable("connection refused")

    def dynamic_config_put(self, kind, obj_id, fields):
        self._check()
        self.objects.setdefault((kind, obj_id), {}).update({k: str(v) for k, v in fields.items()})
        self.order.append((kind, obj_id))

    def dynamic_config_get(self, kind, obj_id):
        self._check()
        if (kind, obj_id) not in self.objects:
            raise AriNotFound(404, "not found")
        return [{"attribute": k, "value": v} for k, v in self.objects[(kind, obj_id)].items()]

    def dynamic_config_delete(self, kind, obj_id):
        self._check()
        if self.objects.pop((kind, obj_id), None) is None:
            raise AriNotFound(404, "not found")

    def device_state_put(self, name, state):
        self._check()
        self.states[name] = state
        self.order.append(("device_state", name))

    def endpoints(self, technology):
        self._check()
        return [{"technology": technology, "resource": ext, "state": state}
                for ext, state in self.registrations.items()]


@pytest.fixture
def ari():
    return ConfigAri()


@pytest.fixture
def accounts(ari):
    return SipAccounts(ari, {"SIP_SECRET_KEY": KEY})


def issue(agent, ttl=3600):
    sip_user = f"{int(time.time()) + ttl}:{agent.sip_extension}"
    agent.sip_username, agent.sip_expires_at = sip_user, int(time.time()) + ttl
    db.session.commit()
    return sip_user, password_for(sip_user, KEY)


def test_push_creates_auth_then_aor_then_endpoint(make, ari, accounts):
    agent = make.agent(sip_extension=1001).agent
    user, password = issue(agent)
    accounts.push(agent)
    kinds = [kind for kind, obj_id in ari.order if obj_id == "1001"]
    assert kinds == ["auth", "aor", "endpoint"]
    assert ari.objects[("auth", "1001")]["username"] == user
    assert ari.objects[("auth", "1001")]["password"] == password
    endpoint = ari.objects[("endpoint", "1001")]
    assert endpoint["identify_by"] == "username" and endpoint["auth"] == "1001,1001-prev"
    assert endpoint["allow"] and endpoint["disallow"] == "all"


def test_phones_are_hung_up_after_silent_seconds_by_default_and_as_configured(make, ari):
    from oml_server.services import users
    """A phone gone without a BYE must not keep its call up forever: every pushed endpoint
    carries rtp_timeout (and a longer one while the phone holds); 0 is pushed too, so an
    endpoint configured earlier loses the old value."""
    agent = make.agent(sip_extension=1009).agent
    supervisor = users.ensure_supervisor_phone(make.user("Supervisor"), "1109")
    db.session.commit()
    SipAccounts(ari, {"SIP_SECRET_KEY": KEY}).push(agent)
    endpoint = ari.objects[("endpoint", "1009")]
    assert (endpoint["rtp_timeout"], endpoint["rtp_timeout_hold"]) == ("60", "600")
    configured = SipAccounts(ari, {"SIP_SECRET_KEY": KEY, "PHONE_RTP_TIMEOUT": 0,
                                   "PHONE_RTP_TIMEOUT_HOLD": 30})
    configured.push(agent)
    configured.push(supervisor)
    for ext in ("1009", "1109"):
        endpoint = ari.objects[("endpoint", ext)]
        assert (endpoint["rtp_timeout"], endpoint["rtp_timeout_hold"]) == ("0", "30")


def test_agent_without_credentials_cannot_register(make, ari, accounts):
    agent = make.agent(sip_extension=1002).agent
    accounts.push(agent)
    auth = ari.objects[("auth", "1002")]
    assert auth["username"].startswith("locked:") and len(auth["password"]) >= 24


def test_new_credentials_keep_the_previous_ones_until_they_expire(make, ari, accounts):
    agent = make.agent(sip_extension=1003).agent
    first_user, _ = issue(agent)
    accounts.push(agent)
    second_user = f"{int(time.time()) + 7200}:1003"
    accounts.credentials_issued(agent, second_user, password_for(second_user, KEY))
    assert ari.objects[("auth", "1003")]["username"] == second_user
    assert ari.objects[("auth", "1003-prev")]["username"] == first_user


def test_expired_credentials_are_rotated_away(make, ari, accounts):
    agent = make.agent(sip_extension=1004).agent
    issue(agent, ttl=-1)
    assert accounts.rotate_expired() == 1
    assert ari.objects[("auth", "1004")]["username"].startswith("locked:")
    db.session.refresh(agent)
    assert agent.sip_username is None


def test_supervisor_phones_are_pushed_and_rotated_like_agents(make, ari, accounts):
    from oml_server.services import users
    supervisor = make.user("Supervisor")
    phone = users.ensure_supervisor_phone(supervisor, "1101")
    db.session.commit()
    user, password = issue(phone)
    assert accounts.push_all() == (1, 0)
    assert ari.objects[("auth", "1101")] == {"auth_type": "userpass", "username": user,
                                             "password": password}
    assert ari.objects[("endpoint", "1101")]["aors"] == "1101"
    issue(phone, ttl=-1)
    assert accounts.rotate_expired() == 1
    assert ari.objects[("auth", "1101")]["username"].startswith("locked:")


def test_push_all_removes_deactivated_agents(make, ari, accounts):
    keep = make.agent(sip_extension=1005)
    gone = make.agent(sip_extension=1006)
    accounts.push(gone.agent)
    gone.is_active = False
    db.session.commit()
    assert accounts.push_all() == (1, 1)
    assert ("endpoint", "1005") in ari.objects
    assert not any(obj_id.startswith("1006") for _, obj_id in ari.objects)
    assert keep.is_active


@pytest.mark.parametrize("fields,state", [
    ({}, "UNAVAILABLE"),
    ({"online": True}, "UNAVAILABLE"),
    ({"online": True, "logged_in": True}, "NOT_INUSE"),
    ({"online": True, "logged_in": True, "paused": True}, "ONHOLD"),
    ({"online": True, "logged_in": True, "ringing": True}, "RINGING"),
    ({"online": True, "logged_in": True, "on_call": True}, "INUSE"),
    ({"online": False, "logged_in": True}, "UNAVAILABLE"),
])
def test_device_state_mapping(fields, state):
    session = AgentSession(**{"online": False, "logged_in": False, "paused": False,
                              "ringing": False, "on_call": False, **fields})
    assert device_state_for(session) == state


def test_mirror_written_later_when_asterisk_was_away(make, ari):
    agent = make.agent(sip_extension=1007).agent
    session = db.session.get(AgentSession, agent.id)
    session.online, session.logged_in = True, True
    db.session.commit()
    presence = Presence(ari)
    ari.down = True
    assert presence.mirror(agent.id) is False
    assert db.session.get(AgentSession, agent.id).mirrored_state is None
    ari.down = False
    assert presence.mirror(agent.id) is True
    assert ari.states["Stasis:oml-agent-1007"] == "NOT_INUSE"
    assert db.session.get(AgentSession, agent.id).mirrored_state == "NOT_INUSE"


def test_the_periodic_refresh_reads_all_agents_at_once_and_mirrors_only_what_changed(make, ari):
    """refresh_all runs with every sweep (30 s): with nothing changed it must not read and
    mirror agent by agent (it sent ~2 statements per agent); a registration lost since is
    written, told (agent.status) and mirrored; an Asterisk restart (force) mirrors all."""
    from oml_server.models import Event

    from .statements_sent import statements_of
    agents = [make.agent(sip_extension=1200 + i).agent for i in range(30)]
    for agent in agents:
        session = db.session.get(AgentSession, agent.id)
        session.online, session.logged_in = True, True
        ari.registrations[str(agent.sip_extension)] = "online"
    db.session.commit()
    presence = Presence(ari)
    presence.refresh_all()
    assert ari.states["Stasis:oml-agent-1200"] == "NOT_INUSE"
    ari.order.clear()
    _, sent = statements_of(presence.refresh_all)
    assert [w for w, _ in sent if w not in ("BEGIN", "COMMIT", "ROLLBACK")] == ["SELECT", "SELECT"]
    assert ari.order == []

    ari.registrations["1207"] = "offline"
    events = db.session.query(Event).filter_by(type="agent.status").count()
    presence.refresh_all()
    assert ari.order == [("device_state", "Stasis:oml-agent-1207")]
    assert ari.states["Stasis:oml-agent-1207"] == "UNAVAILABLE"
    assert db.session.get(AgentSession, agents[7].id).online is False
    assert db.session.query(Event).filter_by(type="agent.status").count() == events + 1

    ari.order.clear()
    presence.refresh_all(force=True)
    assert len(ari.order) == 30


def test_endpoint_events_set_online(make, ari):
    agent = make.agent(sip_extension=1008).agent
    presence = Presence(ari)
    presence.endpoint_changed({"type": "EndpointStateChange", "endpoint": {
        "technology": "PJSIP", "resource": "1008", "state": "online"}})
    assert db.session.get(AgentSession, agent.id).online is True
    presence.endpoint_changed({"type": "EndpointStateChange", "endpoint": {
        "technology": "PJSIP", "resource": "1008", "state": "offline"}})
    assert db.session.get(AgentSession, agent.id).online is False


def test_a_browser_phone_gets_webrtc_settings_and_a_plain_phone_loses_them(make, ari, accounts):
    agent = make.agent(sip_extension=1007).agent
    agent.sip_webrtc = True
    user, password = issue(agent)
    accounts.push(agent)
    endpoint = ari.objects[("endpoint", "1007")]
    assert {k: endpoint[k] for k in ("media_encryption", "dtls_verify", "dtls_setup", "ice_support",
                                     "use_avpf", "rtcp_mux", "media_use_received_transport")} == {
        "media_encryption": "dtls", "dtls_verify": "fingerprint", "dtls_setup": "actpass",
        "ice_support": "yes", "use_avpf": "yes", "rtcp_mux": "yes",
        "media_use_received_transport": "yes"}
    agent.sip_webrtc = False  # the next credentials are for a SIP phone again
    newer = f"{int(time.time()) + 7200}:1007"
    accounts.credentials_issued(agent, newer, password_for(newer, KEY))
    endpoint = ari.objects[("endpoint", "1007")]
    assert (endpoint["media_encryption"], endpoint["ice_support"], endpoint["use_avpf"]) == ("no", "no", "no")


class RefusingAri(ConfigAri):
    def dynamic_config_put(self, kind, obj_id, fields):
        raise AriError(403, "dynamic configuration is not allowed")


@pytest.fixture
def ari_backend(app, monkeypatch):
    from ari_engine.backend import AriBackend
    from oml_server.services import telephony
    monkeypatch.setitem(app.config, "SIP_SECRET_KEY", KEY)  # the API's key is the engine's

    def install(fake):
        backend = AriBackend(fake, {**app.config, "SIP_SECRET_KEY": KEY})
        previous.append(telephony.set_backend(backend))
        return backend
    previous = []
    yield install
    telephony.set_backend(previous[0])


def test_credentials_are_answered_while_asterisk_is_unreachable_and_pushed_at_reconnect(
        client, make, ari, ari_backend):
    """Contract §2.9: answered from the HMAC alone; valid in Asterisk once it is back."""
    agent = make.agent(sip_extension=1005)
    backend = ari_backend(ari)
    ari.down = True
    response = client.get("/api/v1/sip/credentials/agent/", headers=make.headers(agent))
    body = response.get_json()
    assert body["status"] == "OK", body
    assert body["sip_user"].endswith(":1005")
    assert body["sip_password"] == password_for(body["sip_user"], KEY)
    assert ari.objects == {}
    ari.down = False
    backend.sip.push_all()  # what the engine does when it (re)connects
    auth = ari.objects[("auth", "1005")]
    assert (auth["username"], auth["password"]) == (body["sip_user"], body["sip_password"])


def test_credentials_asterisk_refuses_are_an_error_and_the_previous_ones_stay(
        client, make, ari_backend):
    agent = make.agent(sip_extension=1006)
    ari_backend(ConfigAri())
    first = client.get("/api/v1/sip/credentials/agent/", headers=make.headers(agent)).get_json()
    assert first["status"] == "OK"
    ari_backend(RefusingAri())
    response = client.get("/api/v1/sip/credentials/agent/", headers=make.headers(agent))
    assert response.get_json() == {"status": "ERROR", "message": "Error al generar sip password"}
    db.session.expire_all()
    profile = db.session.get(type(agent.agent), agent.agent.id)
    assert profile.sip_username == first["sip_user"]


def test_after_a_refresh_an_event_repeating_the_listed_state_costs_nothing(make, ari):
    """The periodic refresh rewrites registrations from ARI's list; Asterisk then keeps sending
    EndpointStateChange with that same state (twice per call): those need no statement. One
    that differs from the list is applied."""
    from .statements_sent import statements_of
    agent = make.agent(sip_extension=1300).agent
    session = db.session.get(AgentSession, agent.id)
    session.logged_in = True
    ari.registrations["1300"] = "online"
    db.session.commit()
    presence = Presence(ari)
    presence.refresh_all()
    assert db.session.get(AgentSession, agent.id).online is True
    repeat = {"type": "EndpointStateChange", "endpoint": {
        "technology": "PJSIP", "resource": "1300", "state": "online"}}
    _, sent = statements_of(lambda: presence.endpoint_changed(repeat))
    assert sent == []
    gone = {"type": "EndpointStateChange", "endpoint": {
        "technology": "PJSIP", "resource": "1300", "state": "offline"}}
    presence.endpoint_changed(gone)
    db.session.expire_all()
    assert db.session.get(AgentSession, agent.id).online is False
    assert ari.states["Stasis:oml-agent-1300"] == "UNAVAILABLE"


def test_a_registration_applied_while_the_refresh_lists_endpoints_is_not_undone(app, make, ari):
    """The periodic refresh lists the endpoints, then writes that list into the sessions. A
    phone that registers just after the list was taken has its event handled while the refresh
    waits: the older list must not set the agent offline again (it stayed so until the next
    sweep, and the agent was never offered a call meanwhile)."""
    import gevent

    agent = make.agent(sip_extension=1009).agent
    db.session.merge(AgentSession(agent_id=agent.id, logged_in=True, online=False))
    db.session.commit()
    presence = Presence(ari)
    ari.registrations["1009"] = "offline"
    list_endpoints = ari.endpoints

    def endpoint_event():
        with app.app_context():
            presence.endpoint_changed({"type": "EndpointStateChange", "endpoint": {
                "technology": "PJSIP", "resource": "1009", "state": "online"}})
            db.session.remove()

    def listed_then_the_phone_registers(technology):
        listed = list_endpoints(technology)
        ari.registrations["1009"] = "online"
        handled.append(gevent.spawn(endpoint_event))
        gevent.sleep(0.05)   # the event's turn comes while the refresh waits for ARI
        return listed

    handled = []
    ari.endpoints = listed_then_the_phone_registers
    presence.refresh_all()
    gevent.joinall(handled, timeout=5, raise_error=True)
    db.session.expire_all()
    assert db.session.get(AgentSession, agent.id).online is True
    assert ari.states["Stasis:oml-agent-1009"] == "NOT_INUSE"
