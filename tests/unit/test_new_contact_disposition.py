"""POST /api/v1/new_contact/disposition/ (contract §2.7): a contact and its disposition at once."""
import pytest
from sqlalchemy import func, select

from oml_server.extensions import db
from oml_server.models import Contact, Disposition
from oml_server.services import dispositions as dispositions_service

from .statements_sent import is_postgresql, statements_of

PATH = "/api/v1/new_contact/disposition/"
OPTION_NOT_FOUND = {"status": "ERROR", "idDispositionOption": "Disposition option id not found"}
CONTACT_INVALID = {"status": "ERROR", "contacto": "Contact data is invalid"}
DUPLICATE_EXTERNAL = {"status": "ERROR",
                      "idExternalContact": "There is another contact with this external id on this database"}


class World:
    def __init__(self, make, type="manual", allow_duplicate_phones=True):
        self.make = make
        self.agent = make.agent()
        self.database = make.contact_database()
        self.campaign = make.campaign(agents=[self.agent], database=self.database, type=type,
                                      allow_duplicate_phones=allow_duplicate_phones)
        self.option = make.option(self.campaign, "Venta")
        self.hidden = make.option(self.campaign, "Vieja", hidden=True)
        self.headers = make.headers(self.agent)

    def body(self, **overrides):
        body = {"idDispositionOption": self.option.id, "phone": "3511111111",
                "idExternalContact": "crm-1", "comments": "llamó", "callid": "1700000000.1",
                "NOMBRE": "Ana"}
        body.update(overrides)
        return {k: v for k, v in body.items() if v is not ...}

    def post(self, client, body, form=False, path=PATH, headers=None):
        kwargs = {"data": body} if form else {"json": body}
        return client.post(path, headers=headers or self.headers, **kwargs)


@pytest.fixture
def world(make):
    return World(make)


def _counts():
    db.session.expire_all()
    return (db.session.scalar(select(func.count()).select_from(Contact)),
            db.session.scalar(select(func.count()).select_from(Disposition)))


@pytest.mark.parametrize("path", [PATH, PATH.rstrip("/")])
@pytest.mark.parametrize("form", [False, True], ids=["json", "form"])
def test_creates_contact_and_disposition(client, world, path, form):
    response = world.post(client, world.body(idDispositionOption=str(world.option.id),
                                             FOO="ignored"), form=form, path=path)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body == {"id": body["id"], "callid": "1700000000.1",
                    "idDispositionOption": world.option.id, "comments": "llamó"}
    assert list(body) == ["id", "callid", "idDispositionOption", "comments"]
    disposition = db.session.get(Disposition, body["id"])
    contact = db.session.get(Contact, disposition.contact_id)
    assert (disposition.agent_id, disposition.campaign_id) == (world.agent.agent.id, world.campaign.id)
    assert contact.database_id == world.database.id
    assert contact.main_phone == "3511111111" and contact.external_id == "crm-1"
    # Every column stored; columns not sent are empty, keys that are not columns are ignored.
    assert contact.data == {"TELEFONO": "3511111111", "NOMBRE": "Ana", "FECHA": "", "HORA": "",
                            "id_ext": "crm-1"}
    assert contact.assigned_agent_id is None  # not a preview campaign


def test_minimal_body(client, world):
    response = world.post(client, {"idDispositionOption": world.option.id, "phone": 3512222222})
    assert response.status_code == 201
    assert response.get_json()["callid"] is None and response.get_json()["comments"] == ""
    contact = db.session.scalars(select(Contact)).one()
    assert contact.main_phone == "3512222222" and contact.external_id is None
    assert contact.data == {"TELEFONO": "3512222222", "NOMBRE": "", "FECHA": "", "HORA": "",
                            "id_ext": None}


def test_numeric_external_contact_id_is_text(client, world):
    response = world.post(client, world.body(idExternalContact=9876))
    assert response.status_code == 201
    assert db.session.scalars(select(Contact)).one().external_id == "9876"


def test_phone_and_external_id_come_only_from_their_keys(client, world):
    response = world.post(client, world.body(TELEFONO="3519999999", id_ext="other"))
    assert response.status_code == 201
    contact = db.session.scalars(select(Contact)).one()
    assert contact.main_phone == "3511111111" and contact.external_id == "crm-1"


def test_preview_campaign_assigns_the_contact_to_the_calling_agent(client, make):
    world = World(make, type="preview")
    # Only the main phone: OMniLeads answers 500 here when columns are missing.
    response = world.post(client, {"idDispositionOption": world.option.id, "phone": "3511111111"})
    assert response.status_code == 201, response.get_json()
    assert db.session.scalars(select(Contact)).one().assigned_agent_id == world.agent.agent.id


@pytest.mark.parametrize("value", [..., None, "", "abc", 999999, True])
@pytest.mark.parametrize("lang", [None, "en"])
def test_bad_option_creates_nothing(client, world, value, lang):
    response = world.post(client, world.body(idDispositionOption=value),
                          headers=world.make.headers(world.agent, lang=lang))
    assert response.status_code == 400
    assert response.get_json() == OPTION_NOT_FOUND
    assert _counts() == (0, 0)


