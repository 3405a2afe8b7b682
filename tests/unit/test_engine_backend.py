"""The ARI backend an API-only worker uses (split deployment): it knows from the engine's
heartbeat whether a call can run, and tells the agent what a failed originate means."""
from datetime import timedelta

import pytest

from ari_engine.ari_client import AriError, AriNotFound, AriUnavailable
from ari_engine.backend import AriBackend
from oml_server.extensions import db
from oml_server.models import Call, CallLeg, EngineNode, Event, utcnow
from oml_server.services import engine_status, telephony

from .test_make_call import call, world  # noqa: F401 (fixture)


class OriginateOnly:
    """An ARI that only records originates (and raises `error` on them when set)."""

    def __init__(self, error=None):
        self.error = error
        self.originated = []

    def originate(self, endpoint, **kwargs):
        self.originated.append((endpoint, kwargs))
        if self.error is not None:
            raise self.error


@pytest.fixture
def api_worker(app):
    engine_status._cache.clear()
    ari = OriginateOnly()
    previous = telephony.set_backend(AriBackend(ari, app.config))
    yield ari
    telephony.set_backend(previous)
    engine_status._cache.clear()


def make_call(client, make, world, lang="en"):  # noqa: F811
    agent, campaign, _ = world
    return call(client, make, agent, {"idCampaign": campaign.id, "idAgent": agent.agent.id,
                                      "phone": "3512222222"}, lang)


UNAVAILABLE = {"status": "ERROR", "message": "Error when executing the call",
               "errors": ["The telephony server is not reachable."]}


def test_no_engine_heartbeat_refuses_at_once_and_health_says_so(client, make, world,  # noqa: F811
                                                                   api_worker):
    assert make_call(client, make, world) == UNAVAILABLE
    assert api_worker.originated == []  # nothing rang
    rows = db.session.query(Call).all()
    assert [(r.kind, r.state, r.active_agent_id) for r in rows] == [("click_to_call", "failed", None)]
    health = client.get("/api/v1/health/").get_json()
    assert (health["status"], health["ari"]) == ("degraded", "no_engine")


def test_a_fresh_connected_heartbeat_places_the_call(client, make, world, api_worker):  # noqa: F811
    engine_status.beat("local", True, problems=["module chan_bridge_media.so is not loaded"])
    body = make_call(client, make, world)
    assert body["status"] == "OK"
    [(endpoint, kwargs)] = api_worker.originated
    assert endpoint == f"PJSIP/{world[0].agent.sip_extension}"
    # The agent's leg is on the record before the originate, with its role and node.
    [leg] = db.session.query(CallLeg).all()
    assert (leg.call_id, leg.asterisk_id, leg.role, leg.node, leg.state) == \
        (body["callId"], kwargs["channelId"], "agent", "local", "live")
    types = [e.type for e in db.session.query(Event).order_by(Event.id)]
    assert types == ["call.requested", "call.agent_ringing"]
    health = client.get("/api/v1/health/").get_json()
    assert health["ari"] == "ok"
    assert health["ari_problems"] == ["module chan_bridge_media.so is not loaded"]


@pytest.mark.parametrize("connected, age", [(False, 0), (True, 60)])
def test_a_disconnected_or_stale_engine_refuses(client, make, world, api_worker,  # noqa: F811
                                                connected, age):
    engine_status.beat("local", connected)
    db.session.query(EngineNode).update({"heartbeat_at": utcnow() - timedelta(seconds=age)})
    db.session.commit()
    assert make_call(client, make, world) == UNAVAILABLE
    assert api_worker.originated == []


@pytest.mark.parametrize("error, en, es", [
    (AriError(500, "Allocation failed"), "The agent's phone is not registered.",
     "El teléfono del agente no está registrado."),
    (AriNotFound(404, "Endpoint not found"),
     "The agent's extension does not exist in the telephony server.",
     "La extensión del agente no existe en el servidor de telefonía."),
    (AriError(400, "Invalid endpoint"), "The telephony server refused the call: Invalid endpoint",
     "El servidor de telefonía rechazó la llamada: Invalid endpoint"),
    (AriUnavailable("connection refused"), "The telephony server is not reachable.",
     "El servidor de telefonía no está disponible."),
    (AriError(503, "Service Unavailable"), "The telephony server is not reachable.",
     "El servidor de telefonía no está disponible."),
])
def test_originate_errors_reach_the_agent_as_what_they_are(client, make, world, api_worker,  # noqa: F811
                                                           error, en, es):
    engine_status.beat("local", True)
    api_worker.error = error
    assert make_call(client, make, world)["errors"] == [en]
    assert make_call(client, make, world, lang="es")["errors"] == [es]
    rows = db.session.query(Call).all()
    assert {(r.state, r.reason) for r in rows} == {("failed", en)}  # stored in English
