"""Item 4: who reaches what. Every protected endpoint × every bad token; own / another agent's /
another campaign's objects; agents never act as another agent; membership where the contract
asks for it (database_metadata, new_contact, makeCall — not dispositionOptions, §2.5)."""
import time

import jwt
import pytest
from sqlalchemy import func, select

from oml_server.extensions import db
from oml_server.models import Call, Contact, Disposition
from oml_server.services import users
from tests.factories import PASSWORD
from tests.unit.test_role_matrix import ENDPOINTS, OWN_403

NOT_FOUND = {"detail": "No encontrado."}
NO_PERMISSION_CAMPAIGN = {"idCampaign": ["No tiene permiso para editar la campaña."]}
DATA_ERRORS = "Hubo errores en los datos recibidos"
CHOICE = "Escoja una opción válida. Esa opción no está entre las disponibles."
PROTECTED = ENDPOINTS + [(m, p, a) for m, p, a, _ in OWN_403] + [("get", "/api/v1/calls/abc/", None)]


def _claims(user, **extra):
    claims = {"sub": str(user.id), "tv": user.token_version, "type": "access", "fresh": False,
              "jti": "x", "iat": int(time.time()), "nbf": int(time.time()) - 1,
              "exp": int(time.time()) + 600}
    claims.update(extra)
    return claims


def _bad_tokens(app, user):
    key = app.config["JWT_SECRET_KEY"]
    return {
        "forged key": (jwt.encode(_claims(user), "not-our-key-" * 4, algorithm="HS256"), "Invalid Token"),
        "alg none": (jwt.encode(_claims(user), None, algorithm="none"), "Invalid Token"),
        "alg HS512": (jwt.encode(_claims(user), key, algorithm="HS512"), "Invalid Token"),
        "alg HS384": (jwt.encode(_claims(user), key, algorithm="HS384"), "Invalid Token"),
        "expired": (jwt.encode(_claims(user, exp=int(time.time()) - 5, iat=int(time.time()) - 100),
                               key, algorithm="HS256"), "The Token is expired"),
        "stale version": (jwt.encode(_claims(user, tv=user.token_version - 1), key,
                                     algorithm="HS256"), "Invalid Token"),
        "no version": (jwt.encode({k: v for k, v in _claims(user).items() if k != "tv"}, key,
                                  algorithm="HS256"), "Invalid Token"),
        "unknown user": (jwt.encode(_claims(user, sub="999999"), key, algorithm="HS256"),
                         "Invalid Token"),
        "sub not a number": (jwt.encode(_claims(user, sub="admin"), key, algorithm="HS256"),
                             "Invalid Token"),
        "tampered payload": (_tamper(jwt.encode(_claims(user), key, algorithm="HS256")),
                             "Invalid Token"),
        "garbage": ("a.b.c", "Invalid Token"),
    }


def _tamper(token):
    import base64
    import json
    head, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "1"
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return ".".join((head, payload, sig))


def _send(client, method, path, headers):
    kwargs = {"headers": headers}
    if method in ("post", "put"):
        kwargs["json"] = {}
    return getattr(client, method)(path, **kwargs)


def test_every_bad_token_is_refused_by_every_endpoint(app, client, make):
    agent = make.agent()
    users.set_password(agent, PASSWORD)  # token_version moves on, so "stale version" is stale
    db.session.commit()
    tried = 0
    for name, (token, expected) in _bad_tokens(app, agent).items():
        for method, path, _ in PROTECTED:
            response = _send(client, method, path, {"Authorization": f"Bearer {token}"})
            assert response.status_code == 403, (name, path, response.get_json())
            assert response.get_json() == {"detail": expected}, (name, path)
            tried += 1
    assert tried == 11 * len(PROTECTED)


@pytest.mark.parametrize("cut", ["password change", "deactivation"])
def test_tokens_issued_before_a_cut_are_refused_everywhere(client, make, cut):
    agent = make.agent()
    old = make.headers(agent)
    assert client.get("/api/v1/disposition/", headers=old).status_code == 200
    if cut == "password change":
        users.set_password(agent, "another-pass-123")
        expected = "Invalid Token"
    else:
        agent.is_active = False
        expected = "User is not active"
    db.session.commit()
    for method, path, _ in PROTECTED:
        response = _send(client, method, path, old)
        assert (response.status_code, response.get_json()) == (403, {"detail": expected}), path


