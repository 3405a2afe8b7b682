"""`oml-server provision FILE` (docs/provisioning-and-import.md; format in provisioning.md)."""
import json

import pytest
from sqlalchemy import func, select, text

from oml_server.auth import authenticate
from oml_server.errors import ContractError
from oml_server.extensions import db
from oml_server.models import (AgentExternalId, AgentProfile, Campaign, Contact, ContactDatabase,
                               DispositionOption, ExternalSystem, Pause, User)
from oml_server.services import provisioning
from oml_server.services.provisioning import ProvisioningError

DOC_EXAMPLE = """
external_systems:
  - {id: 1, name: crm}

users:
  - {username: admin1, password: s3cret, role: Administrador, email: admin@example.com}
  - {username: sup1, password: s3cret, role: Supervisor, first_name: Sol, last_name: Vera}
  - username: agent1
    password: s3cret
    role: Agente                    # Administrador | Gerente | Supervisor | Referente | Agente
    first_name: Ana
    last_name: Pérez
    email: ana@example.com
    agent:
      id: 1                         # login's agent_id, makeCall's idAgent
      sip_extension: 1001           # default 1000 + user id
      external_ids: {crm: ag-7}     # the agent's id in each external system
  - {username: agent2, password: s3cret, role: Agente, agent: {id: 2, sip_extension: 1002}}

pauses:
  - {id: 1, name: Break, type: recreational}   # productive | recreational

contact_databases:
  - id: 1
    name: leads-2026
    columns: [TELEFONO, NOMBRE, CELULAR, id_ext]
    main_phone: TELEFONO
    other_phones: [CELULAR]
    external_id: id_ext             # null or absent: no external-id column
    contacts:
      - {id: 1, TELEFONO: "3511000001", NOMBRE: Juan, id_ext: crm-1}
      - {TELEFONO: "3511000002", NOMBRE: Eva}

campaigns:
  - id: 1
    name: sales
    type: manual                    # manual | preview | dialer | inbound
    state: active                   # active | inactive | paused | finished
    database: leads-2026
    external_system: crm            # optional, with external_id
    external_id: camp-sales
    agents: [agent1]                # members
    supervisors: [sup1]
    allow_duplicate_phones: true
    disposition_options:
      - {id: 1, name: Venta, type: engaged, hidden: false}     # engaged | no_action | scheduled
      - {id: 2, name: No interesado, type: no_action}
      - {id: 3, name: Viejo, type: no_action, hidden: true}
"""



def expected_ids():
    """The doc example's ids: as given, or as the database assigned them."""
    user_ids = dict(db.session.execute(select(User.username, User.id)).all())
    eva = db.session.scalar(select(Contact.id).where(Contact.main_phone == "3511000002"))
    return {
        "external_systems": {"crm": 1},
        "users": {name: user_ids[name] for name in ("admin1", "sup1", "agent1", "agent2")},
        "agents": {"agent1": 1, "agent2": 2},
        "pauses": {"Break": 1},
        "contact_databases": {"leads-2026": 1},
        "contacts": {"leads-2026": {"crm-1": 1, "3511000002": eva}},
        "campaigns": {"sales": 1},
        "disposition_options": {"sales": {"Venta": 1, "No interesado": 2, "Viejo": 3}},
    }

TABLES = ("users", "agents", "agent_sessions", "agent_external_ids", "external_systems", "pauses",
          "contact_databases", "contacts", "campaigns", "campaign_agents", "campaign_supervisors",
          "disposition_options")


def write(tmp_path, content, name="lab.yaml"):
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return str(path)


def snapshot():
    """Every row of every table provisioning writes, to prove a run changed nothing."""
    db.session.expire_all()
    rows = {}
    for table in TABLES:
        result = db.session.execute(text(f'SELECT * FROM "{table}"'))
        rows[table] = sorted(tuple(str(v) for v in row) for row in result)
    return rows


def provision_cli(app, path):
    return app.test_cli_runner().invoke(args=["provision", path])


