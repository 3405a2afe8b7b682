"""After-call work per campaign (`campaigns.acw_seconds`, provisioning `after_call_work`):
saving a call's disposition puts the agent in the ACW pause for the campaign's time, during
which it shows PAUSE-ACW everywhere and is offered no call; then it is ready again by itself.
A campaign without it (the default) leaves the agent ready."""
from datetime import timedelta

from oml_server.extensions import db
from oml_server.models import AgentSession, Campaign, utcnow
from oml_server.services import agent_pick, agent_presence, provisioning
from tests.fake_telephony import fake_telephony  # noqa: F401 (fixture)
from tests.unit.test_agent_console import get_state, set_session


def _setup(make, acw_seconds):
    agent = make.agent()
    supervisor = make.user("Supervisor")
    database = make.contact_database(columns=("TELEFONO", "NOMBRE"), external_id=None)
    campaign = make.campaign(agents=[agent], supervisors=[supervisor], database=database,
                             type="inbound")
    campaign.acw_seconds = acw_seconds
    option = make.option(campaign, "Venta")
    contact = make.contact(database, phone="5551234", NOMBRE="Carla")
    set_session(agent, online=True)
    return agent, supervisor, campaign, option, contact


def _dispose(client, make, agent, option, contact, callid="call-1"):
    body = {"idContact": contact.id, "idDispositionOption": option.id, "comments": "ok"}
    if callid:
        body["callid"] = callid
    response = client.post("/api/v1/disposition/", headers=make.headers(agent), json=body)
    assert response.status_code == 201, response.get_json()


def _supervised_status(client, make, supervisor):
    rows = client.get("/api/v1/supervision/agents/", headers=make.headers(supervisor)).get_json()
    return [row["status"] for row in rows]


def test_acw_after_the_disposition_then_ready_by_itself(client, make, fake_telephony):
    agent, supervisor, campaign, option, contact = _setup(make, acw_seconds=30)
    client.post("/api/v1/asterisk_login/", headers=make.headers(agent))
    assert agent_pick.available_agents(campaign.id) == [agent.agent.id]
    _dispose(client, make, agent, option, contact)
    state = get_state(client, make, agent)
    assert (state["state"], state["pause_id"], state["pause_name"]) == ("PAUSED", "0", "ACW")
    assert 28 <= state["acw_seconds_left"] <= 30
    assert _supervised_status(client, make, supervisor) == ["PAUSE-ACW"]
    assert agent_pick.available_agents(campaign.id) == []   # no inbound call during ACW
    assert agent_presence.end_after_call_work() == 0        # not over yet
    assert agent_presence.end_after_call_work(now=utcnow() + timedelta(seconds=31)) == 1
    state = get_state(client, make, agent)
    assert (state["state"], state["acw_seconds_left"]) == ("READY", None)
    assert _supervised_status(client, make, supervisor) == ["READY"]
    assert agent_pick.available_agents(campaign.id) == [agent.agent.id]
    assert db.session.get(AgentSession, agent.agent.id).pause_until is None


def test_without_acw_the_agent_is_ready_again(client, make):
    agent, _, campaign, option, contact = _setup(make, acw_seconds=0)
    client.post("/api/v1/asterisk_login/", headers=make.headers(agent))
    _dispose(client, make, agent, option, contact)
    assert get_state(client, make, agent)["state"] == "READY"


def test_only_a_calls_disposition_starts_acw(client, make):
    agent, _, _, option, contact = _setup(make, acw_seconds=30)
    client.post("/api/v1/asterisk_login/", headers=make.headers(agent))
    _dispose(client, make, agent, option, contact, callid=None)
    assert get_state(client, make, agent)["state"] == "READY"


def test_new_contact_disposition_starts_acw_too(client, make):
    agent, _, _, option, _ = _setup(make, acw_seconds=30)
    client.post("/api/v1/asterisk_login/", headers=make.headers(agent))
    response = client.post("/api/v1/new_contact/disposition/", headers=make.headers(agent),
                           json={"idDispositionOption": option.id, "phone": "5559876",
                                 "callid": "call-2"})
    assert response.status_code == 201
    assert get_state(client, make, agent)["pause_id"] == "0"


def test_ready_or_another_pause_ends_acw_and_a_chosen_pause_is_kept(client, make):
    agent, _, campaign, option, contact = _setup(make, acw_seconds=30)
    headers = make.headers(agent)
    break_ = make.pause(name="Break")
    client.post("/api/v1/asterisk_login/", headers=headers)
    _dispose(client, make, agent, option, contact)
    client.post("/api/v1/asterisk_ready/", headers=headers)   # the agent ends it early
    assert get_state(client, make, agent)["state"] == "READY"
    assert db.session.get(AgentSession, agent.agent.id).pause_until is None
    # A pause the agent chose before saving is not replaced by ACW, nor ended by its clock.
    client.post("/api/v1/asterisk_pause/", headers=headers, json={"pause_id": break_.id})
    other = make.contact(campaign.database, phone="5550000", NOMBRE="Otro")
    _dispose(client, make, agent, option, other, callid="call-3")
    assert agent_presence.end_after_call_work(now=utcnow() + timedelta(hours=1)) == 0
    assert get_state(client, make, agent)["pause_name"] == "Break"


def test_provisioning_sets_the_campaigns_acw(app, make):
    make.user("Agente", username="agent1")
    spec = {"contact_databases": [{"name": "leads", "columns": ["TELEFONO"], "main_phone": "TELEFONO"}],
            "campaigns": [{"name": "sales", "database": "leads", "agents": ["agent1"],
                           "after_call_work": 20}]}
    provisioning.provision(spec)
    assert db.session.scalars(db.select(Campaign)).one().acw_seconds == 20
    spec["campaigns"][0]["after_call_work"] = 0
    provisioning.provision(spec)
    assert db.session.scalars(db.select(Campaign)).one().acw_seconds == 0
    spec["campaigns"][0]["after_call_work"] = -1
    try:
        provisioning.provision(spec)
    except provisioning.ProvisioningError as exc:
        assert "after_call_work" in str(exc)
    else:
        raise AssertionError("a negative after_call_work was accepted")
