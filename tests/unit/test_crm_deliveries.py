"""Webhooks and external sites delivered to a stub CRM over real HTTP: bodies, order per
call, signatures, retries (5xx, refused connections) but not on 4xx, the token flow, claims."""
import hashlib
import hmac
import json
import time
import uuid
from datetime import timedelta
from urllib.parse import parse_qs

import gevent
import pytest

from oml_server.extensions import db
from oml_server.models import (Delivery, ExternalSite, ExternalSiteAuthentication, OutboxCursor,
                               Webhook, utcnow)
from oml_server.services import call_state, crm_sender, deliveries, dispositions
from tests.stub_crm import StubCrm


@pytest.fixture
def crm():
    stub = StubCrm().up()
    yield stub
    stub.down()


@pytest.fixture(autouse=True)
def fast_retries(app):
    app.config.update(CRM_RETRY_BASE_SECONDS=0, CRM_RETRY_HOURS=24, CRM_TIMEOUT_SECONDS=2)
    yield


def deliver_all(rounds=20):
    """Fan the outbox out and send every due delivery, as the worker does, until none is due."""
    fan_out = deliveries.FanOut()
    for _ in range(rounds):
        fan_out.step()
        sent = 0
        for destination in deliveries.due_destinations():
            for row in deliveries.claim(destination, 4, 30):
                crm_sender.send(row)
                sent += 1
        if not sent:
            return


def webhook(url, events=("*",), secret=None):
    hook = Webhook(url=url, events=list(events), secret=secret)
    db.session.add(hook)
    db.session.commit()
    return hook


def a_call(agent=None, campaign=None, contact=None, number="3515550000", end=True):
    call_id = uuid.uuid4().hex
    call_state.create(call_id, "click_to_call", agent_id=agent.agent.id if agent else None,
                      campaign_id=campaign.id if campaign else None,
                      contact_id=contact.id if contact else None, number=number)
    call_state.advance(call_id, "agent_ringing")
    call_state.advance(call_id, "agent_answered", agent_answered_at=call_state.now())
    call_state.advance(call_id, "contact_ringing")
    call_state.advance(call_id, "bridged", bridged_at=call_state.now())
    if end:
        call_state.finish(call_id, "ended", "contact hung up", hangup_cause=16)
    return call_id


def test_a_whole_call_reaches_the_webhook_in_order_signed(app, make, crm):
    agent = make.agent()
    campaign = make.campaign(agents=[agent])
    webhook(crm.url + "/hook", ["call.*"], secret="whsec-1")
    call_id = a_call(agent, campaign)
    deliver_all()
    got = crm.requests_to("/hook")
    assert [r.json()["type"] for r in got] == [
        "call.requested", "call.agent_ringing", "call.answered", "call.contact_ringing",
        "call.bridged", "call.ended"]
    last = got[-1].json()
    assert last["data"]["call_id"] == call_id and last["data"]["reason"] == "contact hung up"
    assert last["data"]["agent_id"] == agent.agent.id and last["data"]["campaign_id"] == campaign.id
    assert last["time"].endswith("Z") and int(last["id"]) > 0
    for received in got:
        expected = "sha256=" + hmac.new(b"whsec-1", received.body, hashlib.sha256).hexdigest()
        assert received.headers["X-OML-Signature"] == expected
    assert len({r.headers["X-OML-Delivery"] for r in got}) == 6


def test_filters_pick_event_types(app, make, crm):
    agent = make.agent()
    webhook(crm.url + "/ended", ["call.ended", "call.failed"])
    webhook(crm.url + "/agents", ["agent.status"])
    a_call(agent)
    deliver_all()
    assert [r.json()["type"] for r in crm.requests_to("/ended")] == ["call.ended"]
    assert crm.requests_to("/agents") == []


