"""make_call_outside_campaign and campaign/<id>/contacts/ (contract-calls §5)."""
import pytest
from sqlalchemy import select

from oml_server.extensions import db
from oml_server.models import Call, Disposition
from tests.fake_telephony import FakeTelephony, fake_telephony  # noqa: F401 (a fixture)


def outside(client, make, user, lang=None, **body):
    return client.post("/api/v1/make_call_outside_campaign/", data=body,
                       headers=make.headers(user, lang))


def test_an_agent_calls_another_agent_or_a_number(client, make, fake_telephony):
    ana, bob = make.agent(), make.agent(sip_extension="2002")
    response = outside(client, make, ana, destination_type="AGENT", destination=bob.agent.id)
    assert (response.status_code, response.get_json()) == \
        (200, {"status": "OK", "message": "Llamada fuera de campaña iniciada"})
    placed = fake_telephony.placed[-1]
    assert (placed["agent"], placed["campaign"], placed["number"]) == (ana.agent.id, None, "2002")
    db.session.get(Call, placed["id"]).state, db.session.get(Call, placed["id"]).active_agent_id = \
        "ended", None
    db.session.commit()
    response = outside(client, make, ana, "en", destination_type="EXTERNAL",
                       destination="+5493511234567")
    assert response.get_json() == {"status": "OK", "message": "Out of campaign call started"}
    assert fake_telephony.placed[-1]["number"] == "+5493511234567"


@pytest.mark.parametrize("body,message", [
    ({"destination_type": "PHONE", "destination": "123"}, "Valor de destination_type inválido"),
    ({"destination": "123"}, "Valor de destination_type inválido"),
    ({"destination_type": "AGENT", "destination": "999999"}, "Valor de destination inválido"),
    ({"destination_type": "AGENT", "destination": "x"}, "Valor de destination inválido"),
    ({"destination_type": "EXTERNAL", "destination": "12"}, "Valor de destination inválido"),
    ({"destination_type": "EXTERNAL"}, "Valor de destination inválido"),
])
def test_bad_destinations_are_400(client, make, fake_telephony, body, message):
    response = outside(client, make, make.agent(), **body)
    assert (response.status_code, response.get_json()) == (400, {"status": "ERROR",
                                                                 "message": message})
    assert fake_telephony.placed == []


def test_calling_oneself_or_a_call_that_cannot_be_placed_is_an_error(client, make):
    from oml_server.services import telephony
    from oml_server.services.telephony import CallNotPlaced
    ana = make.agent()
    response = outside(client, make, ana, destination_type="AGENT", destination=ana.agent.id)
    assert response.status_code == 400
    previous = telephony.set_backend(FakeTelephony(place_error=CallNotPlaced("phone offline")))
    try:
        response = outside(client, make, ana, destination_type="EXTERNAL", destination="3511234")
    finally:
        telephony.set_backend(previous)
    assert (response.status_code, response.get_json()) == \
        (200, {"status": "ERROR", "message": "phone offline"})
    assert db.session.scalar(select(Call)).state == "failed"


@pytest.fixture
def listed(make):
    agent = make.agent()
    database = make.contact_database(columns=("TELEFONO", "NOMBRE", "CIUDAD"), external_id=None)
    campaign = make.campaign(agents=[agent], database=database, options=["Venta"])
    contacts = [make.contact(database, phone=f"351000{i:04d}", NOMBRE=f"N{i}",
                             CIUDAD="Córdoba" if i % 2 else "") for i in range(25)]
    option = campaign_option(campaign)
    for contact in contacts[:5]:  # dispositioned: not listed any more
        db.session.add(Disposition(contact_id=contact.id, campaign_id=campaign.id,
                                   agent_id=agent.agent.id, option_id=option))
    db.session.commit()
    return agent, campaign, contacts


def campaign_option(campaign):
    from oml_server.models import DispositionOption
    return db.session.scalar(select(DispositionOption.id).where(
        DispositionOption.campaign_id == campaign.id))


def page(client, make, agent, campaign_id, **args):
    return client.get(f"/api/v1/campaign/{campaign_id}/contacts/", query_string=args,
                      headers=make.headers(agent))


