"""In-call commands over REST (contract-calls §0, §2, §3): the 202 shape, OMniLeads' error
texts, the [better] refusals at once in es/en, who may act, and what reaches the engine.
The engine's side is in tests/integration/test_call_control.py (real Asterisk)."""
import uuid

import pytest

from oml_server.extensions import db
from oml_server.models import AgentSession, Call
from oml_server.services import outbox, telephony


class Engine:
    """Takes commands like a connected engine (`subscribers` 1) and remembers them."""

    def __init__(self, subscribers=1):
        self.subscribers, self.commands, self.hung_up = subscribers, [], []

    def call_command(self, call, command, args):
        self.commands.append((call.id, command, args))
        return self.subscribers

    def hangup_call(self, call):
        self.hung_up.append(call.id)

    def status(self):
        return "ok"


@pytest.fixture
def engine():
    fake = Engine()
    previous = telephony.set_backend(fake)
    yield fake
    telephony.set_backend(previous)


@pytest.fixture
def world(make):
    ana, bob = make.agent(), make.agent()
    boss, stranger = make.user("Supervisor"), make.user("Supervisor")
    campaign = make.campaign(agents=[ana, bob], supervisors=[boss])
    other = make.campaign(agents=[bob], type="inbound")
    call = Call(id=uuid.uuid4().hex, kind="click_to_call", state="bridged", number="5551000",
                campaign_id=campaign.id, agent_id=ana.agent.id, active_agent_id=ana.agent.id,
                agent_channel_id="x-agent", contact_channel_id="x-contact", node="local")
    db.session.add(call)
    db.session.commit()
    return {"ana": ana, "bob": bob, "boss": boss, "stranger": stranger, "campaign": campaign,
            "other": other, "call": call}


def post(client, make, user, path, body, lang=None):
    response = client.post(path, json=body, headers=make.headers(user, lang))
    return response.status_code, response.get_json()


def queued(**extra):
    return {"status": "queued", "message": "Comando recibido", "subscribers": 1,
            "channel": "acd:commands:local", "node_id": "local", **extra}


def test_blind_agent_is_queued_for_the_engine(client, make, world, engine):
    call, bob = world["call"], world["bob"]
    for path in ("/api/v1/transfer/blind-agent/", "/api/v1/transfer/blind-agent"):
        assert post(client, make, world["ana"], path,
                    {"callid": call.id, "target_agent_id": str(bob.agent.id)}) == \
            (202, queued(target_agent_id=bob.agent.id))
    assert engine.commands[0][:2] == (call.id, "transfer")
    assert engine.commands[0][2]["mode"] == "agent"
    assert engine.commands[0][2]["target_agent_id"] == bob.agent.id


def test_no_engine_connected_means_no_subscriber(client, make, world):
    """contract-calls §0: subscribers 0 when no engine took it (then nothing happens)."""
    status, body = post(client, make, world["ana"], "/api/v1/call/hold/",
                        {"call_id": world["call"].id})
    assert (status, body) == (202, dict(queued(action="hold", call_id=world["call"].id),
                                         subscribers=0))


@pytest.mark.parametrize("path,body,error", [
    ("/api/v1/transfer/blind-agent/", {"call_id": "x"}, "Faltan parámetros: call_id, target_agent_id"),
    ("/api/v1/transfer/blind-agent/", {"target_agent_id": 1}, "Faltan parámetros: call_id, target_agent_id"),
    ("/api/v1/transfer/blind-endpoint/", {"call_id": "x"}, "Faltan parámetros: call_id, endpoint"),
    ("/api/v1/transfer/blind-campaign/", {}, "Faltan parámetros: call_id, target_campaign_id"),
    ("/api/v1/transfer/blind-campaign-agent/", {"campaign_id": 1}, "Falta parámetro obligatorio: call_id"),
    ("/api/v1/transfer/blind-campaign-agent/", {"call_id": "x"}, "campaign_id es requerido."),
    ("/api/v1/call/hangup-leg/", {}, "Falta parámetro obligatorio: call_id"),
])
def test_missing_fields_get_omnileads_texts(client, make, world, engine, path, body, error):
    assert post(client, make, world["ana"], path, body, lang="en") == (400, {"error": error})
    assert engine.commands == []


@pytest.mark.parametrize("lang,text", [(None, "La llamada no existe o ya terminó."),
                                       ("en", "The call does not exist or has already ended.")])
def test_unknown_or_ended_call_is_refused_at_once(client, make, world, engine, lang, text):
    ended = Call(id=uuid.uuid4().hex, kind="click_to_call", state="ended", number="1",
                 agent_id=world["ana"].agent.id, node="local")
    db.session.add(ended)
    db.session.commit()
    for call_id in ("nope", ended.id, "z" * 40):
        assert post(client, make, world["ana"], "/api/v1/call/hold/", {"call_id": call_id},
                    lang) == (404, {"error": text})
    assert engine.commands == []


