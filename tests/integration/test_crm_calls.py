"""The CRM hears about real calls: the real server and the lab Asterisk with SIPp phones, a
stub CRM (a local HTTP server) receiving the Servidor site's request when the agent answers a
click-to-call and an inbound call (token flow included), the Calificación request after a
disposition, the signed webhooks of a whole call in order, the same through a CRM outage; and
the event stream to an agent and a supervisor, resumed after a disconnect.

Run: ``OML_LAB_ARI_PORT=28088 OML_LAB_SIP_PORT=25070 OML_LAB_TRUNK_PORT=25090
.venv/bin/python -m pytest -m integration tests/integration/test_crm_calls.py -v``
"""
from __future__ import annotations

import hashlib
import hmac
import os
import time

import pytest

from conftest import PASSWORD
from lab import wait_until
from test_engine_calls import Agent, caller, phones  # noqa: F401 (fixture)

from oml_server import create_app, secrets_file
from oml_server.extensions import db
from tests.stub_crm import StubCrm
from tests.unit.test_crm_server_process import Stream

pytestmark = pytest.mark.integration

WHOLE_CALL = ["call.requested", "call.agent_ringing", "call.answered", "call.contact_ringing",
              "call.bridged", "call.ended"]
SECRET = "whsec-it"


class Config:
    """Writes the CRM configuration into the server's database, as provisioning would."""

    def __init__(self, database_url, world, crm):
        from oml_server.models import (Campaign, ExternalSite, ExternalSiteAuthentication,
                                       DispositionOption, Webhook)
        from oml_server.services import users
        self.app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "ARI_ENABLED": False,
                               "TESTING": True, **secrets_file.generate()})
        with self.app.app_context():
            auth = ExternalSiteAuthentication(nombre="it-auth", url=crm.url + "/token",
                                              username="oml", password="pw", duracion=0,
                                              campo_duracion="expires_in", ssl_estricto=True)
            db.session.add(auth)
            db.session.flush()
            pop = ExternalSite(nombre="it-pop", url=crm.url + "/pop", disparador=3, metodo=2,
                               formato=4, autenticacion_id=auth.id)
            rated = ExternalSite(nombre="it-rated", url=crm.url + "/rated", disparador=4,
                                 metodo=2, formato=2, objetivo=1)
            hook = Webhook(url=crm.url + "/hook", events=["call.*", "disposition.*"], secret=SECRET)
            db.session.add_all([pop, rated, hook])
            db.session.flush()
            params = [{"name": "call", "type": "call", "value": "call_id"},
                      {"name": "agent", "type": "call", "value": "agent_username"},
                      {"name": "phone", "type": "call", "value": "telefono"},
                      {"name": "campaign", "type": "campaign", "value": "nombre"},
                      {"name": "source", "type": "fixed", "value": "oml"}]
            campaigns = [db.session.get(Campaign, world.campaigns[n]) for n in ("manual", "inbound")]
            for campaign in campaigns:
                campaign.external_site_id, campaign.crm_parameters = pop.id, params
            sup = users.create_user("crm-sup", PASSWORD, "Supervisor")
            campaigns[0].supervisors = [sup]
            self.campaign_ids = [c.id for c in campaigns]
            option = DispositionOption(campaign_id=world.campaigns["manual"], name="Venta CRM",
                                       type="engaged", crm_interaction=True)
            db.session.add(option)
            db.session.commit()
            self.ids = {"pop": pop.id, "rated": rated.id, "hook": hook.id, "option": option.id,
                        "manual": world.campaigns["manual"]}

    def use_site(self, name):
        from oml_server.models import Campaign
        with self.app.app_context():
            db.session.get(Campaign, self.ids["manual"]).external_site_id = self.ids[name]
            db.session.commit()

    def remove(self):
        """Leave the shared server as it was: no sites, no webhook."""
        from oml_server.models import ExternalSite, Webhook
        with self.app.app_context():
            db.session.execute(db.delete(Webhook))
            for campaign_id in self.campaign_ids:
                db.session.execute(db.text("UPDATE campaigns SET external_site_id = NULL, "
                                           "crm_parameters = '[]' WHERE id = :i"), {"i": campaign_id})
            db.session.execute(db.delete(ExternalSite))
            db.session.commit()


@pytest.fixture(scope="module")
def crm():
    stub = StubCrm().up()
    stub.require_token = {"/pop"}
    yield stub
    stub.down()