def test_hidden_option(client, world):
    response = world.post(client, world.body(idDispositionOption=world.hidden.id))
    assert response.status_code == 400
    assert response.get_json() == OPTION_NOT_FOUND
    assert _counts() == (0, 0)


def test_option_is_checked_before_the_contact(client, world):
    response = world.post(client, world.body(idDispositionOption=999999, phone=...))
    assert response.get_json() == OPTION_NOT_FOUND


@pytest.mark.parametrize("overrides", [
    {"phone": ...}, {"phone": None}, {"phone": ""}, {"phone": "  "}, {"phone": "12"},
    {"phone": "abc"}, {"phone": {"n": 1}}, {"NOMBRE": ["x"]}, {"idExternalContact": "x" * 129},
], ids=["missing", "null", "blank", "spaces", "short", "letters", "object", "list-column",
        "long-external-id"])
@pytest.mark.parametrize("lang", [None, "en"])
def test_invalid_contact_data(client, world, overrides, lang):
    response = world.post(client, world.body(**overrides),
                          headers=world.make.headers(world.agent, lang=lang))
    assert response.status_code == 400
    assert response.get_json() == CONTACT_INVALID
    assert _counts() == (0, 0)


def test_other_phone_columns_are_checked(client, make):
    world = World(make)
    world.database.other_phones = ["HORA"]
    db.session.commit()
    response = world.post(client, world.body(HORA="not-a-phone"))
    assert response.get_json() == CONTACT_INVALID


def test_duplicate_external_id(client, world, make):
    existing = make.contact(world.database, phone="3510000000", external_id="crm-1")
    response = world.post(client, world.body())
    assert response.status_code == 400
    assert response.get_json() == DUPLICATE_EXTERNAL
    assert _counts() == (1, 0)
    assert db.session.get(Contact, existing.id) is not None


def test_same_external_id_in_another_database_is_fine(client, world, make):
    make.contact(make.contact_database(), external_id="crm-1")
    assert world.post(client, world.body()).status_code == 201


def _contacts_with_phone(phone):
    db.session.expire_all()
    return db.session.scalars(select(Contact).where(Contact.main_phone == phone)
                              .order_by(Contact.id)).all()


def test_a_returning_callers_phone_is_accepted_where_the_campaign_forbids_duplicates(client, make):
    """OMniLeads 2.6.3 answers 201: the disposition of a returning caller is never lost. The
    second contact is a new row; the first keeps its data, its disposition and the phone's
    no-duplicates slot, so new_contact still refuses that phone."""
    world = World(make, allow_duplicate_phones=False)
    first = world.post(client, world.body())
    assert first.status_code == 201
    second = world.post(client, world.body(idExternalContact="crm-2", NOMBRE="Ana otra vez",
                                           comments="volvió a llamar"))
    assert second.status_code == 201, second.get_json()
    assert second.get_json()["comments"] == "volvió a llamar"
    assert _counts() == (2, 2)
    old, new = _contacts_with_phone("3511111111")
    assert old.unique_phone == "3511111111" and old.data["NOMBRE"] == "Ana"
    assert new.unique_phone is None and new.data["NOMBRE"] == "Ana otra vez"
    assert db.session.get(Disposition, second.get_json()["id"]).contact_id == new.id
    response = client.post("/api/v1/new_contact/", headers=world.headers,
                           json={"idCampaign": str(world.campaign.id), "TELEFONO": "3511111111"})
    assert response.status_code == 400
    assert response.get_json()["errors"] == {"__all__": ["Ya existe un contacto con el mismo teléfono."]}


def test_a_phone_new_to_a_no_duplicates_campaign_holds_its_slot(client, make):
    world = World(make, allow_duplicate_phones=False)
    assert world.post(client, world.body()).status_code == 201
    [contact] = _contacts_with_phone("3511111111")
    assert contact.unique_phone == "3511111111"


def test_the_phones_slot_taken_between_check_and_insert_still_answers_201(client, make, monkeypatch):
    """Two returning callers' dispositions racing: the loser becomes a row without the slot."""
    world = World(make, allow_duplicate_phones=False)
    make.contact(world.database, phone="3511111111")
    holder = _contacts_with_phone("3511111111")[0]
    holder.unique_phone = "3511111111"
    db.session.commit()
    monkeypatch.setattr(dispositions_service.contacts, "check_duplicates", lambda *a, **k: None)
    response = world.post(client, world.body())
    assert response.status_code == 201, response.get_json()
    assert [c.unique_phone for c in _contacts_with_phone("3511111111")] == ["3511111111", None]
    assert _counts() == (2, 1)


def test_duplicate_phone_allowed_by_default(client, world):
    assert world.post(client, world.body()).status_code == 201
    assert world.post(client, world.body(idExternalContact="crm-2")).status_code == 201
    assert _counts() == (2, 2)