def test_retries_5xx_with_the_same_delivery_id_and_then_delivers(app, make, crm):
    webhook(crm.url + "/hook", ["call.requested"])
    crm.fail_next(503, 2)
    a_call(make.agent())
    deliver_all()
    attempts = crm.requests_to("/hook")
    assert [r.status for r in attempts] == [503, 503, 200]
    assert len({r.headers["X-OML-Delivery"] for r in attempts}) == 1
    row = db.session.scalars(db.select(Delivery)).one()
    assert (row.state, row.attempts, row.last_status) == ("delivered", 3, 200)


def test_a_4xx_is_not_retried(app, make, crm):
    webhook(crm.url + "/hook", ["call.requested"])
    crm.fail_next(422)
    a_call(make.agent())
    deliver_all()
    assert [r.status for r in crm.requests_to("/hook")] == [422]
    row = db.session.scalars(db.select(Delivery)).one()
    assert (row.state, row.last_error) == ("failed", "HTTP 422")


def test_a_dead_crm_is_retried_until_it_answers_and_gives_up_after_the_retry_window(app, make, crm):
    port = crm.port
    crm.down()
    webhook(f"http://127.0.0.1:{port}/hook", ["call.ended"])
    a_call(make.agent())
    deliver_all(rounds=3)
    row = db.session.scalars(db.select(Delivery)).one()
    assert row.state == "pending" and row.attempts == 3 and "ConnectionError" in row.last_error
    crm.port = port
    crm.up()
    deliver_all()
    assert len(crm.requests_to("/hook")) == 1
    # A delivery older than CRM_RETRY_HOURS fails for good at its next failed attempt.
    crm.down()
    a_call(make.agent())
    deliveries.FanOut().step()
    db.session.execute(db.update(Delivery).where(Delivery.state == "pending")
                       .values(created_at=utcnow() - timedelta(hours=25)))
    db.session.commit()
    deliver_all()
    states = sorted(r.state for r in db.session.scalars(db.select(Delivery)))
    assert states == ["delivered", "failed"]


def test_a_later_event_of_a_call_waits_for_the_earlier_one(app, make, crm):
    webhook(crm.url + "/hook", ["call.*"])
    crm.fail_next(503, 1)
    a_call(make.agent())
    deliver_all(rounds=1)   # the first failed: nothing after it may overtake it
    assert [r.json()["type"] for r in crm.requests_to("/hook")] == ["call.requested"]
    deliver_all()
    types = [r.json()["type"] for r in crm.requests_to("/hook") if r.status == 200]
    assert types[0] == "call.requested" and types[-1] == "call.ended" and len(types) == 6


