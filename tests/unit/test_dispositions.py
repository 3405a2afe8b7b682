"""Dispositions, contract §2.6: GET/POST /api/v1/disposition/, GET/PUT /api/v1/disposition/<id>/."""
import threading

import pytest
from sqlalchemy import func, select

from oml_server.extensions import db
from oml_server.models import Disposition
from oml_server.services import dispositions as dispositions_service

from .statements_sent import is_postgresql, statements_of

OPTION_NOT_FOUND = {"status": "ERROR", "idDispositionOption": "Disposition option id not found"}
CONTACT_NOT_FOUND = {"status": "ERROR", "idContact": "Contact id not found"}
DUPLICATE = {"status": "ERROR", "msg": "There is another disposition for this contact on this campaign"}
NOT_FOUND_ES = {"detail": "No encontrado."}
NOT_FOUND_EN = {"detail": "Not found."}


class World:
    """An agent in a campaign with a visible and a hidden option and one contact."""

    def __init__(self, make):
        self.make = make
        self.agent = make.agent()
        self.other_agent = make.agent()
        self.database = make.contact_database()
        self.campaign = make.campaign(agents=[self.agent, self.other_agent], database=self.database)
        self.option = make.option(self.campaign, "Venta")
        self.other_option = make.option(self.campaign, "Volver a llamar")
        self.hidden = make.option(self.campaign, "Vieja", hidden=True)
        self.contact = make.contact(self.database, external_id="crm-77")
        self.headers = make.headers(self.agent)

    def post(self, client, body, path="/api/v1/disposition/", form=False, headers=None):
        kwargs = {"data": body} if form else {"json": body}
        return client.post(path, headers=headers or self.headers, **kwargs)

    def body(self, **overrides):
        body = {"idContact": self.contact.id, "idDispositionOption": self.option.id,
                "comments": "texto", "callid": "1700000000.123"}
        body.update(overrides)
        return {k: v for k, v in body.items() if v is not ...}


@pytest.fixture
def world(make):
    return World(make)


def _rows():
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(Disposition))


# ----------------------------------------------------------------------------------- POST

@pytest.mark.parametrize("path", ["/api/v1/disposition/", "/api/v1/disposition"])
@pytest.mark.parametrize("form", [False, True], ids=["json", "form"])
def test_post_creates_a_disposition(client, world, path, form):
    response = world.post(client, world.body(idContact=str(world.contact.id),
                                             idDispositionOption=str(world.option.id)),
                          path=path, form=form)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body == {"id": body["id"], "idContact": world.contact.id, "callid": "1700000000.123",
                    "idDispositionOption": world.option.id, "comments": "texto"}
    assert list(body) == ["id", "idContact", "callid", "idDispositionOption", "comments"]
    row = db.session.get(Disposition, body["id"])
    assert (row.agent_id, row.campaign_id, row.contact_id) == (
        world.agent.agent.id, world.campaign.id, world.contact.id)


def test_post_ids_as_numbers_and_defaults(client, world):
    response = world.post(client, {"idContact": world.contact.id,
                                   "idDispositionOption": world.option.id})
    assert response.status_code == 201
    body = response.get_json()
    assert body["callid"] is None and body["comments"] == ""


@pytest.mark.parametrize("value", [..., None, "", "abc", 999999, "999999", True, 1.5, {"a": 1}, [1]],
                         ids=["missing", "null", "blank", "text", "unknown", "unknown-str", "bool",
                              "fraction", "object", "list"])
@pytest.mark.parametrize("lang", [None, "en"])
def test_post_bad_option(client, world, value, lang):
    headers = world.make.headers(world.agent, lang=lang)
    response = world.post(client, world.body(idDispositionOption=value), headers=headers)
    assert response.status_code == 400
    assert response.get_json() == OPTION_NOT_FOUND
    assert _rows() == 0


def test_post_hidden_option_is_not_found(client, world):
    response = world.post(client, world.body(idDispositionOption=world.hidden.id))
    assert response.status_code == 400
    assert response.get_json() == OPTION_NOT_FOUND


@pytest.mark.parametrize("value", [..., None, "", "x", 999999, True])
def test_post_bad_contact(client, world, value):
    response = world.post(client, world.body(idContact=value))
    assert response.status_code == 400
    assert response.get_json() == CONTACT_NOT_FOUND
    assert _rows() == 0