def _web_login(client, username, password=PASSWORD):
    client.get("/accounts/login/")
    csrf = client.get_cookie("csrftoken").value
    response = client.post("/accounts/login/", data={"username": username, "password": password,
                                                     "csrfmiddlewaretoken": csrf})
    assert response.status_code == 302


@pytest.mark.parametrize("cut", ["password change", "deactivation"])
def test_web_sessions_opened_before_a_cut_are_refused(app, make, cut):
    agent = make.agent()
    client = app.test_client()
    _web_login(client, agent.username)
    assert client.get("/api/v1/disposition/").status_code == 200
    if cut == "password change":
        users.set_password(agent, "another-pass-123")
    else:
        agent.is_active = False
    db.session.commit()
    response = client.get("/api/v1/disposition/")
    assert response.status_code == 403
    assert response.get_json() == {"detail": "Las credenciales de autenticación no se proveyeron."}


# --- own / another agent's / another campaign's objects ---------------------------------------

def _disposition(world, user, contact, campaign, option):
    row = Disposition(agent_id=user.agent.id, contact_id=contact.id, campaign_id=campaign.id,
                      option_id=option.id, comments="theirs")
    db.session.add(row)
    db.session.commit()
    return row


def _call(user, campaign):
    row = Call(id=f"call{user.id:04d}{campaign.id:04d}", kind="click_to_call", state="ended",
               campaign_id=campaign.id, agent_id=user.agent.id, number="3511111111")
    db.session.add(row)
    db.session.commit()
    return row


def test_dispositions_of_others_are_invisible_and_untouchable(client, make, world):
    bobs = _disposition(world, world.bob, world.contact_a, world.campaign_a, world.option_a)
    carols = _disposition(world, world.carol, world.contact_b, world.campaign_b, world.option_b)
    alice = make.headers(world.alice)
    assert client.get("/api/v1/disposition/", headers=alice).get_json() == []
    for other in (bobs, carols):
        path = f"/api/v1/disposition/{other.id}/"
        assert client.get(path, headers=alice).get_json() == NOT_FOUND
        response = client.put(path, json={"idContact": world.contact_a.id,
                                          "idDispositionOption": world.option_a.id,
                                          "comments": "mine now"}, headers=alice)
        assert (response.status_code, response.get_json()) == (404, NOT_FOUND)
    db.session.expire_all()
    assert {d.comments for d in db.session.scalars(select(Disposition))} == {"theirs"}
    assert {d.agent_id for d in db.session.scalars(select(Disposition))} == \
        {world.bob.agent.id, world.carol.agent.id}
    # the owner sees them
    bob = make.headers(world.bob)
    assert [d["id"] for d in client.get("/api/v1/disposition/", headers=bob).get_json()] == [bobs.id]
    assert client.get(f"/api/v1/disposition/{bobs.id}/", headers=bob).status_code == 200


def test_a_new_disposition_always_belongs_to_the_caller(client, make, world):
    """There is no field to name another agent: a body that tries is ignored."""
    response = client.post("/api/v1/disposition/", json={
        "idContact": world.contact_a.id, "idDispositionOption": world.option_a.id,
        "agent": world.bob.agent.id, "idAgent": world.bob.agent.id, "agent_id": world.bob.agent.id},
        headers=make.headers(world.alice))
    assert response.status_code == 201, response.get_json()
    row = db.session.get(Disposition, response.get_json()["id"])
    assert row.agent_id == world.alice.agent.id


def test_calls_are_visible_to_their_agent_and_campaign_supervisors_only(client, make, world):
    bobs = _call(world.bob, world.campaign_a)
    path = f"/api/v1/calls/{bobs.id}/"
    other_supervisor = make.user("Supervisor")
    make.campaign(supervisors=[other_supervisor])
    for user in (world.alice, world.carol, other_supervisor, make.user("Administrador"),
                 make.user("Gerente"), make.user("Referente")):
        response = client.get(path, headers=make.headers(user))
        assert (response.status_code, response.get_json()) == (404, NOT_FOUND), user.role
    for user in (world.bob, world.supervisor):
        response = client.get(path, headers=make.headers(user))
        assert response.status_code == 200 and response.get_json()["id"] == bobs.id


