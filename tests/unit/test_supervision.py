"""Supervision (contract-calls §4) and the console heartbeat (§5), as a supervisor sees them."""
import uuid
from datetime import timedelta

import pytest

from tests.fake_telephony import fake_telephony  # noqa: F401 (a fixture)

from oml_server.extensions import db
from oml_server.models import AgentSession, Call, Campaign, utcnow
from oml_server.services import users


def session(agent_user, **flags):
    row = db.session.get(AgentSession, agent_user.agent.id)
    values = {"online": True, "logged_in": True, "paused": False, "pause_id": None,
              "ringing": False, "on_call": False, "status_since": utcnow() - timedelta(seconds=42)}
    values.update(flags)
    for key, value in values.items():
        setattr(row, key, value)
    db.session.commit()


def live_call(agent_user, campaign, state="bridged", number="3511000001"):
    now = utcnow()
    call = Call(id=uuid.uuid4().hex, kind="inbound", campaign_id=campaign.id,
                agent_id=agent_user.agent.id, active_agent_id=agent_user.agent.id,
                number=number, state=state, created_at=now - timedelta(seconds=30),
                bridged_at=now - timedelta(seconds=20) if state == "bridged" else None)
    db.session.add(call)
    db.session.commit()
    return call


@pytest.fixture
def floor(make):
    """A supervisor with two agents in its campaign, and an agent of another campaign."""
    sup = make.user("Supervisor")
    ana = make.agent(first_name="Ana", last_name="Pérez")
    ana.agent.group = "Ventas"
    bob = make.agent(first_name="Bob")
    other = make.agent(first_name="Otro")
    sales = make.campaign(agents=[ana, bob], supervisors=[sup], name="sales")
    elsewhere = make.campaign(agents=[other], name="elsewhere")
    return {"sup": sup, "ana": ana, "bob": bob, "other": other, "sales": sales,
            "elsewhere": elsewhere}


def agents_seen(client, make, user):
    response = client.get("/api/v1/supervision/agents/", headers=make.headers(user))
    assert response.status_code == 200
    return {entry["nombre"]: entry for entry in response.get_json()}


def test_supervisor_sees_its_agents_with_status_and_time(client, make, floor):
    session(floor["ana"])
    session(floor["bob"], paused=True, pause_id="00")
    session(floor["other"])
    seen = agents_seen(client, make, floor["sup"])
    assert set(seen) == {"Ana Pérez", "Bob"}
    ana = seen["Ana Pérez"]
    assert ana == {"id": floor["ana"].agent.id, "nombre": "Ana Pérez", "status": "READY",
                   "sip": floor["ana"].agent.sip_extension, "pause_id": "",
                   "campana_llamada": "", "contacto": "", "tiempo": ana["tiempo"],
                   "grupo": "Ventas", "campana": ["sales"]}
    assert 41 <= ana["tiempo"] <= 44
    assert (seen["Bob"]["status"], seen["Bob"]["pause_id"]) == ("PAUSE-Supervision", "00")
    admin = agents_seen(client, make, make.user("Administrador"))
    assert {"Ana Pérez", "Bob", "Otro"} <= set(admin)


def test_offline_agents_are_not_listed_and_a_lost_phone_is_unavailable(client, make, floor):
    session(floor["ana"], logged_in=False)
    session(floor["bob"], online=False)
    seen = agents_seen(client, make, floor["sup"])
    assert set(seen) == {"Bob"}
    assert seen["Bob"]["status"] == "UNAVAILABLE"


def test_named_pause_and_ringing(client, make, floor):
    pause = make.pause(name="Break")
    session(floor["ana"], paused=True, pause_id=str(pause.id))
    session(floor["bob"], ringing=True)
    seen = agents_seen(client, make, floor["sup"])
    assert seen["Ana Pérez"]["status"] == "PAUSE-Break"
    assert seen["Bob"]["status"] == "RINGING"


def test_agent_on_a_call_shows_campaign_number_and_call_id(client, make, floor):
    session(floor["ana"], on_call=True)
    session(floor["bob"], on_call=True)
    call = live_call(floor["ana"], floor["sales"])
    live_call(floor["bob"], floor["sales"], state="agent_ringing", number="3519999999")
    seen = agents_seen(client, make, floor["sup"])
    ana = seen["Ana Pérez"]
    assert (ana["status"], ana["campana_llamada"], ana["contacto"], ana["call_id"]) == \
        ("ONCALL", "sales", "3511000001", call.id)
    assert 19 <= ana["tiempo"] <= 22  # since the call was bridged
    bob = seen["Bob"]
    assert (bob["status"], bob["contacto"]) == ("RINGING", "")
    assert "call_id" not in bob
    db.session.get(Call, call.id).state, db.session.get(Call, call.id).active_agent_id = "ended", None
    db.session.commit()
    assert agents_seen(client, make, floor["sup"])["Ana Pérez"]["status"] == "READY"