@pytest.fixture(scope="module")
def config(server, world, database_url, crm):
    instance = Config(database_url, world, crm)
    yield instance
    instance.remove()


@pytest.fixture(scope="module")
def agents(server, lab, world):
    return {name: Agent(server, lab, info) for name, info in world.agents.items()}


def hooks_of(crm, call_id):
    return [r for r in crm.requests_to("/hook", ok_only=True)
            if r.json()["data"].get("call_id") == call_id]


def click_to_call(agent, world, number):
    body = agent.make_call(world.campaigns["manual"], number)
    assert body["status"] == "OK", body
    agent.wait_call(body["callId"], "bridged", 10)
    assert agent.hangup() == {"status": "OK"}
    agent.wait_call(body["callId"], ("ended", "failed"), 5)
    return body["callId"]


def test_servidor_site_and_webhooks_on_a_click_to_call(agents, world, phones, config, crm):
    ana = agents["ana"]
    ana.register(phones["answer"])
    call_id = click_to_call(ana, world, "5553001")
    (pop,) = [r for r in crm.wait_for("/pop") if r.json()["call"] == call_id]
    assert pop.json() == {"call": call_id, "agent": "ana", "phone": "5553001",
                          "campaign": "manual", "source": "oml"}
    assert pop.headers["Authorization"] == "Bearer tok-1" and crm.token_fetches == 1
    wait_until(lambda: len(hooks_of(crm, call_id)) == 6, 10, "the call's six webhooks")
    got = hooks_of(crm, call_id)
    assert [r.json()["type"] for r in got] == WHOLE_CALL
    assert got[-1].json()["data"]["reason"] == "hangup_requested"
    for received in got:
        assert received.headers["X-OML-Signature"] == \
            "sha256=" + hmac.new(SECRET.encode(), received.body, hashlib.sha256).hexdigest()


def test_servidor_site_on_an_inbound_call_reuses_the_token(agents, world, lab, phones, config,
                                                          crm, workdir):
    eva = agents["eva"]
    eva.register(phones["answer"])
    assert eva.session("login") == {"status": "OK"}
    log_dir = os.path.join(workdir, "crm-caller")
    os.makedirs(log_dir, exist_ok=True)
    before = len(crm.requests_to("/pop"))
    peer = caller(lab, world.campaigns["inbound"], log_dir)
    try:
        wait_until(lambda: len(crm.requests_to("/pop")) > before, 10, "the inbound Servidor request")
        got = crm.requests_to("/pop")[-1].json()
        assert got["agent"] == "eva" and got["campaign"] == "inbound" and got["source"] == "oml"
        assert crm.token_fetches == 1   # the token fetched for the first call, kept
        assert eva.hangup() == {"status": "OK"}
        wait_until(lambda: not peer.alive(), 5, "caller got BYE")
    finally:
        eva.session("logout")
        peer.stop()


def test_calificacion_site_after_a_disposition(agents, world, phones, config, crm, server):
    ana = agents["ana"]
    ana.register(phones["answer"])
    config.use_site("rated")
    try:
        call_id = click_to_call(ana, world, "5553002")
        token = ana.token
        answer = server.http.post(server.url + "/api/v1/new_contact/disposition/", timeout=10,
                                  headers={"Authorization": f"Bearer {token}"},
                                  json={"idDispositionOption": config.ids["option"],
                                        "phone": "5553002", "callid": call_id})
        assert answer.status_code == 201, answer.text
        (rated,) = crm.wait_for("/rated")
        assert rated.headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert f"call={call_id}" in rated.body.decode() and "agent=ana" in rated.body.decode()
        wait_until(lambda: any(r.json()["type"] == "disposition.created" for r in hooks_of(crm, call_id)),
                   10, "the disposition webhook")
        # In order per call: the disposition comes after the call's events.
        assert [r.json()["type"] for r in hooks_of(crm, call_id)] == WHOLE_CALL + ["disposition.created"]
    finally:
        config.use_site("pop")


def test_webhooks_through_a_crm_outage_arrive_once_each_in_order(agents, world, phones, config, crm):
    ana = agents["ana"]
    ana.register(phones["answer"])
    crm.down()
    try:
        call_id = click_to_call(ana, world, "5553003")
        time.sleep(2)   # a few failed attempts
    finally:
        crm.up()
    wait_until(lambda: len(hooks_of(crm, call_id)) == 6, 20, "the call's webhooks after the outage")
    time.sleep(1)
    got = hooks_of(crm, call_id)
    assert [r.json()["type"] for r in got] == WHOLE_CALL
    assert len({r.headers["X-OML-Delivery"] for r in got}) == 6