def token_check(app, headers):
    """What authentication answers for these headers: "ok" or the 403 body."""
    with app.test_request_context(headers=headers):
        try:
            authenticate()
        except ContractError as exc:
            return exc.body
    return "ok"


def login(client, username, password):
    return client.post("/api/v1/login", json={"username": username, "password": password})


def test_doc_example_provisions_and_prints_ids(app, client, tmp_path):
    result = provision_cli(app, write(tmp_path, DOC_EXAMPLE))
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == expected_ids()

    agent = db.session.scalar(select(User).where(User.username == "agent1"))
    assert (agent.username, agent.role, agent.first_name, agent.last_name, agent.email) == \
        ("agent1", "Agente", "Ana", "Pérez", "ana@example.com")
    assert (agent.agent.id, agent.agent.sip_extension) == (1, "1001")
    link = db.session.scalar(select(AgentExternalId))
    assert (link.agent_id, link.external_system_id, link.external_agent_id) == (1, 1, "ag-7")
    campaign = db.session.get(Campaign, 1)
    assert (campaign.type, campaign.state, campaign.database_id, campaign.external_system_id,
            campaign.external_id, campaign.allow_duplicate_phones) == \
        ("manual", "active", 1, 1, "camp-sales", True)
    assert [a.id for a in campaign.agents] == [1]
    assert [s.username for s in campaign.supervisors] == ["sup1"]
    options = db.session.scalars(select(DispositionOption).order_by(DispositionOption.id)).all()
    assert [(o.id, o.name, o.type, o.hidden) for o in options] == [
        (1, "Venta", "engaged", False), (2, "No interesado", "no_action", False),
        (3, "Viejo", "no_action", True)]
    database = db.session.get(ContactDatabase, 1)
    assert (database.columns, database.main_phone, database.other_phones,
            database.external_id_column) == (["TELEFONO", "NOMBRE", "CELULAR", "id_ext"],
                                             "TELEFONO", ["CELULAR"], "id_ext")
    contacts = db.session.scalars(select(Contact).order_by(Contact.id)).all()
    assert [(c.main_phone, c.external_id, c.data) for c in contacts] == [
        ("3511000001", "crm-1", {"TELEFONO": "3511000001", "NOMBRE": "Juan", "CELULAR": "",
                                    "id_ext": "crm-1"}),
        ("3511000002", None, {"TELEFONO": "3511000002", "NOMBRE": "Eva", "CELULAR": "",
                                 "id_ext": None})]
    assert db.session.get(Pause, 1).type == "recreational"

    body = login(client, "agent1", "s3cret").get_json()
    assert body["user"]["agent_id"] == 1


def test_second_run_changes_nothing(app, tmp_path):
    path = write(tmp_path, DOC_EXAMPLE)
    assert provision_cli(app, path).exit_code == 0
    before = snapshot()
    result = provision_cli(app, path)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == expected_ids()
    assert snapshot() == before


def test_demo_lab_provisions_twice(app, client):
    first = provisioning.provision_file("lab/demo.yaml")
    before = snapshot()
    assert provisioning.provision_file("lab/demo.yaml") == first
    assert snapshot() == before
    assert first["campaigns"] == {"demo-manual": 1, "demo-preview": 2}
    assert login(client, "agent1", "agent1-lab-pass").status_code == 200


def test_json_file_and_ids_assigned_when_absent(app, make, tmp_path):
    first = make.user("Supervisor", username="already-there")
    data = {"users": [{"username": "u1", "password": "pw", "role": "Gerente"},
                      {"username": "a1", "password": "pw", "role": "Agente"}],
            "pauses": [{"name": "Almuerzo"}]}
    ids = provisioning.provision_file(write(tmp_path, data, "lab.json"))
    assert ids["users"] == {"u1": first.id + 1, "a1": first.id + 2}
    user = db.session.get(User, first.id + 2)
    assert user.agent.sip_extension == str(1000 + user.id)  # by default
    assert ids["agents"] == {"a1": user.agent.id}
    assert db.session.get(Pause, ids["pauses"]["Almuerzo"]).type == "recreational"