def test_campaign_counts_and_list(client, make, floor):
    session(floor["ana"], on_call=True)
    live_call(floor["ana"], floor["sales"])
    session(floor["bob"], paused=True, pause_id="0")
    headers = make.headers(floor["sup"])
    cid = floor["sales"].id
    assert client.get(f"/api/v1/agent_status/campaign/{cid}", headers=headers).get_json() == \
        {"ready": 0, "oncall": 1, "pause": 1}
    assert client.get(f"/api/v1/agent_status_list/campaign/{cid}/", headers=headers).get_json() == [
        {"name": "Ana Pérez", "status": "ONCALL"}, {"name": "Bob", "status": "PAUSE"}]
    session(floor["bob"], logged_in=False)
    assert client.get(f"/api/v1/agent_status_list/campaign/{cid}", headers=headers).get_json()[1] \
        == {"name": "Bob", "status": "OFFLINE"}


@pytest.mark.parametrize("path", ["agent_status", "agent_status_list", "call_status"])
def test_campaign_endpoints_refuse_unknown_and_foreign_campaigns(client, make, floor, path):
    headers = make.headers(floor["sup"])
    response = client.get(f"/api/v1/{path}/campaign/999999", headers=headers)
    assert (response.status_code, response.get_json()) == (404, {"detail": "No encontrado."})
    response = client.get(f"/api/v1/{path}/campaign/abc", headers=headers)
    assert response.status_code == 404
    response = client.get(f"/api/v1/{path}/campaign/{floor['elsewhere'].id}", headers=headers)
    assert response.status_code == 403
    assert response.get_json() == {"detail": "Usted no tiene permiso para realizar esta acción."}


def test_call_status_counts_the_days_asked(client, make, floor):
    now = utcnow()

    def call(**fields):
        db.session.add(Call(id=uuid.uuid4().hex, kind="inbound", campaign_id=floor["sales"].id,
                            number="1", **fields))
    call(state="ended", created_at=now, bridged_at=now, reason="contact_hangup")
    call(state="ended", created_at=now, bridged_at=now, reason="agent_hangup")
    call(state="failed", created_at=now, reason="caller_hangup")
    call(state="failed", created_at=now, reason="no_agent_available")
    call(state="failed", created_at=now - timedelta(days=3), reason="no_agent_available")
    call(state="requested", created_at=now)
    db.session.commit()
    headers = make.headers(floor["sup"])
    base = f"/api/v1/call_status/campaign/{floor['sales'].id}"
    today = now.date().isoformat()
    assert client.get(f"{base}?date_start={today}&date_end={today}", headers=headers).get_json() \
        == {"attended": 2, "abandoned": 1, "expired": 1}
    earlier = (now - timedelta(days=3)).date().isoformat()
    assert client.get(f"{base}?date_start={earlier}&date_end={today}", headers=headers).get_json() \
        == {"attended": 2, "abandoned": 1, "expired": 2}
    for bad in ("2026-13-01", "yesterday", "2026-1-1"):
        response = client.get(f"{base}?date_start={bad}", headers=headers)
        assert response.status_code == 400, bad
        assert "detail" in response.get_json()


def act(client, make, user, agent_id, accion, lang=None):
    return client.post(f"/api/v1/supervision/action_on_agent/{agent_id}/",
                       data={"accion": accion}, headers=make.headers(user, lang))


def test_pause_unpause_logout_an_agent(client, make, floor):
    session(floor["ana"])
    ana_id = floor["ana"].agent.id
    response = act(client, make, floor["sup"], ana_id, "AGENTPAUSE")
    assert (response.status_code, response.get_json()) == (200, {"status": "OK"})
    assert agents_seen(client, make, floor["sup"])["Ana Pérez"]["status"] == "PAUSE-Supervision"
    assert act(client, make, floor["sup"], ana_id, "AGENTUNPAUSE").get_json() == {"status": "OK"}
    assert agents_seen(client, make, floor["sup"])["Ana Pérez"]["status"] == "READY"
    assert act(client, make, floor["sup"], ana_id, "AGENTLOGOUT").get_json() == {"status": "OK"}
    assert "Ana Pérez" not in agents_seen(client, make, floor["sup"])
    assert act(client, make, floor["sup"], ana_id, "AGENTPAUSE").get_json() == \
        {"status": "ERROR", "message": "El agente no tiene sesión iniciada"}