def test_contacts_page_in_datatables_shape(client, make, listed):
    agent, campaign, contacts = listed
    response = page(client, make, agent, campaign.id, draw=3, start=2, length=4,
                    **{"search[value]": ""})
    body = response.get_json()
    assert response.status_code == 200
    # As OMniLeads: recordsTotal is every contact of the database (5 are dispositioned),
    # recordsFiltered the ones listed.
    assert (body["draw"], body["recordsTotal"], body["recordsFiltered"]) == (3, 25, 20)
    assert body["data"] == [[c.id, c.main_phone, c.data["NOMBRE"], c.data["CIUDAD"] or "---", ""]
                            for c in contacts[7:11]]
    body = page(client, make, agent, campaign.id, draw=1, start=0, length=10,
                **{"search[value]": "3510000012"}).get_json()
    assert (body["recordsTotal"], body["recordsFiltered"]) == (25, 1)
    assert body["data"][0][0] == contacts[12].id
    body = page(client, make, agent, campaign.id, draw=1, start=0, length=100,
                **{"search[value]": "córdoba"}).get_json()
    assert body["recordsFiltered"] == len([c for c in contacts[5:] if c.data["CIUDAD"]]) == 10
    body = page(client, make, agent, campaign.id, draw=1, start=0, length=100,
                **{"search[value]": "N1"}).get_json()
    assert {row[0] for row in body["data"]} == {c.id for c in contacts[10:20]}
    body = page(client, make, agent, campaign.id, draw=1, start=0, length=10,
                **{"search[value]": "100%"}).get_json()
    assert body["recordsFiltered"] == 0


@pytest.mark.parametrize("args,field", [({}, "draw"), ({"draw": 1}, "start"),
                                        ({"draw": 1, "start": 0}, "length"),
                                        ({"draw": "x", "start": 0, "length": 10}, "draw"),
                                        ({"draw": 1, "start": -1, "length": 10}, "start"),
                                        ({"draw": 1, "start": 0, "length": 0}, "length"),
                                        ({"draw": 1, "start": 0, "length": 5000}, "length")])
def test_bad_parameters_are_400(client, make, listed, args, field):
    agent, campaign, _ = listed
    response = page(client, make, agent, campaign.id, **args)
    assert (response.status_code, response.get_json()) == \
        (400, {"status": "ERROR", "message": f"Valor inválido para {field}"})


def test_only_members_and_known_campaigns(client, make, listed):
    agent, campaign, _ = listed
    args = {"draw": 1, "start": 0, "length": 10}
    assert page(client, make, make.agent(), campaign.id, **args).status_code == 403
    assert page(client, make, agent, 999999, **args).status_code == 404


def test_the_engine_rings_an_agent_destination_directly_and_a_number_through_the_trunk(app,
                                                                                      make):
    from ari_engine import ids
    from tests.unit.test_engine_replay import Harness, online, rest_click_to_call
    engine = Harness(app)
    caller = online(make, "1001")
    make.agent(sip_extension="2002")
    for number, endpoint in (("2002", "PJSIP/2002"), ("3511234", "PJSIP/3511234@trunk")):
        call_id = rest_click_to_call(engine, caller, number=number)
        engine.feed({"type": "StasisStart", "args": ["click_to_call", call_id],
                     "channel": {"id": ids.agent_channel(call_id), "state": "Up"}})
        contact = [r for r in engine.ari.requests if r[0] == "originate"
                   and r[2].get("channelId") == ids.contact_channel(call_id)]
        assert contact[0][1][0] == endpoint
        engine.backend.hangup_call(db.session.get(Call, call_id))


def totals(client, make, agent, campaign, search=""):
    body = page(client, make, agent, campaign.id, draw=1, start=0, length=1000,
                **{"search[value]": search}).get_json()
    return body["recordsTotal"], body["recordsFiltered"], [row[0] for row in body["data"]]