def test_given_ids_are_kept_and_later_inserts_do_not_collide(app, make, tmp_path):
    big = 1_000_000        # beyond any id the database has handed out
    data = {"external_systems": [{"id": big + 40, "name": "crm"}],
            "users": [{"id": big + 50, "username": "ag", "password": "pw", "role": "Agente",
                       "agent": {"id": big + 60, "sip_extension": "2000"}}],
            "pauses": [{"id": big + 70, "name": "Break"}],
            "contact_databases": [{"id": big + 80, "name": "d", "columns": ["TEL"], "main_phone": "TEL",
                                   "contacts": [{"id": big + 90, "TEL": "123"}, {"TEL": "124"}]}],
            "campaigns": [{"id": big + 100, "name": "c", "database": "d", "agents": ["ag"],
                           "disposition_options": [{"id": big + 110, "name": "Venta"},
                                                   {"name": "Otra"}]}]}
    ids = provisioning.provision(data)
    assert ids["external_systems"] == {"crm": big + 40}
    assert ids["users"] == {"ag": big + 50} and ids["agents"] == {"ag": big + 60}
    assert ids["pauses"] == {"Break": big + 70}
    assert ids["contact_databases"] == {"d": big + 80}
    # Inside the run too, a row without an id comes after the explicit one.
    assert ids["contacts"] == {"d": {"123": big + 90, "124": big + 91}}
    assert ids["campaigns"] == {"c": big + 100}
    assert ids["disposition_options"] == {"c": {"Venta": big + 110, "Otra": big + 111}}
    # The next rows without an id come after the explicit ones (PostgreSQL sequences moved).
    user = make.agent()
    assert user.id == big + 51 and user.agent.id == big + 61
    assert make.pause().id == big + 71
    assert make.external_system().id == big + 41
    database = make.contact_database()
    assert database.id == big + 81
    assert make.contact(database).id == big + 92
    campaign = make.campaign(database=database)
    assert campaign.id == big + 101
    assert make.option(campaign).id == big + 112


def expect_error(app, tmp_path, content, *fragments):
    """The run fails naming the object and the field, and writes nothing."""
    before = snapshot()
    with pytest.raises(ProvisioningError) as info:
        provisioning.provision_file(write(tmp_path, content))
    for fragment in fragments:
        assert fragment in str(info.value)
    assert snapshot() == before
    result = provision_cli(app, write(tmp_path, content))
    assert result.exit_code == 1
    assert fragments[0] in result.output
    return str(info.value)


BASE = """
external_systems: [{name: crm}]
users:
  - {username: agent1, password: pw, role: Agente, agent: {external_ids: {crm: a1}}}
  - {username: sup1, password: pw, role: Supervisor}
contact_databases:
  - name: leads
    columns: [TEL, NOMBRE, id_ext]
    main_phone: TEL
    external_id: id_ext
    contacts:
      - {TEL: "3511000001", NOMBRE: Juan, id_ext: x-1}
"""


def test_unknown_reference(app, tmp_path):
    expect_error(app, tmp_path, BASE + """
campaigns:
  - {name: sales, database: nope}
""", 'campaigns[0] "sales": database: unknown contact database', "'nope'")
    expect_error(app, tmp_path, BASE + """
campaigns:
  - {name: sales, database: leads, agents: [agent1, ghost]}
""", 'campaigns[0] "sales": agents: unknown user', "'ghost'")
    expect_error(app, tmp_path, BASE + """
campaigns:
  - {name: sales, database: leads, external_system: erp, external_id: s}
""", 'campaigns[0] "sales": external_system: unknown external system', "'erp'")
    expect_error(app, tmp_path, BASE.replace("crm: a1", "erp: a1"),
                 'users[0] "agent1": agent.external_ids.erp: unknown external system')
    expect_error(app, tmp_path, BASE + """
campaigns:
  - {name: sales, database: leads, supervisors: [agent1]}
""", 'campaigns[0] "sales": supervisors:', "is an agent")
    expect_error(app, tmp_path, BASE + """
campaigns:
  - {name: sales, database: leads, agents: [sup1]}
""", 'campaigns[0] "sales": agents:', "is not an agent")