def test_action_errors(client, make, floor):
    ana_id = floor["ana"].agent.id
    assert act(client, make, floor["sup"], ana_id, "DANCE").get_json() == \
        {"status": "ERROR", "message": "La acción indicada no existe"}
    assert act(client, make, floor["sup"], ana_id, "DANCE", "en").get_json() == \
        {"status": "ERROR", "message": "Action does not exist"}
    response = act(client, make, floor["sup"], 999999, "AGENTPAUSE")
    assert (response.status_code, response.get_json()) == \
        (404, {"status": "ERROR", "message": "Agent not found"})
    for user in (make.agent(), make.user("Referente")):
        response = act(client, make, user, ana_id, "AGENTPAUSE")
        assert (response.status_code, response.get_json()) == \
            (403, {"status": "ERROR", "message": "Wrong user profile"})
    response = act(client, make, floor["sup"], floor["other"].agent.id, "AGENTPAUSE")
    assert response.status_code == 403  # not a supervisor of that agent's campaigns
    response = client.post(f"/api/v1/supervision/action_on_agent/{ana_id}/", data={"accion": "X"})
    assert response.status_code == 403


def test_listening_in_needs_a_live_call_and_a_phone(client, make, floor):
    session(floor["ana"])
    ana_id = floor["ana"].agent.id
    assert act(client, make, floor["sup"], ana_id, "CHANSPY").get_json() == \
        {"status": "ERROR", "message": "El agente no está en llamada"}
    session(floor["ana"], on_call=True)
    live_call(floor["ana"], floor["sales"])
    assert act(client, make, floor["sup"], ana_id, "CHANSPYWISHPER").get_json() == \
        {"status": "ERROR", "message": "El supervisor no tiene extensión SIP"}
    users.ensure_supervisor_phone(floor["sup"], "1101")
    db.session.commit()
    # No telephony engine in this test: refused with the reason, never a false OK.
    assert act(client, make, floor["sup"], ana_id, "CHANTAKECALL").get_json()["status"] == "ERROR"


def beat(client, make, user, **fields):
    body = {"browser_id": "b-1", "tab_id": "t:1", "ui_state": "ready", "sent_at_ms": 1}
    body.update(fields)
    return client.post("/api/v1/agent/presence/heartbeat/", json=body, headers=make.headers(user))


def test_heartbeat_answers_and_validates(client, make, floor):
    response = beat(client, make, floor["ana"])
    body = response.get_json()
    assert response.status_code == 200
    assert body["status"] == "OK" and body["next_heartbeat_sec"] == 15
    assert abs(body["server_ts_ms"] - utcnow().timestamp() * 1000) < 5000
    for field, value in (("browser_id", "bad id"), ("tab_id", ""), ("tab_id", "x" * 129),
                         ("browser_id", None), ("ui_state", "x" * 65), ("sent_at_ms", "soon")):
        response = beat(client, make, floor["ana"], **{field: value})
        assert (response.status_code, response.get_json()) == \
            (400, {"status": "ERROR", "message": f"Valor inválido para {field}"}), field
    response = beat(client, make, floor["sup"])
    assert (response.status_code, response.get_json()) == \
        (403, {"status": "ERROR", "message": "Usuario sin perfil de agente"})


def test_lost_heartbeat_makes_the_agent_unavailable_for_new_calls_only(app, client, make, floor):
    from ari_engine.inbound import Inbound
    session(floor["ana"])
    session(floor["bob"])  # never beats: not affected
    assert beat(client, make, floor["ana"]).status_code == 200
    available = Inbound.available_agents(None, floor["sales"].id)
    assert set(available) == {floor["ana"].agent.id, floor["bob"].agent.id}
    row = db.session.get(AgentSession, floor["ana"].agent.id)
    row.heartbeat_at = utcnow() - timedelta(seconds=61)
    db.session.commit()
    assert Inbound.available_agents(None, floor["sales"].id) == [floor["bob"].agent.id]
    seen = agents_seen(client, make, floor["sup"])
    assert (seen["Ana Pérez"]["status"], seen["Bob"]["status"]) == ("UNAVAILABLE", "READY")
    assert seen["Ana Pérez"]["tiempo"] <= 2
    # A call in progress is not touched: still ONCALL while its console is silent.
    session(floor["ana"], on_call=True)
    call = live_call(floor["ana"], floor["sales"])
    assert agents_seen(client, make, floor["sup"])["Ana Pérez"]["status"] == "ONCALL"
    assert db.session.get(Call, call.id).state == "bridged"
    call.state, call.active_agent_id = "ended", None
    session(floor["ana"])
    assert beat(client, make, floor["ana"]).status_code == 200
    assert agents_seen(client, make, floor["sup"])["Ana Pérez"]["status"] == "READY"
    assert set(Inbound.available_agents(None, floor["sales"].id)) == \
        {floor["ana"].agent.id, floor["bob"].agent.id}