def test_contact_must_be_in_the_database_of_the_options_campaign(client, world, make):
    stranger = make.contact(make.contact_database())
    response = world.post(client, world.body(idContact=stranger.id))
    assert response.status_code == 400
    assert response.get_json() == CONTACT_NOT_FOUND


def test_option_is_checked_before_contact(client, world):
    response = world.post(client, world.body(idContact=999999, idDispositionOption=999999))
    assert response.get_json() == OPTION_NOT_FOUND


@pytest.mark.parametrize("system_as", [int, str])
def test_post_with_external_system_uses_the_external_contact_id(client, world, make, system_as):
    system = make.external_system()
    response = world.post(client, world.body(idContact="crm-77", idExternalSystem=system_as(system.id)))
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["idContact"] == world.contact.id


def test_numeric_external_contact_id(client, world, make):
    system = make.external_system()
    contact = make.contact(world.database, phone="3512222222", external_id="4242")
    response = world.post(client, world.body(idContact=4242, idExternalSystem=system.id))
    assert response.status_code == 201
    assert response.get_json()["idContact"] == contact.id


def test_external_contact_id_not_internal_id(client, world, make):
    system = make.external_system()
    response = world.post(client, world.body(idContact=world.contact.id, idExternalSystem=system.id))
    assert response.status_code == 400
    assert response.get_json() == CONTACT_NOT_FOUND


@pytest.mark.parametrize("lang,message", [(None, "Sistema externo inexistente."),
                                          ("en", "Unkown external system")])
@pytest.mark.parametrize("system", [999999, "abc", "999999"])
def test_unknown_external_system(client, world, lang, message, system):
    response = world.post(client, world.body(idContact="crm-77", idExternalSystem=system),
                          headers=world.make.headers(world.agent, lang=lang))
    assert response.status_code == 400
    assert response.get_json() == {"status": "ERROR", "idExternalSystem": message}
    assert _rows() == 0


def test_blank_external_system_means_internal_ids(client, world):
    response = world.post(client, world.body(idExternalSystem=""), form=True)
    assert response.status_code == 201


def test_callid_length(client, world):
    response = world.post(client, world.body(callid="x" * 33))
    assert response.status_code == 400
    assert response.get_json() == {"status": "ERROR",
                                   "callid": "Ensure this field has no more than 32 characters."}
    assert _rows() == 0
    response = world.post(client, world.body(callid="x" * 32))
    assert response.status_code == 201
    assert response.get_json()["callid"] == "x" * 32


def test_numeric_callid_and_comments_are_text(client, world):
    response = world.post(client, world.body(callid=1700000000.5, comments=12))
    assert response.status_code == 201
    assert response.get_json()["callid"] == "1700000000.5"
    assert response.get_json()["comments"] == "12"


@pytest.mark.parametrize("field", ["comments", "callid"])
def test_non_text_fields(client, world, field):
    response = world.post(client, world.body(**{field: {"a": 1}}))
    assert response.status_code == 400
    assert response.get_json() == {"status": "ERROR", field: "Not a valid string."}


def test_duplicate_disposition_for_contact_and_campaign(client, world, make):
    assert world.post(client, world.body()).status_code == 201
    again = world.post(client, world.body(idDispositionOption=world.other_option.id))
    assert again.status_code == 400
    assert again.get_json() == DUPLICATE
    # Another agent rating the same contact in the same campaign is a duplicate too.
    other = world.post(client, world.body(), headers=make.headers(world.other_agent))
    assert other.get_json() == DUPLICATE
    assert _rows() == 1


def test_same_contact_in_another_campaign_is_fine(client, world, make):
    second = make.campaign(agents=[world.agent], database=world.database)
    option = make.option(second, "Otra")
    assert world.post(client, world.body()).status_code == 201
    assert world.post(client, world.body(idDispositionOption=option.id)).status_code == 201
    assert _rows() == 2


def test_membership_is_not_checked(client, world, make):
    """OMniLeads does not check that the agent is in the option's campaign (contract §2.6)."""
    outsider = make.agent()
    response = world.post(client, world.body(), headers=make.headers(outsider))
    assert response.status_code == 201