def test_the_stream_follows_a_call_for_its_agent_and_a_supervisor(agents, world, phones, config,
                                                                  server):
    ana = agents["ana"]
    ana.register(phones["answer"])
    agent_stream = Stream(server, ana.token)
    sup_stream = Stream(server, server.token("crm-sup"))
    try:
        time.sleep(0.5)
        call_id = click_to_call(ana, world, "5553004")
        wait_until(lambda: len(agent_stream.of_call(call_id)) == 6
                   and len(sup_stream.of_call(call_id)) == 6, 10, "the call on both streams")
        assert agent_stream.of_call(call_id) == WHOLE_CALL == sup_stream.of_call(call_id)
        last = agent_stream.events[-1][0]
        agent_stream.close()
        missed = click_to_call(ana, world, "5553005")
        agent_stream = Stream(server, ana.token, last_event_id=last)
        wait_until(lambda: len(agent_stream.of_call(missed)) == 6, 10, "the missed call replayed")
        assert agent_stream.of_call(missed) == WHOLE_CALL
        assert agent_stream.of_call(call_id) == []
    finally:
        agent_stream.close()
        sup_stream.close()


# -- the newer events: hold, blind transfer, supervision, recording --------------------------

def call_events(agent, call_id):
    """The call's events as the server recorded them (GET /api/v1/calls/<id>/), in order."""
    return [e["type"] for e in agent.call(call_id)["events"]]


def command(server, who, path, body):
    answer = server.http.post(server.url + path, json=body, timeout=10,
                              headers={"Authorization": f"Bearer {who.token}"})
    assert answer.status_code == 202, answer.text


def test_webhooks_of_a_held_then_blind_transferred_call(agents, world, phones, config, crm,
                                                        server):
    ana, bob = agents["ana"], agents["bob"]
    ana.register(phones["answer"])
    bob.register(phones["answer"])
    try:
        _held_then_transferred(ana, bob, world, crm, server)
    finally:   # test_engine_calls expects bob's phone offline
        bob.register(phones["answer"], expires=0)


def _held_then_transferred(ana, bob, world, crm, server):
    body = ana.make_call(world.campaigns["manual"], "5553006")
    call_id = body["callId"]
    ana.wait_call(call_id, "bridged", 10)
    command(server, ana, "/api/v1/call/hold/", {"call_id": call_id, "action": "hold"})
    wait_until(lambda: "call.held" in call_events(ana, call_id), 5, "held")
    command(server, ana, "/api/v1/call/hold/", {"call_id": call_id, "action": "unhold"})
    wait_until(lambda: "call.unheld" in call_events(ana, call_id), 5, "unheld")
    command(server, ana, "/api/v1/transfer/blind-agent/",
            {"call_id": call_id, "target_agent_id": bob.agent_id})
    wait_until(lambda: "call.transferred" in call_events(ana, call_id), 10, "transferred to bob")
    assert bob.hangup() == {"status": "OK"}
    bob.wait_call(call_id, ("ended",), 5)
    recorded = call_events(bob, call_id)
    wait_until(lambda: len(hooks_of(crm, call_id)) == len(recorded), 15, "every webhook")
    got = [r.json() for r in hooks_of(crm, call_id)]
    # Every event the call has, once, in the order it happened.
    assert [h["type"] for h in got] == recorded
    for expected in ("call.held", "call.unheld", "call.transfer_requested", "call.transferred"):
        assert expected in recorded
    assert recorded.index("call.bridged") < recorded.index("call.held") \
        < recorded.index("call.unheld") < recorded.index("call.transfer_requested") \
        < recorded.index("call.transferred") < recorded.index("call.ended")
    by_type = {h["type"]: h["data"] for h in got}
    assert by_type["call.held"]["leg"] == f"oml-{call_id}-contact"
    assert by_type["call.transfer_requested"]["from_agent_id"] == ana.agent_id
    assert by_type["call.transferred"]["agent_id"] == bob.agent_id
    # The Servidor site hears each agent that takes the call: ana, then bob after the transfer.
    pops = [r.json() for r in crm.requests_to("/pop", ok_only=True) if r.json()["call"] == call_id]
    assert [p["agent"] for p in pops] == ["ana", "bob"]