def test_bad_role_and_bad_shape(app, tmp_path):
    message = expect_error(app, tmp_path, BASE.replace("role: Supervisor", "role: Jefe"),
                           'users[1] "sup1": role: Must be one of: Administrador')
    assert message.startswith("The file is not valid:")
    expect_error(app, tmp_path, BASE + "campaigns:\n  - {name: c, database: leads, type: robot}\n",
                 'campaigns[0] "c": type: Must be one of')
    expect_error(app, tmp_path, BASE + "campaign:\n  - {name: c}\n", "campaign: Unknown field.")
    expect_error(app, tmp_path, BASE.replace("main_phone: TEL", "main_phone: PHONE"),
                 'contact_databases[0] "leads": main_phone: Must be one of the columns.')
    expect_error(app, tmp_path, BASE + """
campaigns:
  - name: c
    database: leads
    disposition_options: [{name: Venta, type: sold}]
""", 'campaigns[0] "c": disposition_options[0] "Venta": type: Must be one of')
    expect_error(app, tmp_path, "- just\n- a list\n", "must hold a mapping")
    expect_error(app, tmp_path, "users: [\n", "not valid YAML")


def test_password_required_to_create_a_user(app, tmp_path):
    expect_error(app, tmp_path, "users: [{username: x, role: Gerente}]\n",
                 'users[0] "x": password: required to create the user')


def test_duplicate_ids_and_names(app, make, tmp_path):
    lunch = make.pause(name="Lunch").id
    expect_error(app, tmp_path, f"pauses: [{{id: {lunch}, name: Break}}]\n",
                 f'pauses[0] "Break": id: {lunch} is already the id of pause \'Lunch\'')
    expect_error(app, tmp_path, f"pauses: [{{id: {lunch + 5}, name: Lunch}}]\n",
                 f'pauses[0] "Lunch": id: this pause already exists with id {lunch}, not {lunch + 5}')
    expect_error(app, tmp_path, "pauses: [{id: 500, name: A}, {id: 500, name: B}]\n",
                 'pauses[1] "B": id: 500 is already the id of pause \'A\'')
    expect_error(app, tmp_path, "pauses: [{name: A}, {name: A}]\n",
                 'pauses[1] "A": name: \'A\' is declared twice')
    expect_error(app, tmp_path, """
users:
  - {username: a, password: pw, role: Agente, agent: {id: 3}}
  - {username: b, password: pw, role: Agente, agent: {id: 3}}
""", 'users[1] "b": agent.id: 3 is already the id of agent \'a\'')
    expect_error(app, tmp_path, """
users:
  - {username: a, password: pw, role: Agente, agent: {sip_extension: 1001}}
  - {username: b, password: pw, role: Agente, agent: {sip_extension: 1001}}
""", 'users[1] "b": agent.sip_extension: 1001 is already the extension of agent \'a\'')


def test_invalid_contacts_write_nothing(app, tmp_path):
    head = BASE.replace('      - {TEL: "3511000001", NOMBRE: Juan, id_ext: x-1}\n', "")
    bad = lambda contact: head + "      - " + contact + "\n"   # noqa: E731
    expect_error(app, tmp_path, bad('{TEL: "12ab", NOMBRE: Juan}'),
                 'contact_databases[0] "leads": contacts[0] "12ab": TEL: ')
    expect_error(app, tmp_path, bad("{NOMBRE: Juan}"),
                 'contact_databases[0] "leads": contacts[0]: TEL: the main phone is required')
    expect_error(app, tmp_path, bad('{TEL: "3511", FOO: x}'),
                 'contacts[0] "3511": unknown columns: FOO')
    expect_error(app, tmp_path,
                 head + '      - {id: 7, TEL: "3511", id_ext: x}\n      - {id: 8, TEL: "3512", id_ext: x}\n',
                 'contacts[1] "x": id_ext: ')
    # Duplicate phones only where a campaign on the database forbids them.
    twins = head + '      - {id: 7, TEL: "3511"}\n      - {id: 8, TEL: "3511"}\n'
    expect_error(app, tmp_path, twins + """
campaigns:
  - {name: c, database: leads, allow_duplicate_phones: false}
""", 'contacts[1] "3511": TEL: ')
    ids = provisioning.provision_file(write(tmp_path, twins + """
campaigns:
  - {name: c, database: leads}
"""))
    assert ids["contacts"] == {"leads": {"3511": 7, "#8": 8}}


