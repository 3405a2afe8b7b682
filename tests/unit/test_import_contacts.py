"""`oml-server import-contacts --campaign ID FILE` (docs/provisioning-and-import.md)."""
import json

import pytest
from sqlalchemy import func, select

from oml_server.extensions import db
from oml_server.models import Contact
from oml_server.services import contact_import
from oml_server.services.contact_import import ImportFailed

BAD_PHONE_ES = 'TELEFONO: Solo se permiten de 3-25 dígitos y puede comenzar con "+".'
DUP_EXT_ES = "id_ext: Ya existe un contacto con ese id externo en la base de datos"
DUP_PHONE_ES = "TELEFONO: Ya existe un contacto con el mismo teléfono."


def write(tmp_path, text, name="contacts.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return str(path)


def stored(database):
    db.session.expire_all()
    return db.session.scalars(select(Contact).where(Contact.database_id == database.id)
                              .order_by(Contact.id)).all()


def count():
    return db.session.scalar(select(func.count()).select_from(Contact))


@pytest.fixture
def campaign(make):
    return make.campaign(database=make.contact_database(
        columns=("TELEFONO", "NOMBRE", "CELULAR", "id_ext"), other_phones=("CELULAR",)))


def test_good_rows_are_imported_with_every_column(app, campaign, tmp_path):
    path = write(tmp_path, "TELEFONO,NOMBRE,id_ext\n"
                           "3511000001,Ana Pérez,crm-1\n"
                           " 3511000002 ,Eva,\n")
    report = contact_import.import_csv(campaign.id, path)
    assert (report.imported, report.errors) == (2, [])
    contacts = stored(campaign.database)
    assert [(c.main_phone, c.external_id, c.unique_phone, c.assigned_agent_id, c.data)
            for c in contacts] == [
        ("3511000001", "crm-1", None, None,
         {"TELEFONO": "3511000001", "NOMBRE": "Ana Pérez", "CELULAR": "", "id_ext": "crm-1"}),
        ("3511000002", None, None, None,
         {"TELEFONO": "3511000002", "NOMBRE": "Eva", "CELULAR": "", "id_ext": None})]


def test_bad_rows_are_reported_by_line_and_the_rest_imported(app, campaign, tmp_path):
    path = write(tmp_path, "TELEFONO,NOMBRE,CELULAR,id_ext\n"
                           "3511000001,Ana,,a1\n"          # 2 ok
                           "35-11,Bruno,,a2\n"             # 3 bad phone
                           ",Carla,,a3\n"                  # 4 no main phone
                           "\n"                            # 5 blank: skipped
                           "3511000005,\"Diego\nDíaz\",,a5\n"   # 6-7 one row over two lines
                           "3511000008,Eva,12ab,a8\n"      # 8 bad other phone
                           "3511000009,Facundo\n"          # 9 too few fields
                           "3511000010,Gala,,a10\n")       # 10 ok
    report = contact_import.import_csv(campaign.id, path)
    assert report.imported == 3
    assert report.errors == [
        (3, BAD_PHONE_ES),
        (4, "TELEFONO: the main phone is required"),
        (8, 'CELULAR: Solo se permiten de 3-25 dígitos y puede comenzar con "+".'),
        (9, "2 fields where the header has 4"),
    ]
    assert [c.external_id for c in stored(campaign.database)] == ["a1", "a5", "a10"]
    assert stored(campaign.database)[1].data["NOMBRE"] == "Diego\nDíaz"


def test_duplicate_external_ids_within_the_file_and_against_the_database(app, make, campaign,
                                                                          tmp_path):
    make.contact(campaign.database, phone="3519999999", external_id="old")
    path = write(tmp_path, "TELEFONO,id_ext\n"
                           "3511000001,new\n"
                           "3511000002,old\n"
                           "3511000003,new\n"
                           "3511000001,other\n")     # same phone: allowed in this campaign
    report = contact_import.import_csv(campaign.id, path, batch_size=2)
    assert report.imported == 2
    assert report.errors == [(3, DUP_EXT_ES), (4, DUP_EXT_ES + " (an earlier line)")]
    assert sorted(c.external_id for c in stored(campaign.database)) == ["new", "old", "other"]


def test_campaign_without_duplicate_phones(app, make, tmp_path):
    campaign = make.campaign(type="preview", allow_duplicate_phones=False)
    make.contact(campaign.database, phone="3510000000", external_id="old")
    path = write(tmp_path, "TELEFONO,NOMBRE,id_ext\n"
                           "3511000001,Ana,a\n"
                           "3510000000,Bruno,b\n"     # phone already stored
                           "3511000001,Carla,c\n"     # phone earlier in the file
                           "3511000004,Diego,d\n")
    report = contact_import.import_csv(campaign.id, path, batch_size=2)
    assert report.imported == 2
    assert report.errors == [(3, DUP_PHONE_ES), (4, DUP_PHONE_ES + " (an earlier line)")]
    new = [c for c in stored(campaign.database) if c.external_id in ("a", "d")]
    # Preview: imported contacts are assigned to no one; the phone is held unique.
    assert [(c.unique_phone, c.assigned_agent_id) for c in new] == [("3511000001", None),
                                                                     ("3511000004", None)]


def test_a_batch_that_loses_a_race_is_retried_row_by_row(app, make, monkeypatch, tmp_path):
    campaign = make.campaign(allow_duplicate_phones=False)
    database = campaign.database
    make.contact(database, phone="3512222222", external_id="taken")
    db.session.get(Contact, stored(database)[0].id).unique_phone = "3512222222"
    db.session.commit()
    # As if a concurrent writer stored them after the batch's check.
    monkeypatch.setattr(contact_import._Importer, "_stored", lambda self, column, values: set())
    path = write(tmp_path, "TELEFONO,id_ext\n3511000001,a\n3511000002,taken\n"
                           "3512222222,c\n3511000004,d\n")
    report = contact_import.import_csv(campaign.id, path)
    assert report.imported == 2
    assert report.errors == [(3, DUP_EXT_ES), (4, DUP_PHONE_ES)]
    assert sorted(c.external_id for c in stored(database)) == ["a", "d", "taken"]


def test_bom_and_semicolons_are_tolerated(app, campaign, tmp_path):
    path = write(tmp_path, "\ufeffTELEFONO;NOMBRE\r\n3511000001;Pérez, Ana\r\n")
    report = contact_import.import_csv(campaign.id, path)
    assert (report.imported, report.errors) == (1, [])
    assert stored(campaign.database)[0].data["NOMBRE"] == "Pérez, Ana"


def test_database_without_external_id_column(app, make, tmp_path):
    campaign = make.campaign(database=make.contact_database(columns=("TEL", "NOMBRE"),
                                                            main_phone="TEL", external_id=None))
    report = contact_import.import_csv(campaign.id, write(tmp_path, "TEL\n123\n123\n"))
    assert (report.imported, report.errors) == (2, [])


@pytest.mark.parametrize("content, message", [
    ("NOMBRE,id_ext\nAna,a\n", "the header lacks the main phone column 'TELEFONO'"),
    ("TELEFONO,EMAIL,FOO\n1234,a,b\n", "the header has columns the contact database lacks: EMAIL, FOO"),
    ("TELEFONO,TELEFONO\n1234,1234\n", "the header repeats columns: TELEFONO"),
    ("", "the file is empty"),
])
def test_fatal_header_problems_import_nothing(app, campaign, tmp_path, content, message):
    with pytest.raises(ImportFailed) as info:
        contact_import.import_csv(campaign.id, write(tmp_path, content))
    assert message in str(info.value)
    assert count() == 0


def test_unknown_campaign(app, tmp_path):
    with pytest.raises(ImportFailed) as info:
        contact_import.import_csv(987654, write(tmp_path, "TELEFONO\n123\n"))
    assert str(info.value) == "campaign 987654 does not exist"


def test_a_row_that_is_not_utf8_is_reported(app, campaign, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("TELEFONO,NOMBRE\n3511000001,Ana\n3511000002,Pérez\n3511000003,Ñandú\n"
                     .encode("utf-8").replace("Pérez".encode("utf-8"), "Pérez".encode("latin-1")))
    report = contact_import.import_csv(campaign.id, str(path))
    assert report.imported == 2
    assert report.errors == [(3, "not UTF-8 text")]
    assert [c.data["NOMBRE"] for c in stored(campaign.database)] == ["Ana", "Ñandú"]


def cli(app, *args):
    return app.test_cli_runner().invoke(args=["import-contacts", *args])


def test_cli_reports_counts_and_bad_lines(app, campaign, tmp_path):
    path = write(tmp_path, "TELEFONO,NOMBRE\n3511000001,Ana\nabc,Bruno\n3511000003,Carla\n")
    result = cli(app, "--campaign", str(campaign.id), path)
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"imported": 2, "rejected": 1}
    assert f"line 3: {BAD_PHONE_ES}" in result.stderr
    assert count() == 2


def test_cli_exit_status_when_nothing_imports(app, campaign, tmp_path):
    result = cli(app, "--campaign", str(campaign.id), write(tmp_path, "TELEFONO\nabc\n"))
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {"imported": 0, "rejected": 1}

    result = cli(app, "--campaign", "987654", write(tmp_path, "TELEFONO\n123\n"))
    assert result.exit_code == 1
    assert "Error: campaign 987654 does not exist" in result.stderr

    result = cli(app, "--campaign", str(campaign.id), write(tmp_path, "PHONE\n123\n"))
    assert result.exit_code == 1
    assert "the header has columns the contact database lacks: PHONE" in result.stderr
    assert count() == 0


def test_many_rows_in_several_batches(app, campaign, tmp_path):
    lines = ["TELEFONO,NOMBRE,id_ext"] + [f"35{i:09d},N{i},e{i}" for i in range(1, 12_001)]
    lines[5000] = "bad,x,y"
    report = contact_import.import_csv(campaign.id, write(tmp_path, "\n".join(lines) + "\n"))
    assert report.imported == 11_999
    assert report.errors == [(5001, 'TELEFONO: Solo se permiten de 3-25 dígitos y puede '
                                    'comenzar con "+".')]
    # Importing the same file again finds every row already there.
    again = contact_import.import_csv(campaign.id, write(tmp_path, "\n".join(lines) + "\n", "b.csv"))
    assert again.imported == 0 and len(again.errors) == 12_000
    assert count() == 11_999


def test_every_imported_contact_is_searchable_and_counted(app, make, campaign, tmp_path,
                                                         monkeypatch):
    """SQLite fills the search index and the counters per batch (not by the row trigger):
    every contact of every batch is found by the index, none twice, and the totals and the
    trigger's upkeep of contacts written afterwards stay exact. PostgreSQL: the same answers."""
    from sqlalchemy import text

    from oml_server.models import contact_bulk_loads
    from oml_server.services import campaign_contacts
    monkeypatch.setattr(campaign_contacts, "_dense", lambda *args: False)  # the index, always
    make.contact(campaign.database, phone="3519000000", NOMBRE="Antes")
    lines = ["TELEFONO,NOMBRE,id_ext"] + [f"35{i:09d},Persona {i:05d}x,e{i}"
                                         for i in range(1, 2_502)]
    report = contact_import.import_csv(campaign.id, write(tmp_path, "\n".join(lines) + "\n"),
                                       batch_size=1000)
    assert report.imported == 2_501
    make.contact(campaign.database, phone="3519000001", NOMBRE="Después")

    def search(term):
        body = campaign_contacts.page(campaign, 0, 1000, term)
        return body["recordsTotal"], body["recordsFiltered"], len(body["data"])
    assert search("") == (2_503, 2_503, 1000)
    for i in (1, 999, 1000, 1001, 2000, 2001, 2501):
        assert search(f"persona {i:05d}x") == (2_503, 1, 1), i
    assert search("ersona 0")[1:] == (1000, 1000)   # counted up to the limit
    assert search("antes")[1] == 1 and search("después")[1] == 1
    assert db.session.scalar(select(func.count()).select_from(contact_bulk_loads)) == 0
    if db.session.get_bind().dialect.name == "sqlite":
        indexed = db.session.scalar(text(
            "SELECT count(*) FROM contacts_search WHERE contacts_search MATCH 'ersona'"))
        assert indexed == 2_501
        db.session.execute(text("INSERT INTO contacts_search (contacts_search) "
                                "VALUES ('integrity-check')"))  # raises when index != content