def test_hangup_only_touches_the_callers_own_call(client, make, world, fake_telephony):
    bobs = _call(world.bob, world.campaign_a)
    bobs.state, bobs.active_agent_id = "bridged", world.bob.agent.id
    db.session.commit()
    response = client.post("/api/v1/hangupCall/", headers=make.headers(world.alice))
    assert response.get_json() == {"status": "ERROR"}
    assert fake_telephony.hung_up == []


def _calls():
    return db.session.scalar(select(func.count()).select_from(Call))


@pytest.mark.parametrize("who", ["another agent of the campaign", "an agent of another campaign",
                                 "an unknown agent"])
def test_no_agent_places_calls_as_another(client, make, world, fake_telephony, who):
    target = {"another agent of the campaign": world.bob.agent.id,
              "an agent of another campaign": world.carol.agent.id,
              "an unknown agent": 999999}[who]
    body = client.post("/api/v1/makeCall/", json={"idCampaign": world.campaign_a.id,
                                                  "idAgent": target, "phone": "3511234567"},
                       headers=make.headers(world.alice)).get_json()
    assert body == {"status": "ERROR", "message": DATA_ERRORS, "errors": {"idAgent": [CHOICE]}}
    assert _calls() == 0 and fake_telephony.placed == []


def test_no_agent_places_calls_as_another_through_an_external_system(client, make, world,
                                                                     fake_telephony):
    make.link_agent(world.bob, world.system, "ext-bob")
    make.link_agent(world.alice, world.system, "ext-alice")
    body = client.post("/api/v1/makeCall/", json={
        "idExternalSystem": world.system.id, "idCampaign": "camp-a", "idAgent": "ext-bob",
        "phone": "3511234567"}, headers=make.headers(world.alice)).get_json()
    assert body == {"status": "ERROR", "message": DATA_ERRORS, "errors": {"idAgent": [CHOICE]}}
    assert _calls() == 0 and fake_telephony.placed == []


def test_calls_only_in_the_agents_own_campaigns(client, make, world, fake_telephony):
    body = client.post("/api/v1/makeCall/", json={"idCampaign": world.campaign_b.id,
                                                  "idAgent": world.alice.agent.id,
                                                  "phone": "3511234567"},
                       headers=make.headers(world.alice)).get_json()
    assert body == {"status": "ERROR", "message": DATA_ERRORS,
                    "errors": {"idAgent": ["El agente no participa en la campaña."]}}
    assert _calls() == 0 and fake_telephony.placed == []


@pytest.mark.parametrize("role", ["Agente", "Supervisor", "Administrador", "Gerente", "Referente"])
def test_campaigns_out_of_reach_are_refused(client, make, world, role):
    """database_metadata and new_contact need membership (agents) or supervision (others)."""
    user = world.carol if role == "Agente" else make.user(role)  # carol is in campaign B only
    headers = make.headers(user)
    expected = {"status": "ERROR", "message": DATA_ERRORS, "errors": NO_PERMISSION_CAMPAIGN}
    response = client.post("/api/v1/campaign/database_metadata/",
                           json={"idCampaign": world.campaign_a.id}, headers=headers)
    assert (response.status_code, response.get_json()) == (400, expected)
    if role != "Referente":  # Referente may not call new_contact at all (403, role matrix)
        before = db.session.scalar(select(func.count()).select_from(Contact))
        response = client.post("/api/v1/new_contact/", json={
            "idCampaign": world.campaign_a.id, "TELEFONO": "3517654321"}, headers=headers)
        assert (response.status_code, response.get_json()) == (400, expected)
        assert db.session.scalar(select(func.count()).select_from(Contact)) == before


def test_campaigns_in_reach_are_served(client, make, world):
    for user in (world.alice, world.supervisor):
        response = client.post("/api/v1/campaign/database_metadata/",
                               json={"idCampaign": world.campaign_a.id}, headers=make.headers(user))
        assert response.status_code == 200, response.get_json()


def test_disposition_options_need_no_membership(client, make, world):
    """Contract §2.5: OML does not check membership there and clients rely on it."""
    response = client.get(f"/api/v1/campaign/{world.campaign_b.id}/dispositionOptions/",
                          headers=make.headers(world.alice))
    assert response.status_code == 200
    assert [o["name"] for o in response.get_json()] == ["Otra", "Interesado B"]