def test_external_id_race_lost_at_insert(client, world, make, monkeypatch):
    """The read check passes but the unique constraint fires: still the contract's error."""
    make.contact(world.database, phone="3510000000", external_id="crm-1")
    monkeypatch.setattr(dispositions_service.contacts, "check_duplicates", lambda *a, **k: None)
    response = world.post(client, world.body())
    assert response.status_code == 400
    assert response.get_json() == DUPLICATE_EXTERNAL
    assert _counts() == (1, 0)


def test_callid_too_long_leaves_no_contact_behind(client, world):
    response = world.post(client, world.body(callid="x" * 33))
    assert response.status_code == 400
    assert response.get_json() == {"status": "ERROR",
                                   "callid": "Ensure this field has no more than 32 characters."}
    assert _counts() == (0, 0)


def test_all_or_nothing_when_the_disposition_insert_fails(client, world, monkeypatch):
    """OMniLeads leaves the contact behind when the disposition fails; here nothing stays.
    (The path that checks in Python and writes three times in one transaction; PostgreSQL's
    one-statement path is the next test's.)"""
    monkeypatch.setattr(dispositions_service.outbox, "in_one_statement", lambda _s: False)
    real = dispositions_service._insert

    def broken(statement, params):   # the disposition's insert, after the contact's
        return real(statement, {**params, "option_id": 999999})  # a foreign key that does not exist

    monkeypatch.setattr(dispositions_service, "_insert", broken)
    response = world.post(client, world.body())
    assert response.status_code == 500
    assert response.get_json() == {"detail": "Internal server error."}
    assert _counts() == (0, 0)


def test_the_usual_case_is_one_write_statement_with_the_full_event(app, client, world):
    """On PostgreSQL: the token check, the option with its campaign, then the contact, its
    disposition and the event in one statement, with no transaction block."""
    from oml_server.models import Event
    body, option_id = world.body(), world.option.id
    db.session.commit()   # the request then starts the session afresh, as in production
    response, sent = statements_of(lambda: world.post(client, body))
    assert response.status_code == 201, response.get_json()
    assert _counts() == (1, 1)
    contact = db.session.scalars(select(Contact)).one()
    assert (contact.external_id, contact.main_phone, contact.data["NOMBRE"]) == (
        "crm-1", "3511111111", "Ana")
    event = db.session.scalars(select(Event)).one()
    assert list(event.data.items()) == [
        ("disposition_id", response.get_json()["id"]), ("contact_id", contact.id),
        ("option_id", option_id), ("option_name", "Venta"), ("crm_interaction", False),
        ("callid", "1700000000.1"), ("comments", "llamó")]
    # The counters' triggers saw the contact and the disposition of the same statement.
    from oml_server.models import campaign_dispositioned, contact_counts
    assert db.session.scalar(select(func.sum(contact_counts.c.contacts))) == 1
    assert db.session.scalar(select(func.sum(campaign_dispositioned.c.dispositioned))) == 1
    if is_postgresql(app):
        assert [verb for verb, _ in sent] == ["EXECUTE"] * 3, sent
        assert not any(in_block for _, in_block in sent), sent


def test_an_option_gone_before_the_write_leaves_no_contact_behind(client, world, monkeypatch):
    """On PostgreSQL the contact, its disposition and the event are one statement: when its
    option is gone by then (here: another id), it writes nothing, and the checking path
    that follows writes all three (everywhere else that path is the only one)."""
    real = dispositions_service._run

    def option_gone(statement, params):
        if statement in dispositions_service.disposition_writes.CREATE_WITH_CONTACT.values():
            params = {**params, "oid": 999999}
        return real(statement, params)

    monkeypatch.setattr(dispositions_service, "_run", option_gone)
    response = world.post(client, world.body())
    assert response.status_code == 201, response.get_json()
    assert _counts() == (1, 1)


@pytest.mark.parametrize("raw,content_type", [('{"phone": ', "application/json"),
                                              ("hello", "text/plain")])
def test_malformed_body(client, world, raw, content_type):
    response = client.post(PATH, data=raw, content_type=content_type, headers=world.headers)
    assert response.status_code == 400
    body = response.get_json()
    assert list(body) == ["status", "msg"] and body["status"] == "ERROR" and body["msg"]
    assert _counts() == (0, 0)


@pytest.mark.parametrize("role", ["Administrador", "Gerente", "Supervisor", "Referente"])
def test_only_agents(client, world, make, role):
    response = world.post(client, world.body(), headers=make.headers(make.user(role)))
    assert response.status_code == 403
    assert response.get_json() == {"detail": "Usted no tiene permiso para realizar esta acción."}
    assert _counts() == (0, 0)


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_other_methods_are_405(client, world, method):
    response = getattr(client, method)(PATH, headers=world.headers)
    assert response.status_code == 405
    assert response.get_json() == {"detail": f'Método "{method.upper()}" no permitido.'}


def test_disposition_is_listed_for_the_agent(client, world):
    created = world.post(client, world.body()).get_json()
    listed = client.get("/api/v1/disposition/", headers=world.headers).get_json()
    contact_id = db.session.get(Disposition, created["id"]).contact_id
    assert listed == [{"id": created["id"], "idContact": contact_id, "callid": "1700000000.1",
                       "idDispositionOption": world.option.id, "comments": "llamó"}]