def test_campaign_lists_show_a_lost_heartbeat_once_the_timeout_runs_out(client, make, floor):
    """agent_status and agent_status_list follow the heartbeat as supervision/agents does: a
    beat 59 s old is still READY, 61 s old is UNAVAILABLE (out of the ready count); a paused
    agent whose console went silent is UNAVAILABLE too; an agent that never beat stays READY."""
    session(floor["ana"])
    session(floor["bob"], paused=True, pause_id="0")
    headers = make.headers(floor["sup"])
    cid = floor["sales"].id

    def lists():
        counts = client.get(f"/api/v1/agent_status/campaign/{cid}", headers=headers).get_json()
        listed = client.get(f"/api/v1/agent_status_list/campaign/{cid}", headers=headers)
        return counts, [entry["status"] for entry in listed.get_json()]

    assert beat(client, make, floor["ana"]).status_code == 200
    assert beat(client, make, floor["bob"]).status_code == 200
    for agent, age in ((floor["ana"], 59), (floor["bob"], 59)):
        db.session.get(AgentSession, agent.agent.id).heartbeat_at = utcnow() - timedelta(seconds=age)
    db.session.commit()
    assert lists() == ({"ready": 1, "oncall": 0, "pause": 1}, ["READY", "PAUSE"])
    for agent in (floor["ana"], floor["bob"]):
        db.session.get(AgentSession, agent.agent.id).heartbeat_at = utcnow() - timedelta(seconds=61)
    db.session.commit()
    assert lists() == ({"ready": 0, "oncall": 0, "pause": 0}, ["UNAVAILABLE", "UNAVAILABLE"])
    seen = agents_seen(client, make, floor["sup"])
    assert [seen[name]["status"] for name in ("Ana Pérez", "Bob")] == ["UNAVAILABLE"] * 2
    db.session.get(AgentSession, floor["bob"].agent.id).heartbeat_at = None  # never beat
    db.session.commit()
    assert lists() == ({"ready": 0, "oncall": 0, "pause": 1}, ["UNAVAILABLE", "PAUSE"])
    assert beat(client, make, floor["ana"]).status_code == 200
    assert lists() == ({"ready": 1, "oncall": 0, "pause": 1}, ["READY", "PAUSE"])


@pytest.mark.parametrize("strategy", ["leastrecent", "fewestcalls", "random", "rrmemory"])
def test_strategy_orders_the_available_agents(app, make, strategy):
    from oml_server.services import agent_pick as strategies
    from ari_engine.inbound import Inbound
    agents = [make.agent() for _ in range(4)]
    campaign = make.campaign(agents=agents, type="inbound")
    db.session.get(Campaign, campaign.id).strategy = strategy
    now = utcnow()
    # idle longest first: agents[0] .. agents[3]
    for position, agent in enumerate(agents):
        session(agent, idle_since=now - timedelta(minutes=10 - position))
    ids = [a.agent.id for a in agents]
    if strategy == "fewestcalls":  # agents[0] took two calls today, agents[1] one
        for agent_id in (ids[0], ids[0], ids[1]):
            db.session.add(Call(id=uuid.uuid4().hex, kind="inbound", campaign_id=campaign.id,
                                agent_id=agent_id, state="ended", bridged_at=now, created_at=now))
        db.session.commit()
    order = Inbound.available_agents(None, campaign.id)
    if strategy == "leastrecent":
        assert order == ids
    elif strategy == "fewestcalls":
        assert order == [ids[2], ids[3], ids[1], ids[0]]
    elif strategy == "random":
        orders = {tuple(Inbound.available_agents(None, campaign.id)) for _ in range(30)}
        assert len(orders) > 1 and all(sorted(o) == sorted(ids) for o in orders)
    else:
        assert order == sorted(ids)
        strategies.remember(campaign.id, sorted(ids)[1])
        assert Inbound.available_agents(None, campaign.id) == sorted(ids)[2:] + sorted(ids)[:2]
        strategies.remember(campaign.id, sorted(ids)[3])
        assert Inbound.available_agents(None, campaign.id) == sorted(ids)