@pytest.mark.parametrize("raw,content_type", [('{"idContact": ', "application/json"),
                                              ("[1, 2]", "application/json"),
                                              ("hello", "text/plain")])
def test_malformed_body(client, world, raw, content_type):
    response = client.post("/api/v1/disposition/", data=raw, content_type=content_type,
                           headers=world.headers)
    assert response.status_code == 400
    body = response.get_json()
    assert body["status"] == "ERROR" and isinstance(body["msg"], str) and body["msg"]
    assert list(body) == ["status", "msg"]


def test_empty_body_is_option_not_found(client, world):
    response = client.post("/api/v1/disposition/", headers=world.headers)
    assert response.status_code == 400
    assert response.get_json() == OPTION_NOT_FOUND


# ------------------------------------------------------------------------------------ GET

def _create(client, world, headers=None, **overrides):
    response = world.post(client, world.body(**overrides), headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


@pytest.mark.parametrize("path", ["/api/v1/disposition/", "/api/v1/disposition"])
def test_list_only_the_calling_agents(client, world, make, path):
    mine = _create(client, world)
    second = make.contact(world.database, phone="3513333333")
    mine2 = _create(client, world, idContact=second.id, callid=None)
    third = make.contact(world.database, phone="3514444444")
    _create(client, world, headers=make.headers(world.other_agent), idContact=third.id)
    response = client.get(path, headers=world.headers)
    assert response.status_code == 200
    assert response.get_json() == [mine, mine2]
    assert mine2["callid"] is None


def test_list_empty(client, world):
    response = client.get("/api/v1/disposition/", headers=world.headers)
    assert response.status_code == 200
    assert response.get_json() == []


@pytest.mark.parametrize("slash", ["/", ""])
def test_get_one(client, world, slash):
    created = _create(client, world)
    response = client.get(f"/api/v1/disposition/{created['id']}{slash}", headers=world.headers)
    assert response.status_code == 200
    assert response.get_json() == created


@pytest.mark.parametrize("lang,expected", [(None, NOT_FOUND_ES), ("en", NOT_FOUND_EN)])
def test_get_another_agents_or_unknown_is_404(client, world, make, lang, expected):
    created = _create(client, world)
    other_headers = make.headers(world.other_agent, lang=lang)
    for path in (f"/api/v1/disposition/{created['id']}/", "/api/v1/disposition/999999/",
                 "/api/v1/disposition/abc/"):
        response = client.get(path, headers=other_headers)
        assert response.status_code == 404, path
        assert response.get_json() == expected


# ------------------------------------------------------------------------------------ PUT

@pytest.mark.parametrize("slash", ["/", ""])
@pytest.mark.parametrize("form", [False, True], ids=["json", "form"])
def test_put_replaces_fields(client, world, slash, form):
    created = _create(client, world)
    body = {"idContact": str(world.contact.id), "idDispositionOption": str(world.other_option.id),
            "comments": "nuevo", "callid": "abc.1"}
    kwargs = {"data": body} if form else {"json": body}
    response = client.put(f"/api/v1/disposition/{created['id']}{slash}", headers=world.headers, **kwargs)
    assert response.status_code == 200, response.get_json()
    expected = {"id": created["id"], "idContact": world.contact.id, "callid": "abc.1",
                "idDispositionOption": world.other_option.id, "comments": "nuevo"}
    assert response.get_json() == expected
    assert client.get(f"/api/v1/disposition/{created['id']}/", headers=world.headers).get_json() == expected


def test_put_without_callid_clears_it(client, world):
    created = _create(client, world)
    response = client.put(f"/api/v1/disposition/{created['id']}/", headers=world.headers,
                          json={"idContact": world.contact.id, "idDispositionOption": world.option.id})
    assert response.status_code == 200
    assert response.get_json()["callid"] is None
    assert response.get_json()["comments"] == ""


def test_put_may_keep_an_option_hidden_since(client, world):
    created = _create(client, world)
    world.option.hidden = True
    db.session.commit()
    response = client.put(f"/api/v1/disposition/{created['id']}/", headers=world.headers,
                          json=world.body(comments="sigue"))
    assert response.status_code == 200
    assert response.get_json()["idDispositionOption"] == world.option.id


def test_put_may_not_change_to_a_hidden_option(client, world):
    created = _create(client, world)
    response = client.put(f"/api/v1/disposition/{created['id']}/", headers=world.headers,
                          json=world.body(idDispositionOption=world.hidden.id))
    assert response.status_code == 400
    assert response.get_json() == OPTION_NOT_FOUND
    assert client.get(f"/api/v1/disposition/{created['id']}/", headers=world.headers).get_json() == created


@pytest.mark.parametrize("body,expected", [
    ({"idDispositionOption": None}, OPTION_NOT_FOUND),
    ({"idContact": 999999}, CONTACT_NOT_FOUND),
    ({"callid": "y" * 40}, {"status": "ERROR", "callid": "Ensure this field has no more than 32 characters."}),
])
def test_put_errors_leave_it_unchanged(client, world, body, expected):
    created = _create(client, world)
    response = client.put(f"/api/v1/disposition/{created['id']}/", headers=world.headers,
                          json=world.body(comments="cambiado", **body))
    assert response.status_code == 400
    assert response.get_json() == expected
    assert client.get(f"/api/v1/disposition/{created['id']}/", headers=world.headers).get_json() == created


def test_put_another_agents_is_404_and_untouched(client, world, make):
    created = _create(client, world)
    response = client.put(f"/api/v1/disposition/{created['id']}/", headers=make.headers(world.other_agent),
                          json=world.body(comments="ajeno"))
    assert response.status_code == 404
    assert response.get_json() == NOT_FOUND_ES
    assert client.get(f"/api/v1/disposition/{created['id']}/", headers=world.headers).get_json() == created


def test_put_unknown_is_404_before_reading_the_body(client, world):
    response = client.put("/api/v1/disposition/999999/", headers=world.headers, data="{",
                          content_type="application/json")
    assert response.status_code == 404


def test_put_malformed_body(client, world):
    created = _create(client, world)
    response = client.put(f"/api/v1/disposition/{created['id']}/", headers=world.headers, data="{",
                          content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["status"] == "ERROR" and response.get_json()["msg"]


def test_put_onto_a_taken_contact_and_campaign_is_a_duplicate(client, world, make):
    other_contact = make.contact(world.database, phone="3515555555")
    first = _create(client, world)
    second = _create(client, world, idContact=other_contact.id)
    response = client.put(f"/api/v1/disposition/{second['id']}/", headers=world.headers,
                          json=world.body(idContact=world.contact.id))
    assert response.status_code == 400
    assert response.get_json() == DUPLICATE
    assert client.get(f"/api/v1/disposition/{second['id']}/", headers=world.headers).get_json() == second
    assert client.get(f"/api/v1/disposition/{first['id']}/", headers=world.headers).get_json() == first


def test_put_to_an_option_of_another_campaign_moves_it(client, world, make):
    second_campaign = make.campaign(database=world.database)
    option = make.option(second_campaign, "Otra")
    created = _create(client, world)
    response = client.put(f"/api/v1/disposition/{created['id']}/", headers=world.headers,
                          json=world.body(idDispositionOption=option.id))
    assert response.status_code == 200
    assert db.session.get(Disposition, created["id"]).campaign_id == second_campaign.id


# ------------------------------------------------------------------------- methods, roles

@pytest.mark.parametrize("method", ["patch", "delete"])
@pytest.mark.parametrize("path", [
    "/api/v1/disposition/", "/api/v1/disposition/1/",
    "/api/v1/disposition", "/api/v1/disposition/1",
])
def test_patch_and_delete_are_405(client, world, method, path):
    response = getattr(client, method)(path, headers=world.headers)
    assert response.status_code == 405
    name = method.upper()
    assert response.get_json() == {"detail": f'Método "{name}" no permitido.'}
    response = getattr(client, method)(path, headers=world.make.headers(world.agent, lang="en"))
    assert response.get_json() == {"detail": f'Method "{name}" not allowed.'}


def test_put_on_the_collection_is_405(client, world):
    response = client.put("/api/v1/disposition/", headers=world.headers, json=world.body())
    assert response.status_code == 405


@pytest.mark.parametrize("role", ["Administrador", "Supervisor"])
def test_non_agents_are_refused(client, world, make, role):
    response = world.post(client, world.body(), headers=make.headers(make.user(role)))
    assert response.status_code == 403
    assert response.get_json() == {"detail": "Usted no tiene permiso para realizar esta acción."}
    assert _rows() == 0


# ---------------------------------------------------------------------------- concurrency

@pytest.mark.parametrize("precheck", [True, False], ids=["as-is", "constraint-only"])
def test_concurrent_posts_make_exactly_one_disposition(app, world, make, monkeypatch, precheck):
    """50 agents' consoles rating the same contact at once: one 201, the rest the duplicate
    error, one row — the database's unique constraint decides, not a read-then-write (the
    second run switches the read check off to prove it)."""
    if not precheck:
        monkeypatch.setattr(dispositions_service, "_taken", lambda *args, **kwargs: False)
    agents = [make.agent() for _ in range(49)] + [world.agent]
    headers = [make.headers(agent) for agent in agents]
    body = world.body()
    barrier = threading.Barrier(len(agents))
    results = [None] * len(agents)

    def rate(index):
        client = app.test_client()
        barrier.wait()
        response = client.post("/api/v1/disposition/", json=body, headers=headers[index])
        results[index] = (response.status_code, response.get_json())

    threads = [threading.Thread(target=rate, args=(i,)) for i in range(len(agents))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    codes = sorted(code for code, _ in results)
    assert codes.count(201) == 1, results
    assert codes.count(400) == len(agents) - 1, results
    assert all(body == DUPLICATE for code, body in results if code == 400)
    assert _rows() == 1


def test_put_records_the_new_options_name_and_crm_interaction(client, world, make):
    """PUT's event takes the option's name and crm_interaction from its checking query (no
    query of its own): they must be the new option's."""
    from oml_server.models import Event
    crm = make.option(world.campaign, "Venta CRM", crm_interaction=True)
    created = world.post(client, world.body())
    assert created.status_code == 201
    disposition_id, crm_id = created.get_json()["id"], crm.id
    response = client.put(f"/api/v1/disposition/{disposition_id}/", headers=world.headers,
                          json=world.body(idDispositionOption=crm_id, comments="otro"))
    assert response.status_code == 200, response.get_json()
    db.session.expire_all()
    event = db.session.scalars(select(Event).where(Event.type == "disposition.updated")).one()
    assert event.campaign_id == world.campaign.id
    assert {k: event.data[k] for k in ("option_id", "option_name", "crm_interaction",
                                       "comments")} == {
        "option_id": crm_id, "option_name": "Venta CRM", "crm_interaction": True,
        "comments": "otro"}


# ------------------------------------------------------------- one statement on PostgreSQL

def _event(type_):
    from oml_server.models import Event
    db.session.expire_all()
    return db.session.scalars(select(Event).where(Event.type == type_)).one()


def test_post_and_put_write_the_disposition_and_its_full_event(app, client, world, make):
    """The event carries every field, in this order, on both databases (PostgreSQL builds it
    in SQL, SQLite in Python). On PostgreSQL the POST and the PUT are each one statement
    after the token check, with no transaction block (bench/README.md, round trips)."""
    crm = make.option(world.campaign, "Venta CRM", crm_interaction=True)
    agent_id, campaign_id, contact_id = world.agent.agent.id, world.campaign.id, world.contact.id
    option_id, crm_id = world.option.id, crm.id
    post_body = world.body()
    put_body = world.body(idDispositionOption=crm_id, comments="otro", callid=None)
    db.session.commit()   # the requests then start the session afresh, as in production
    created, sent_post = statements_of(lambda: world.post(client, post_body))
    assert created.status_code == 201, created.get_json()
    disposition_id = created.get_json()["id"]
    event = _event("disposition.created")
    assert (event.call_id, event.agent_id, event.campaign_id) == ("1700000000.123", agent_id,
                                                                  campaign_id)
    assert list(event.data.items()) == [
        ("disposition_id", disposition_id), ("contact_id", contact_id), ("option_id", option_id),
        ("option_name", "Venta"), ("crm_interaction", False), ("callid", "1700000000.123"),
        ("comments", "texto")]
    db.session.commit()
    updated, sent_put = statements_of(lambda: client.put(
        f"/api/v1/disposition/{disposition_id}/", headers=world.headers,
        json=put_body))
    assert updated.status_code == 200, updated.get_json()
    assert updated.get_json() == {"id": disposition_id, "idContact": contact_id, "callid": None,
                                  "idDispositionOption": crm_id, "comments": "otro"}
    event = _event("disposition.updated")
    assert (event.call_id, event.agent_id, event.campaign_id) == (None, agent_id, campaign_id)
    assert list(event.data.items()) == [
        ("disposition_id", disposition_id), ("contact_id", contact_id), ("option_id", crm_id),
        ("option_name", "Venta CRM"), ("crm_interaction", True), ("callid", None),
        ("comments", "otro")]
    row = db.session.get(Disposition, disposition_id)
    assert (row.option_id, row.comments, row.callid) == (crm_id, "otro", None)
    if is_postgresql(app):
        # POST: the token check, the write; PUT: the token check, the owner check, the write
        assert [verb for verb, _ in sent_post] == ["EXECUTE"] * 2, sent_post
        assert [verb for verb, _ in sent_put] == ["EXECUTE", "SELECT", "EXECUTE"], sent_put
        assert not any(in_block for _, in_block in sent_post + sent_put), (sent_post, sent_put)


def test_a_refused_post_or_put_writes_nothing(client, world):
    """A failed check in the one-statement write leaves neither a disposition nor an event."""
    from oml_server.models import Event
    hidden_body = world.body(idDispositionOption=world.hidden.id)
    assert world.post(client, hidden_body).get_json() == OPTION_NOT_FOUND
    created = world.post(client, world.body())
    assert world.post(client, world.body()).get_json() == DUPLICATE
    response = client.put(f"/api/v1/disposition/{created.get_json()['id']}/",
                          headers=world.headers, json=hidden_body)
    assert response.get_json() == OPTION_NOT_FOUND
    db.session.expire_all()
    assert _rows() == 1
    assert db.session.scalar(select(func.count()).select_from(Event)) == 1


def test_a_post_by_external_id_writes_its_row_and_event_in_one_transaction(app, client, world,
                                                                           make):
    """That path checks in Python and writes twice: on PostgreSQL the two INSERTs must run
    inside one transaction block even though the request started in autocommit."""
    system_id = make.external_system().id
    body = world.body(idContact="crm-77", idExternalSystem=system_id)
    db.session.commit()
    response, sent = statements_of(lambda: world.post(client, body))
    assert response.status_code == 201, response.get_json()
    assert _event("disposition.created").data["disposition_id"] == response.get_json()["id"]
    if is_postgresql(app):
        writes = [in_block for verb, in_block in sent if verb == "INSERT"]
        assert writes == [True, True], sent


def test_put_with_an_external_system_reads_idcontact_as_the_external_id(client, world, make):
    """A numeric idContact with idExternalSystem names the contact whose external id it is,
    even when a contact has that number as its internal id (the one-statement PUT reads
    internal ids only, so it must leave such a body to the checking path)."""
    system_id = make.external_system().id
    internal = world.contact.id
    named = make.contact(world.database, external_id=str(internal)).id
    created = world.post(client, world.body())
    assert created.status_code == 201
    body = world.body(idContact=internal, idExternalSystem=system_id)
    response = client.put(f"/api/v1/disposition/{created.get_json()['id']}/",
                          headers=world.headers, json=body)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["idContact"] == named


def test_every_disposition_write_wakes_this_process_delivery_fan_out(client, world, make):
    """The fan-out reads new events as soon as this process wrote one (outbox.written_wakers;
    else its next look is up to a second later). The one-statement writes of PostgreSQL write
    their event inside the statement, not through outbox.record: they must wake it too."""
    from oml_server.services import outbox

    class Waker:
        woken = 0

        def set(self):
            self.woken += 1

    waker = Waker()
    outbox.written_wakers.add(waker)
    try:
        created = _create(client, world)
        assert waker.woken >= 1
        woken = waker.woken
        body = {"idContact": world.contact.id, "idDispositionOption": world.other_option.id}
        assert client.put(f"/api/v1/disposition/{created['id']}/", headers=world.headers,
                          json=body).status_code == 200
        assert waker.woken > woken
        woken = waker.woken
        assert client.post("/api/v1/new_contact/disposition/", headers=world.headers,
                           json={"idDispositionOption": world.option.id,
                                 "phone": "3519999999"}).status_code == 201
        assert waker.woken > woken
    finally:
        outbox.written_wakers.discard(waker)