def test_contacts_matched_by_external_id_then_phone(app, tmp_path):
    ids = provisioning.provision_file(write(tmp_path, BASE))
    contact_id = ids["contacts"]["leads"]["x-1"]
    changed = BASE.replace("NOMBRE: Juan, id_ext: x-1}", "NOMBRE: Juan Carlos, id_ext: x-1}\n"
                           '      - {TEL: "3511000009"}')
    ids = provisioning.provision_file(write(tmp_path, changed))
    assert ids["contacts"]["leads"]["x-1"] == contact_id
    assert db.session.get(Contact, contact_id).data["NOMBRE"] == "Juan Carlos"
    phone_only = ids["contacts"]["leads"]["3511000009"]
    assert provisioning.provision_file(write(tmp_path, changed))["contacts"]["leads"]["3511000009"] \
        == phone_only
    assert db.session.scalar(select(func.count()).select_from(Contact)) == 2


def test_inactive_user_cannot_log_in_and_its_tokens_stop(app, client, make, tmp_path):
    content = "users: [{username: ana, password: pw-1, role: Agente}]\n"
    provisioning.provision_file(write(tmp_path, content))
    user = db.session.scalar(select(User).where(User.username == "ana"))
    headers = make.headers(user)
    assert login(client, "ana", "pw-1").status_code == 200
    assert token_check(app, headers) == "ok"

    provisioning.provision_file(write(tmp_path, content.replace("}", ", active: false}")))
    response = login(client, "ana", "pw-1")
    assert response.status_code == 404
    assert response.get_json() == {"detail": "Invalid Credentials or activate account"}
    assert token_check(app, headers) == {"detail": "User is not active"}

    provisioning.provision_file(write(tmp_path, content))      # absent means active again
    assert login(client, "ana", "pw-1").status_code == 200


def test_password_change_cuts_old_tokens_and_same_password_keeps_them(app, client, make, tmp_path):
    content = "users: [{username: ana, password: pw-1, role: Agente}]\n"
    provisioning.provision_file(write(tmp_path, content))
    user = db.session.scalar(select(User).where(User.username == "ana"))
    old_hash, old_version = user.password_hash, user.token_version
    headers = make.headers(user)

    provisioning.provision_file(write(tmp_path, content))       # same password: untouched
    db.session.expire_all()
    assert (user.password_hash, user.token_version) == (old_hash, old_version)
    assert token_check(app, headers) == "ok"

    provisioning.provision_file(write(tmp_path, content.replace("pw-1", "pw-2")))
    db.session.expire_all()
    assert user.token_version == old_version + 1
    assert token_check(app, headers) == {"detail": "Invalid Token"}
    assert login(client, "ana", "pw-1").status_code == 404
    assert login(client, "ana", "pw-2").status_code == 200