def spy(client, make, user, lang=None, **body):
    return client.post("/api/v1/call/spy/", json=body, headers=make.headers(user, lang))


def test_call_spy_checks_its_fields_in_omnileads_words(client, make, floor):
    sup, ana_id = floor["sup"], floor["ana"].agent.id
    cases = [({}, 400, {"error": "Falta parámetro obligatorio: agent_id"}),
             ({"agent_id": ana_id, "whisper": "loud"}, 400,
              {"error": "whisper debe ser uno de: none, out, both, in", "received": "loud"}),
             ({"agent_id": ana_id, "supervisor_id": "x"}, 400,
              {"error": "supervisor_id debe ser un entero válido"}),
             ({"agent_id": ana_id, "supervisor_id": 999999}, 400,
              {"error": "Supervisor no encontrado"}),
             ({"agent_id": 999999}, 404, {"error": "Agent not found"}),
             ({"agent_id": ana_id}, 400, {"error": "El agente no está en llamada"})]
    for body, status, answer in cases:
        response = spy(client, make, sup, **body)
        assert (response.status_code, response.get_json()) == (status, answer), body
    assert spy(client, make, sup, "en").get_json() == \
        {"error": "Missing required parameter: agent_id"}


def test_call_spy_queues_for_a_supervisor_of_the_calls_campaign(client, make, floor,
                                                                 fake_telephony):
    sup, ana = floor["sup"], floor["ana"]
    session(ana, on_call=True)
    call = live_call(ana, floor["sales"])
    phone = users.ensure_supervisor_phone(sup, "1101")
    db.session.commit()
    asked = []
    fake_telephony.supervise = lambda call, phone, mode: asked.append((call.id, phone.id, mode))
    response = spy(client, make, sup, agent_id=ana.agent.id, whisper="out")
    assert (response.status_code, response.get_json()) == (202, {
        "status": "queued", "message": "Comando recibido", "subscribers": 1,
        "channel": "acd:commands:local", "node_id": "local", "callid": call.id,
        "supervisor_id": sup.id, "supervisor_sip": "1101", "whisper": "out"})
    assert asked == [(call.id, phone.id, "whisper")]
    other = make.user("Supervisor")
    users.ensure_supervisor_phone(other, "1102")
    db.session.commit()
    response = spy(client, make, other, agent_id=ana.agent.id)
    assert response.status_code == 403 and asked == [(call.id, phone.id, "whisper")]
    del fake_telephony.supervise  # an engine that cannot listen in: nothing is queued
    response = spy(client, make, sup, agent_id=ana.agent.id, whisper="both")
    assert (response.status_code, response.get_json()["subscribers"]) == (202, 0)


def test_three_way_conf_rings_the_supervisor_into_the_call_as_a_third_party(
        client, make, floor, fake_telephony):
    """contract-calls §3: `call/three-way-conf/` — the supervisor joins as a third party (the
    engine's barge), with OMniLeads' keys and its checks in its words."""
    sup, ana = floor["sup"], floor["ana"]
    conf = lambda user, **body: client.post("/api/v1/call/three-way-conf/", json=body,  # noqa
                                            headers=make.headers(user))
    assert (conf(sup).status_code, conf(sup).get_json()) == \
        (400, {"error": "Falta parámetro obligatorio: agent_id"})
    assert conf(sup, agent_id=ana.agent.id).get_json() == {"error": "El agente no está en llamada"}
    session(ana, on_call=True)
    call = live_call(ana, floor["sales"])
    phone = users.ensure_supervisor_phone(sup, "1101")
    db.session.commit()
    asked = []
    fake_telephony.supervise = lambda call, phone, mode: asked.append((call.id, phone.id, mode))
    response = conf(sup, agent_id=ana.agent.id, supervisor_id=sup.id)
    assert (response.status_code, response.get_json()) == (202, {
        "status": "queued", "message": "Comando recibido", "subscribers": 1,
        "channel": "acd:commands:local", "node_id": "local", "call_id": call.id,
        "sip_number": "1101"})
    assert asked == [(call.id, phone.id, "barge")]
    assert conf(ana, agent_id=ana.agent.id).status_code == 403  # an agent may not
