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
