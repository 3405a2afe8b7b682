"""GET /api/v1/calls/<callId>/ [extension]: a call as JSON, for its agent and the supervisors
of its campaign; 404 for everyone else."""
from datetime import datetime, timezone

import pytest

from oml_server.extensions import db
from oml_server.models import Call
from tests.fake_telephony import fake_telephony  # noqa: F401 (fixture)

NOT_FOUND_ES = {"detail": "No encontrado."}
NOT_FOUND_EN = {"detail": "Not found."}


@pytest.fixture
def recorded(make):
    agent = make.agent()
    supervisor = make.user("Supervisor")
    campaign = make.campaign(agents=[agent], supervisors=[supervisor])
    contact = make.contact(campaign.database)
    call = Call(id="a" * 32, kind="click_to_call", state="ended", campaign_id=campaign.id,
                agent_id=agent.agent.id, contact_id=contact.id, number="3512222222",
                reason="Hung up by the contact.", hangup_cause=16,
                created_at=datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc),
                agent_answered_at=datetime(2024, 5, 1, 12, 0, 5, 250000, tzinfo=timezone.utc),
                bridged_at=datetime(2024, 5, 1, 12, 0, 9, tzinfo=timezone.utc),
                ended_at=datetime(2024, 5, 1, 12, 3, 0, tzinfo=timezone.utc),
                agent_channel_id="a" * 32 + "-agent", contact_channel_id="a" * 32 + "-contact",
                bridge_id="a" * 32 + "-bridge")
    db.session.add(call)
    db.session.commit()
    return agent, supervisor, campaign, contact, call


def expected(agent, campaign, contact):
    return {
        "id": "a" * 32, "kind": "click_to_call", "campaign": campaign.id, "agent": agent.agent.id,
        "contact": contact.id, "number": "3512222222", "state": "ended",
        "reason": "Hung up by the contact.", "hangup_cause": 16,
        "created_at": "2024-05-01T12:00:00+00:00",
        "agent_answered_at": "2024-05-01T12:00:05.250000+00:00",
        "bridged_at": "2024-05-01T12:00:09+00:00", "ended_at": "2024-05-01T12:03:00+00:00",
        "agent_channel_id": "a" * 32 + "-agent", "contact_channel_id": "a" * 32 + "-contact",
        "bridge_id": "a" * 32 + "-bridge",
        "current_agent": None, "legs": [], "events": [],
    }


@pytest.mark.parametrize("path", ["/api/v1/calls/" + "a" * 32 + "/", "/api/v1/calls/" + "a" * 32])
def test_the_agent_sees_its_call(client, make, recorded, path):
    agent, _, campaign, contact, _ = recorded
    response = client.get(path, headers=make.headers(agent))
    assert response.status_code == 200
    assert response.get_json() == expected(agent, campaign, contact)


@pytest.mark.parametrize("role", ["Supervisor", "Administrador", "Gerente"])
def test_supervisors_of_the_campaign_see_it(client, make, recorded, role):
    agent, _, campaign, contact, _ = recorded
    boss = make.user(role)
    campaign.supervisors.append(boss)
    db.session.commit()
    response = client.get("/api/v1/calls/" + "a" * 32 + "/", headers=make.headers(boss))
    assert response.status_code == 200
    assert response.get_json() == expected(agent, campaign, contact)


def test_everyone_else_gets_404(client, make, recorded):
    _, _, campaign, _, _ = recorded
    referente = make.user("Referente")
    campaign.supervisors.append(referente)  # listed, but not a supervising role
    db.session.commit()
    for user in (make.agent(), make.user("Supervisor"), make.user("Administrador"), referente):
        response = client.get("/api/v1/calls/" + "a" * 32 + "/", headers=make.headers(user))
        assert response.status_code == 404 and response.get_json() == NOT_FOUND_ES
    response = client.get("/api/v1/calls/" + "a" * 32 + "/",
                          headers=make.headers(make.agent(), "en"))
    assert response.get_json() == NOT_FOUND_EN


@pytest.mark.parametrize("call_id", ["b" * 32, "x", "a" * 33, "a" * 200])
def test_unknown_ids_are_404(client, make, recorded, call_id):
    response = client.get(f"/api/v1/calls/{call_id}/", headers=make.headers(recorded[0]))
    assert response.status_code == 404 and response.get_json() == NOT_FOUND_ES


def test_a_fresh_call_from_makecall(client, make, fake_telephony):
    agent = make.agent()
    campaign = make.campaign(agents=[agent])
    call_id = client.post("/api/v1/makeCall/", headers=make.headers(agent),
                          json={"idCampaign": campaign.id, "idAgent": agent.agent.id,
                                "phone": "3512222222"}).get_json()["callId"]
    body = client.get(f"/api/v1/calls/{call_id}/", headers=make.headers(agent)).get_json()
    assert body["id"] == call_id and body["state"] == "requested" and body["contact"] is None
    assert body["ended_at"] is None and body["bridge_id"] is None
    created = datetime.fromisoformat(body["created_at"])
    assert created.tzinfo is not None
    assert abs((datetime.now(timezone.utc) - created).total_seconds()) < 60


def test_auth_and_methods(client, make, recorded):
    response = client.get("/api/v1/calls/" + "a" * 32 + "/")
    assert response.status_code == 403
    response = client.post("/api/v1/calls/" + "a" * 32 + "/", headers=make.headers(recorded[0]))
    assert response.status_code == 405