def test_fan_out_is_idempotent_and_two_claims_never_share_a_row(app, make, crm):
    webhook(crm.url + "/hook", ["call.requested"])
    for _ in range(3):
        a_call(make.agent())
    deliveries.FanOut().step()
    deliveries.FanOut().step()   # a second process, or a restart from an older cursor
    db.session.execute(db.update(deliveries._deliveries).values(
        next_attempt_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    assert db.session.scalar(db.select(db.func.count()).select_from(Delivery)) == 3
    first = deliveries.claim(f"webhook:{db.session.scalars(db.select(Webhook)).one().id}", 2, 30)
    second = deliveries.claim(first[0].destination, 10, 30)
    assert len(first) == 2 and len(second) == 1
    assert not {r.id for r in first} & {r.id for r in second}
    # A sender that died leaves its lease: once it runs out the row is claimable again.
    db.session.execute(db.update(deliveries._deliveries).where(deliveries._deliveries.c.id == first[0].id)
                       .values(lease_until=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    assert [r.id for r in deliveries.claim(first[0].destination, 10, 30)] == [first[0].id]


def _server_site(crm, make, **kwargs):
    agent = make.agent(first_name="Ana", last_name="Diaz")
    database = make.contact_database()
    contact = make.contact(database, phone="3514440000", external_id="crm-77", NOMBRE="Juan")
    campaign = make.campaign(agents=[agent], database=database, name="ventas")
    site = ExternalSite(nombre="crm-pop", url=crm.url + "/pop/{1}", disparador=3, metodo=2,
                        formato=4, **kwargs)
    db.session.add(site)
    db.session.flush()
    campaign.external_site_id = site.id
    campaign.crm_parameters = [
        {"name": "call", "type": "call", "value": "call_id"},
        {"name": "agent", "type": "call", "value": "agent_username"},
        {"name": "agent_name", "type": "call", "value": "agent_name"},
        {"name": "phone", "type": "call", "value": "telefono"},
        {"name": "contact", "type": "call", "value": "id_contacto"},
        {"name": "crm_id", "type": "contact", "value": "id_ext"},
        {"name": "nombre", "type": "contact", "value": "NOMBRE"},
        {"name": "campaign", "type": "campaign", "value": "nombre"},
        {"name": "source", "type": "fixed", "value": "oml"},
        {"name": "{1}", "type": "contact", "value": "id_ext"},
    ]
    db.session.commit()
    return agent, campaign, contact, site


def test_the_servidor_site_hears_once_when_the_agent_answers(app, make, crm):
    agent, campaign, contact, _ = _server_site(crm, make)
    call_id = a_call(agent, campaign, contact, number="3514440000")
    deliver_all()
    got = crm.requests_to("/pop/crm-77")
    assert len(got) == 1   # answered then bridged: one request per agent taking the call
    assert got[0].headers["Content-Type"] == "application/json"
    assert got[0].json() == {"call": call_id, "agent": agent.username, "agent_name": "Ana Diaz",
                             "phone": "3514440000", "contact": contact.id, "crm_id": "crm-77",
                             "nombre": "Juan", "campaign": "ventas", "source": "oml"}


@pytest.mark.parametrize("metodo, formato, check", [
    (1, None, lambda r: r.method == "GET" and r.query["source"] == "oml" and r.body == b""),
    (2, 2, lambda r: parse_qs(r.body.decode())["source"] == ["oml"]
        and r.headers["Content-Type"] == "application/x-www-form-urlencoded"),
    (2, 1, lambda r: r.headers["Content-Type"].startswith("multipart/form-data; boundary=")
        and b'name="source"\r\n\r\noml' in r.body),
    (2, 3, lambda r: r.headers["Content-Type"].startswith("text/plain")
        and "source=oml" in r.body.decode().splitlines()),
])
def test_every_method_and_format(app, make, crm, metodo, formato, check):
    agent, campaign, contact, site = _server_site(crm, make)
    site.metodo, site.formato = metodo, formato
    db.session.commit()
    a_call(agent, campaign, contact)
    deliver_all()
    (got,) = crm.requests_to("/pop/crm-77")
    assert check(got)


def test_the_token_is_fetched_once_kept_and_fetched_again_after_a_401(app, make, crm):
    crm.require_token = {"/pop/crm-77"}
    auth = ExternalSiteAuthentication(nombre="crm-auth", url=crm.url + "/token", username="oml",
                                      password="pw", campo_token="token", duracion=0,
                                      campo_duracion="expires_in", ssl_estricto=True)
    db.session.add(auth)
    db.session.flush()
    agent, campaign, contact, site = _server_site(crm, make, autenticacion_id=auth.id)
    for _ in range(2):
        a_call(agent, campaign, contact)
    deliver_all()
    got = crm.requests_to("/pop/crm-77")
    assert crm.token_fetches == 1 and len(got) == 2
    assert {r.headers["Authorization"] for r in got} == {"Bearer tok-1"}
    crm.revoke_tokens()   # the CRM forgot it: a 401, one fresh token, the request again
    a_call(agent, campaign, contact)
    deliver_all()
    got = crm.requests_to("/pop/crm-77")
    assert crm.token_fetches == 2
    assert [r.status for r in got[2:]] == [401, 200]
    assert got[-1].headers["Authorization"] == "Bearer tok-2"
    # An expired token is fetched again before it is used.
    db.session.execute(db.update(ExternalSiteAuthentication).values(
        token_expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    a_call(agent, campaign, contact)
    deliver_all()
    assert crm.token_fetches == 3
    assert crm.requests_to("/pop/crm-77")[-1].headers["Authorization"] == "Bearer tok-3"


def test_the_calificacion_site_hears_a_disposition_whose_option_asks_for_it(app, make, crm):
    agent = make.agent()
    database = make.contact_database()
    contact = make.contact(database, external_id="crm-9")
    campaign = make.campaign(agents=[agent], database=database)
    sale = make.option(campaign, "Venta", type="engaged", crm_interaction=True)
    other = make.option(campaign, "No interesado")
    site = ExternalSite(nombre="crm-rate", url=crm.url + "/rated", disparador=4, metodo=2, formato=4)
    db.session.add(site)
    db.session.flush()
    campaign.external_site_id = site.id
    campaign.crm_parameters = [{"name": "opcion", "type": "disposition", "value": "name"},
                               {"name": "id", "type": "disposition", "value": "id"},
                               {"name": "form", "type": "disposition", "value": "form"},
                               {"name": "sub", "type": "disposition", "value": "subdisposition"},
                               {"name": "crm_id", "type": "contact", "value": "id_ext"}]
    db.session.commit()
    agent_ref = dispositions.AgentRef(agent.agent.id)
    created = dispositions.create(agent_ref, {"idContact": contact.id, "idDispositionOption": other.id})
    deliver_all()
    assert crm.requests_to("/rated") == []   # that option does not ask for the CRM
    disposition = db.session.get(dispositions.Disposition, created["id"])
    dispositions.update(agent_ref, disposition, {"idContact": contact.id, "idDispositionOption": sale.id,
                                                 "comments": "quiere el plan anual"})
    deliver_all()
    (got,) = crm.requests_to("/rated")
    # The form carries what the agent entered; no API records a sub-option (crm_request).
    assert got.json() == {"opcion": "Venta", "id": created["id"], "crm_id": "crm-9",
                          "form": {"comments": "quiere el plan anual"}, "sub": ""}


def test_dialplan_parameters_carry_the_inbound_calls_variables(app, make, crm):
    agent, campaign, contact, _ = _server_site(crm, make)
    campaign.crm_parameters = campaign.crm_parameters + [
        {"name": "ticket", "type": "dialplan", "value": "OMLCRMTICKET"},
        {"name": "unset", "type": "dialplan", "value": "OMLCRMOTHER"}]
    db.session.commit()
    call_id = uuid.uuid4().hex
    call_state.create(call_id, "inbound", campaign_id=campaign.id, contact_id=contact.id,
                      number="3514440000", crm_variables={"OMLCRMTICKET": "T-99"})
    call_state.advance(call_id, "agent_ringing", agent_id=agent.agent.id)
    call_state.advance(call_id, "bridged", bridged_at=call_state.now())
    deliver_all()
    (got,) = crm.requests_to("/pop/crm-77")
    assert got.json()["ticket"] == "T-99" and got.json()["unset"] == ""


def test_disposition_and_agent_status_events_are_in_the_outbox(app, make, client, crm):
    agent = make.agent()
    campaign = make.campaign(agents=[agent])
    option = make.option(campaign, "Venta")
    contact = make.contact(campaign.database)
    webhook(crm.url + "/hook", ["disposition.*", "agent.status"])
    headers = make.headers(agent)
    assert client.post("/api/v1/asterisk_login/", headers=headers).status_code == 200
    assert client.post("/api/v1/disposition/", headers=headers, json={
        "idContact": contact.id, "idDispositionOption": option.id, "callid": "abc"}).status_code == 201
    deliver_all()
    bodies = [r.json() for r in crm.requests_to("/hook")]
    assert [b["type"] for b in bodies] == ["agent.status", "disposition.created"]
    assert bodies[0]["data"] == {"agent_id": agent.agent.id, "event": "login", "online": False,
                                 "logged_in": True, "paused": False, "pause_id": None}
    assert bodies[1]["data"]["option_name"] == "Venta" and bodies[1]["data"]["call_id"] == "abc"


def test_the_delivery_log_shows_attempts_status_and_error(app, make, client, crm):
    admin = make.user("Administrador")
    hook = webhook(crm.url + "/hook", ["call.requested"])
    crm.fail_next(500)
    a_call(make.agent())
    deliver_all(rounds=1)
    answer = client.get(f"/api/v1/webhooks/{hook.id}/deliveries/", headers=make.headers(admin))
    (entry,) = answer.get_json()["deliveries"]
    assert (entry["state"], entry["attempts"], entry["last_status"], entry["last_error"]) == (
        "pending", 1, 500, "HTTP 500")
    assert json.loads(json.dumps(entry))["next_attempt_at"] is not None


def test_ssl_estricto_refuses_a_certificate_it_cannot_verify_and_off_accepts_it(app, make, tmp_path):
    import subprocess
    cert, key = str(tmp_path / "crm.pem"), str(tmp_path / "crm.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    crm = StubCrm(tls=(cert, key)).up()
    try:
        results = {}
        for strict in (True, False):
            auth = ExternalSiteAuthentication(nombre=f"auth-{strict}", url=crm.url + "/token",
                                              username="oml", password="pw", duracion=60,
                                              ssl_estricto=strict)
            db.session.add(auth)
            db.session.flush()
            agent, campaign, contact, site = _server_site(crm, make, autenticacion_id=auth.id)
            site.nombre, campaign.name = f"site-{strict}", f"campaign-{strict}"
            db.session.commit()
            a_call(agent, campaign, contact)
            deliver_all(rounds=2)
            row = db.session.scalars(db.select(Delivery).where(
                Delivery.destination == f"site:{site.id}")).one()
            results[strict] = (row.state, row.last_error or "")
        assert results[True][0] == "pending" and "token request failed" in results[True][1]
        assert results[False] == ("delivered", "")
        assert crm.token_fetches == 1   # only the lenient one got through TLS
    finally:
        crm.down()


def test_due_destinations_names_each_destination_with_a_due_row_once(app):
    now = utcnow()

    def row(destination, key, state, next_at=now - timedelta(seconds=1), lease=None):
        db.session.add(Delivery(destination=destination, key=key, url="http://127.0.0.1:9/",
                                body=b"", state=state, next_attempt_at=next_at, lease_until=lease))
    for n in range(3):
        row("webhook:1", f"a{n}", "pending")                            # due, three times
    row("webhook:2", "b", "pending", next_at=now + timedelta(hours=1))   # backing off
    row("webhook:3", "c", "sending", lease=now - timedelta(seconds=1))  # its sender died
    row("webhook:4", "d", "sending", lease=now + timedelta(minutes=1))  # being sent
    row("webhook:5", "e", "delivered")
    row("webhook:5", "f", "failed")
    row("site:1", "g", "pending", next_at=now + timedelta(hours=1))
    row("site:1", "h", "pending")                                       # one of its rows is due
    db.session.commit()
    assert sorted(deliveries.due_destinations()) == ["site:1", "webhook:1", "webhook:3"]


def test_released_rows_are_due_again_with_their_attempt_taken_back(app):
    for n in range(3):
        db.session.add(Delivery(destination="webhook:9", key=f"r{n}", order_key=f"call:{n}",
                                url="http://127.0.0.1:9/", body=b""))
    db.session.commit()
    first, second, third = deliveries.claim("webhook:9", 3, 30)
    # Another process took `third` over meanwhile (its lease ran out): not ours to release.
    db.session.execute(db.update(Delivery).where(Delivery.id == third.id).values(attempts=2))
    db.session.commit()
    deliveries.release([second, third])
    rows = {d.id: d for d in db.session.scalars(db.select(Delivery))}
    assert (rows[second.id].state, rows[second.id].attempts, rows[second.id].lease_until) == \
        ("pending", 0, None)
    assert (rows[third.id].state, rows[third.id].attempts) == ("sending", 2)
    assert (rows[first.id].state, rows[first.id].attempts) == ("sending", 1)
    assert "webhook:9" in deliveries.due_destinations()


def test_deleting_a_webhook_or_site_fails_what_it_had_not_delivered(app, make, client):
    hook = webhook("http://127.0.0.1:9/dead")
    site = ExternalSite(nombre="gone", url="http://127.0.0.1:9/site", disparador=3, metodo=1)
    db.session.add(site)
    db.session.commit()
    for destination in (f"webhook:{hook.id}", f"site:{site.id}"):
        for key, state in (("a", "pending"), ("b", "sending"), ("c", "delivered")):
            db.session.add(Delivery(destination=destination, key=key, url="http://127.0.0.1:9/",
                                    body=b"", state=state))
    db.session.commit()
    admin = make.headers(make.user("Administrador"))
    assert client.delete(f"/api/v1/webhooks/{hook.id}/", headers=admin).status_code == 204
    assert client.delete(f"/api/v1/external_sites/{site.id}/delete/", headers=admin).status_code == 200
    states = {(d.destination.split(":")[0], d.key): (d.state, d.last_error)
              for d in db.session.scalars(db.select(Delivery))}
    assert states == {
        ("webhook", "a"): ("failed", "webhook deleted"), ("webhook", "b"): ("failed", "webhook deleted"),
        ("webhook", "c"): ("delivered", None),
        ("site", "a"): ("failed", "external site deleted"),
        ("site", "b"): ("failed", "external site deleted"), ("site", "c"): ("delivered", None)}
    assert deliveries.due_destinations() == []   # nothing of theirs is tried any more


def test_calls_with_no_destination_do_not_write_the_cursor_every_poll(app, make):
    """No webhook, no site (the usual server): each poll that finds a call's events adds no
    delivery, and the persisted cursor moves at most every CURSOR_SAVE_SECONDS, not on every
    poll; a restart then starts from it and adds nothing twice."""
    from sqlalchemy import event as sa_event
    fan_out = deliveries.FanOut()
    a_call(make.agent())
    fan_out.step()   # the first batch of a process always writes its cursor
    writes = []

    def statement(conn, cursor, sql, *args, **kwargs):
        if sql.lstrip().upper().startswith(("UPDATE OUTBOX_CURSORS", "INSERT INTO OUTBOX_CURSORS")):
            writes.append(sql)
    sa_event.listen(db.engine, "before_cursor_execute", statement)
    try:
        for _ in range(3):
            a_call(make.agent())
            assert fan_out.step() == 0
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", statement)
    assert writes == []
    fan_out.saved_at -= deliveries.FanOut.CURSOR_SAVE_SECONDS   # time passes
    fan_out.step()
    db.session.expire_all()
    # Where the reader got to (every event, unless ids below them are still holes: on a
    # database whose sequence earlier tests moved on, the reader waits GAP_SECONDS for them).
    assert db.session.get(OutboxCursor, deliveries.CURSOR).last_event_id == fan_out.reader.after
    assert fan_out.saved == fan_out.reader.after


def test_the_fan_out_reads_the_outbox_when_events_are_written_not_every_poll(app, make, crm,
                                                                            monkeypatch):
    """An idle server's fan-out looks at the outbox once a second, not every
    DELIVERY_POLL_SECONDS; an event this process writes still reaches its webhook at once."""
    from oml_server import delivery_worker
    steps = []
    step = deliveries.FanOut.step

    def counted(self, *args, **kwargs):
        steps.append(time.monotonic())
        return step(self, *args, **kwargs)
    monkeypatch.setattr(deliveries.FanOut, "step", counted)
    app.config.update(DELIVERY_POLL_SECONDS=0.05)
    webhook(crm.url + "/hook", ["call.requested"])
    worker = delivery_worker.DeliveryWorker(app).start()
    try:
        gevent.sleep(1.2)
        assert len(steps) <= 3, len(steps)   # the first look, then one a second (was 24)
        written = time.monotonic()
        a_call(make.agent(), end=False)
        db.session.remove()
        for _ in range(40):
            if crm.requests_to("/hook"):
                break
            gevent.sleep(0.05)
        assert crm.requests_to("/hook") and time.monotonic() - written < 0.8
    finally:
        worker.stop()