SUPERVISOR_EXT = "1902"


@pytest.fixture(scope="module")
def crm_supervisor(database_url, world, server, config):
    """A supervisor of the `lonely` campaign (agent ivy) with a phone, and `lonely` recorded."""
    from oml_server.models import Campaign
    from oml_server.services import users
    with config.app.app_context():
        sup = users.create_user("crm-sol", PASSWORD, "Supervisor")
        db.session.flush()
        users.ensure_supervisor_phone(sup, SUPERVISOR_EXT)
        lonely = db.session.get(Campaign, world.campaigns["lonely"])
        lonely.supervisors.append(sup)
        lonely.record = True
        db.session.commit()
    return server.token("crm-sol")


def test_webhooks_of_a_supervised_recorded_call(agents, world, lab, phones, config, crm, server,
                                                crm_supervisor, workdir):
    from lab import SippPeer, sipp_register
    from oml_server.models import Webhook
    with config.app.app_context():   # everything, recording.ready included
        db.session.add(Webhook(url=crm.url + "/all", events=["*"]))
        db.session.commit()
    ivy = agents["ivy"]
    sup_phone = SippPeer("agent_answer_hangup.xml", hangup_ms=2000).start()
    log_dir = os.path.join(workdir, "crm-supervised")
    os.makedirs(log_dir, exist_ok=True)
    creds, peer = {}, None
    try:
        ivy.register(phones["answer"])
        assert ivy.session("login") == {"status": "OK"}
        creds = server.get("/api/v1/sip/credentials/agent/", crm_supervisor)
        sipp_register([(SUPERVISOR_EXT, creds["sip_user"], creds["sip_password"])],
                      lab.sip_port, sup_phone.port)
        lab.wait_endpoint_state(SUPERVISOR_EXT, "online", 3)
        peer = caller(lab, world.campaigns["lonely"], log_dir)

        def on_call():
            entry = [a for a in server.get("/api/v1/supervision/agents/", crm_supervisor)
                     if a["id"] == ivy.agent_id and a["status"] == "ONCALL"]
            return entry and entry[0]
        wait_until(on_call, 8, "ivy on the inbound call")
        call_id = on_call()["call_id"]
        answer = server.post(f"/api/v1/supervision/action_on_agent/{ivy.agent_id}/",
                             crm_supervisor, {"accion": "CHANSPY"})
        assert answer == {"status": "OK"}, answer
        # Generous waits: under a loaded machine (two suites at once) the supervisor's INVITE
        # and the recording's close took 8-10 s in about 3 runs of 40; a passing run waits ~1 s.
        wait_until(lambda: "call.supervision_started" in call_events(ivy, call_id), 20,
                   "the supervisor listening")
        time.sleep(2.5)   # the supervisor's phone hangs up by itself
        assert ivy.hangup() == {"status": "OK"}
        ivy.wait_call(call_id, ("ended",), 5)
        wait_until(lambda: "recording.ready" in call_events(ivy, call_id), 20, "recording.ready")
        recorded = call_events(ivy, call_id)

        def received():
            return [r.json() for r in crm.requests_to("/all", ok_only=True)
                    if r.json()["data"].get("call_id") == call_id]
        wait_until(lambda: len(received()) == len(recorded), 15, "every webhook of the call")
        got = received()
        assert [h["type"] for h in got] == recorded
        assert recorded.index("call.bridged") < recorded.index("call.supervisor_ringing") \
            < recorded.index("call.supervision_started") < recorded.index("call.ended") \
            < recorded.index("recording.ready")
        by_type = {h["type"]: h["data"] for h in got}
        assert by_type["call.supervision_started"]["mode"] == "spy"
        ready = by_type["recording.ready"]
        assert ready["file"].endswith(f"{call_id}.wav") and ready["agent_id"] == ivy.agent_id
        assert ready["campaign_id"] == world.campaigns["lonely"]
    finally:
        ivy.session("logout")
        if peer is not None:
            peer.stop()
        if creds.get("status") == "OK":
            sipp_register([(SUPERVISOR_EXT, creds["sip_user"], creds["sip_password"])],
                          lab.sip_port, sup_phone.port, expires=0)
        sup_phone.stop()
        if ivy.creds is not None:   # other modules expect ivy's phone offline
            ivy.register(phones["answer"], expires=0)