def test_existing_objects_are_updated_to_what_the_file_says(app, tmp_path):
    provisioning.provision_file(write(tmp_path, BASE + """
campaigns:
  - name: c
    database: leads
    agents: [agent1]
    disposition_options: [{name: Venta, type: engaged}]
"""))
    provisioning.provision_file(write(tmp_path, BASE.replace("crm: a1", "crm: a2").replace(
        "contact_databases:", "  - {username: agent2, password: pw, role: Agente}\ncontact_databases:")
        + """
campaigns:
  - name: c
    database: leads
    state: paused
    agents: [agent2]
    supervisors: [sup1]
    disposition_options: [{name: Venta, type: engaged, hidden: true}]
"""))
    campaign = db.session.scalar(select(Campaign).where(Campaign.name == "c"))
    assert campaign.state == "paused"
    assert [a.user.username for a in campaign.agents] == ["agent2"]
    assert [s.username for s in campaign.supervisors] == ["sup1"]
    assert db.session.scalar(select(DispositionOption)).hidden is True
    assert db.session.scalar(select(AgentExternalId.external_agent_id)) == "a2"
    assert db.session.scalar(select(func.count()).select_from(AgentProfile)) == 2
    assert db.session.scalar(select(func.count()).select_from(ExternalSystem)) == 1


def test_database_layout_cannot_change(app, tmp_path):
    provisioning.provision_file(write(tmp_path, BASE))
    expect_error(app, tmp_path, BASE.replace("[TEL, NOMBRE, id_ext]", "[TEL, NOMBRE, EMAIL, id_ext]"),
                 'contact_databases[0] "leads": columns: the stored database has')


def test_yaml_keeps_phone_like_numbers_as_written(app, tmp_path):
    ids = provisioning.provision_file(write(tmp_path, """
contact_databases:
  - name: d
    columns: [TEL]
    main_phone: TEL
    contacts: [{TEL: +5493511000001}, {TEL: 03511000001}]
"""))
    assert set(ids["contacts"]["d"]) == {"+5493511000001", "03511000001"}


SUPERVISION = """
users:
  - {username: sup1, password: pw, role: Supervisor, supervisor: {sip_extension: 1101}}
  - {username: agent1, password: pw, role: Agente, agent: {sip_extension: 1001, group: Ventas}}
contact_databases:
  - {name: leads, columns: [TEL], main_phone: TEL}
campaigns:
  - {name: sales, database: leads, agents: [agent1], supervisors: [sup1], record: true,
     strategy: rrmemory}
  - {name: plain, database: leads}
"""


def test_supervision_keys(app, tmp_path):
    from oml_server.models import SupervisorProfile
    provisioning.provision_file(write(tmp_path, SUPERVISION))
    phone = db.session.scalar(select(SupervisorProfile))
    assert (phone.user.username, phone.sip_extension) == ("sup1", "1101")
    assert db.session.scalar(select(AgentProfile)).group == "Ventas"
    sales = db.session.scalar(select(Campaign).where(Campaign.name == "sales"))
    plain = db.session.scalar(select(Campaign).where(Campaign.name == "plain"))
    assert (sales.record, sales.strategy) == (True, "rrmemory")
    assert (plain.record, plain.strategy) == (False, "leastrecent")
    before = snapshot()
    provisioning.provision_file(write(tmp_path, SUPERVISION))
    assert snapshot() == before
    provisioning.provision_file(write(tmp_path, SUPERVISION.replace("1101", "1102")
                                      .replace("group: Ventas", "group: Soporte")))
    db.session.expire_all()
    assert db.session.scalar(select(SupervisorProfile)).sip_extension == "1102"
    assert db.session.scalar(select(AgentProfile)).group == "Soporte"


def test_supervision_keys_refused(app, tmp_path):
    expect_error(app, tmp_path, SUPERVISION.replace("1101", "1001"),
                 'users[1] "agent1": agent.sip_extension: 1001 is already the extension of '
                 "supervisor 'sup1'")
    expect_error(app, tmp_path, SUPERVISION.replace("strategy: rrmemory", "strategy: ring"),
                 'campaigns[0] "sales": strategy: Must be one of')
    expect_error(app, tmp_path, SUPERVISION.replace("agent: {sip_extension: 1001, group: Ventas}",
                                                    "supervisor: {sip_extension: 1001}"),
                 'users[1] "agent1": supervisor: An agent has no supervisor phone')