def test_a_call_not_connected_yet_is_refused(client, make, world, engine):
    db.session.get(Call, world["call"].id).state = "contact_ringing"
    db.session.commit()
    assert post(client, make, world["ana"], "/api/v1/transfer/blind-endpoint/",
                {"call_id": world["call"].id, "endpoint": "5552000"}, "en") == \
        (400, {"error": "The call is not connected yet."})


@pytest.mark.parametrize("who,allowed", [("ana", True), ("boss", True), ("bob", False),
                                         ("stranger", False), ("Administrador", True),
                                         ("Gerente", True), ("Referente", False)])
def test_who_may_act_on_a_call(client, make, world, engine, who, allowed):
    user = world[who] if who in world else make.user(who)
    status, body = post(client, make, user, "/api/v1/call/hold/",
                        {"call_id": world["call"].id, "action": "hold"}, "en")
    if allowed:
        assert status == 202 and body["action"] == "hold"
    else:
        assert status == 403
        assert body == {"detail": "You do not have permission to perform this action."}
        assert engine.commands == []


def test_targets_are_checked(client, make, world, engine):
    ana, call = world["ana"], world["call"]
    assert post(client, make, ana, "/api/v1/transfer/blind-agent/",
                {"call_id": call.id, "target_agent_id": 99999}) == \
        (404, {"error": "Agente destino no encontrado."})
    assert post(client, make, ana, "/api/v1/transfer/blind-agent/",
                {"call_id": call.id, "target_agent_id": ana.agent.id}, "en") == \
        (400, {"error": "The call is already with that agent."})
    for raw in ("PJSIP/1000@trunk", "Local/1@x", "12", "5551;x"):
        status, body = post(client, make, ana, "/api/v1/transfer/blind-endpoint/",
                            {"call_id": call.id, "endpoint": raw}, "en")
        assert status == 400 and body["error"].startswith("The endpoint must be"), raw
    assert post(client, make, ana, "/api/v1/transfer/blind-campaign/",
                {"call_id": call.id, "target_campaign_id": 99999}, "en") == \
        (404, {"error": "Campaign not found"})
    assert engine.commands == []


def test_an_agent_extension_as_endpoint_is_a_transfer_to_that_agent(client, make, world, engine):
    bob = world["bob"]
    status, body = post(client, make, world["ana"], "/api/v1/transfer/blind-endpoint/",
                        {"call_id": world["call"].id, "endpoint": bob.agent.sip_extension})
    assert (status, body) == (202, queued(endpoint=bob.agent.sip_extension))
    assert engine.commands[0][2]["mode"] == "agent"
    assert engine.commands[0][2]["target_agent_id"] == bob.agent.id
    post(client, make, world["ana"], "/api/v1/transfer/blind-endpoint/",
         {"call_id": world["call"].id, "endpoint": "+5491155556666"})
    assert engine.commands[1][2] == {"mode": "endpoint", "endpoint": "+5491155556666",
                                     "by_user_id": world["ana"].id}


def test_blind_campaign_answers_without_message(client, make, world, engine):
    other = world["other"]
    body = queued(target_campaign_id=other.id)
    del body["message"]
    assert post(client, make, world["ana"], "/api/v1/transfer/blind-campaign/",
                {"call_id": world["call"].id, "target_campaign_id": other.id}) == (202, body)


def test_blind_campaign_agent_picks_the_idlest_available_member(client, make, world, engine):
    other, bob = world["other"], world["bob"]
    path = "/api/v1/transfer/blind-campaign-agent/"
    body = {"call_id": world["call"].id, "campaign_id": str(other.id)}
    assert post(client, make, world["ana"], path, body) == \
        (404, {"error": f"No hay agentes READY disponibles en la campaña {other.id}",
               "campaign_id": str(other.id)})
    session = db.session.get(AgentSession, bob.agent.id)
    session.online = session.logged_in = True
    db.session.commit()
    assert post(client, make, world["ana"], path, body) == \
        (202, queued(target_agent_id=bob.agent.id, campaign_id=other.id))


def test_hold_toggles_from_the_calls_record(client, make, world, engine):
    call = world["call"]
    assert post(client, make, world["ana"], "/api/v1/call/hold/", {})[1]["action"] == "hold"
    outbox.record("call.held", call_id=call.id)
    db.session.commit()
    assert post(client, make, world["ana"], "/api/v1/call/hold/", {"call_id": call.id})[1][
        "action"] == "unhold"
    assert [c[1] for c in engine.commands] == ["hold", "unhold"]


def test_hangup_leg_of_a_call_id_hangs_up_the_call(client, make, world, engine):
    call = world["call"]
    assert post(client, make, world["ana"], "/api/v1/call/hangup-leg/", {"call_id": call.id}) == \
        (202, queued(target_id=call.id, mode="auto"))
    assert engine.hung_up == [call.id]
    assert post(client, make, world["ana"], "/api/v1/call/hangup-leg/",
                {"channel_id": "not-a-leg"}, "en") == \
        (404, {"error": "That leg does not exist or is not live."})