def test_totals_follow_every_writer(client, make, listed, tmp_path, monkeypatch):
    """recordsTotal and recordsFiltered come from counters the database keeps: new_contact,
    the import, a disposition, a deleted contact and a campaign moved to another database all
    move them;
    the search index (SQLite's FTS5 table, forced here) follows the same writers."""
    from oml_server.models import Contact
    from oml_server.services import campaign_contacts, contact_import
    monkeypatch.setattr(campaign_contacts, "_dense", lambda *args: False)
    agent, campaign, contacts = listed
    assert totals(client, make, agent, campaign)[:2] == (25, 20)
    response = client.post("/api/v1/new_contact/", json={
        "idCampaign": campaign.id, "TELEFONO": "3519999999", "NOMBRE": "Zoé Nueva",
        "CIUDAD": ""}, headers=make.headers(agent))
    assert response.get_json()["status"] == "OK", response.get_json()
    new_id = response.get_json()["id"]
    assert totals(client, make, agent, campaign, "zoé") == (26, 1, [new_id])
    path = tmp_path / "more.csv"
    path.write_text("TELEFONO,NOMBRE,CIUDAD\n3518888001,Imported One,Salta\n"
                    "3518888002,Imported Two,Jujuy\n", encoding="utf-8")
    assert contact_import.import_csv(campaign.id, str(path)).imported == 2
    total, filtered, ids = totals(client, make, agent, campaign, "IMPORTED")
    assert (total, filtered, len(ids)) == (28, 2, 2)
    rate = client.post("/api/v1/disposition/", json={
        "idContact": new_id, "idDispositionOption": campaign_option(campaign)},
        headers=make.headers(agent))
    assert rate.status_code == 201, rate.get_json()
    assert totals(client, make, agent, campaign, "zoé") == (28, 0, [])
    assert totals(client, make, agent, campaign)[:2] == (28, 22)
    # A dispositioned contact deleted (its dispositions go with it) and an undispositioned one.
    db.session.delete(db.session.get(Contact, contacts[0].id))
    db.session.delete(db.session.get(Contact, contacts[6].id))
    db.session.commit()
    assert totals(client, make, agent, campaign)[:2] == (26, 21)
    other = make.contact_database(columns=("TELEFONO", "NOMBRE", "CIUDAD"), external_id=None)
    make.contact(other, phone="3517777777", NOMBRE="Otra base")
    campaign.database = other
    db.session.commit()
    assert totals(client, make, agent, campaign) == (1, 1, [db.session.scalar(
        select(Contact.id).where(Contact.database_id == other.id))])


@pytest.mark.parametrize("plan", ["index", "scan"])
def test_search_is_a_substring_of_any_value_and_short_terms_work_too(client, make, listed,
                                                                     monkeypatch, plan):
    """Both of SQLite's plans (FTS5 for rare terms, the scan for common ones) find the same
    contacts; on PostgreSQL the planner chooses and `plan` changes nothing."""
    from oml_server.services import campaign_contacts
    monkeypatch.setattr(campaign_contacts, "_dense", lambda *args: plan == "scan")
    agent, campaign, contacts = listed
    assert totals(client, make, agent, campaign, "0000012")[1:] == (1, [contacts[12].id])
    assert totals(client, make, agent, campaign, "n2")[2] == [c.id for c in contacts[20:25]]
    assert totals(client, make, agent, campaign, "CÓRD")[1] == 10
    # Neither the JSON's keys nor its quoting are searched.
    assert totals(client, make, agent, campaign, "nombre")[1] == 0
    assert totals(client, make, agent, campaign, '"n')[1] == 0
    assert totals(client, make, agent, campaign, "*")[1] == 0


def test_a_search_counts_its_matches_up_to_the_limit(client, make, listed, monkeypatch):
    from oml_server.services import campaign_contacts
    agent, campaign, contacts = listed
    monkeypatch.setattr(campaign_contacts, "SEARCH_COUNT_LIMIT", 7)
    total, filtered, ids = totals(client, make, agent, campaign, "3510")
    assert (total, filtered, ids) == (25, 7, [c.id for c in contacts[5:]])
    # A page within the counted matches (one statement) and one past the only match.
    body = page(client, make, agent, campaign.id, draw=1, start=5, length=2,
                **{"search[value]": "3510"}).get_json()
    assert (body["recordsFiltered"], [row[0] for row in body["data"]]) == \
        (7, [contacts[10].id, contacts[11].id])
    body = page(client, make, agent, campaign.id, draw=1, start=3, length=2,
                **{"search[value]": "0000012"}).get_json()
    assert (body["recordsTotal"], body["recordsFiltered"], body["data"]) == (25, 1, [])
