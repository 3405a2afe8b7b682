"""Recordings (contract-calls §5): the URL, the file with Range, who may hear it, the bulk zip,
and the engine starting a campaign's recording when a call is bridged."""
import io
import json
import os
import uuid
import zipfile
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from oml_server.extensions import db
from oml_server.models import Call, Campaign, Event

AUDIO = b"RIFF" + bytes(range(256)) * 40


@pytest.fixture
def recorded(app, make, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "RECORDINGS_DIR", str(tmp_path / "rec"))
    monkeypatch.setitem(app.config, "RECORDINGS_ZIP_DIR", str(tmp_path / "zips"))
    agent, other_agent = make.agent(), make.agent()
    sup, other_sup = make.user("Supervisor"), make.user("Supervisor")
    campaign = make.campaign(agents=[agent, other_agent], supervisors=[sup])
    call_id = uuid.uuid4().hex
    name = f"2026-11-30/{call_id}.wav"
    os.makedirs(tmp_path / "rec" / "2026-11-30")
    (tmp_path / "rec" / name).write_bytes(AUDIO)
    (tmp_path / "secret.txt").write_text("not a recording")
    db.session.add(Call(id=call_id, kind="inbound", campaign_id=campaign.id,
                        agent_id=agent.agent.id, state="ended", recording_file=name,
                        created_at=datetime(2026, 11, 30, 10, tzinfo=timezone.utc)))
    db.session.commit()
    return {"agent": agent, "other_agent": other_agent, "sup": sup, "other_sup": other_sup,
            "admin": make.user("Administrador"), "call_id": call_id, "name": name,
            "tmp": tmp_path}


def test_call_record_gives_the_omnileads_url_to_who_may_hear_it(client, make, recorded):
    path = f"/api/v1/call_record/{recorded['call_id']}/"
    expected = {"status": "OK",
                "record": f"/api/v1/grabacion/archivo/?filename=/{recorded['name']}"}
    for who in ("agent", "sup", "admin"):
        response = client.get(path, headers=make.headers(recorded[who]))
        assert (response.status_code, response.get_json()) == (200, expected), who
    for who in ("other_agent", "other_sup"):
        response = client.get(path, headers=make.headers(recorded[who]))
        assert (response.status_code, response.get_json()) == (404, {"status": "ERROR"}), who
    response = client.get("/api/v1/call_record/nope/", headers=make.headers(recorded["admin"]))
    assert (response.status_code, response.get_json()) == (404, {"status": "ERROR"})


def test_the_file_is_served_whole_and_by_range(client, make, recorded):
    url = f"/api/v1/grabacion/archivo/?filename=/{recorded['name']}"
    response = client.get(url, headers=make.headers(recorded["agent"]))
    assert (response.status_code, response.mimetype, response.data) == (200, "audio/wav", AUDIO)
    response = client.get(url, headers={**make.headers(recorded["sup"]), "Range": "bytes=4-9"})
    assert response.status_code == 206
    assert response.data == AUDIO[4:10]
    assert response.headers["Content-Range"] == f"bytes 4-9/{len(AUDIO)}"


@pytest.mark.parametrize("filename", ["/../secret.txt", "../secret.txt", "/2026-11-30/x.wav",
                                      "", "/zip/someone-grabaciones.zip", "/etc/passwd"])
def test_anything_else_is_not_found(client, make, recorded, filename):
    response = client.get("/api/v1/grabacion/archivo/", query_string={"filename": filename},
                          headers=make.headers(recorded["admin"]))
    assert (response.status_code, response.get_json()) == (404, {"detail": "No encontrado."})


def test_others_calls_recordings_are_not_served(client, make, recorded):
    url = f"/api/v1/grabacion/archivo/?filename=/{recorded['name']}"
    for who in ("other_agent", "other_sup"):
        assert client.get(url, headers=make.headers(recorded[who])).status_code == 404


def test_bulk_download_zips_what_the_supervisor_may_hear_with_datos_csv(client, make, recorded):
    from oml_server.services import recordings
    started = []
    original = recordings.start_zip
    recordings.start_zip = lambda user, files: started.append(original(user, files))
    try:
        files = [{"archivo": recorded["name"], "telefono": "3511000001", "agente": "Ana"},
                 {"archivo": "2026-11-30/someone-else.wav", "telefono": "1"}]
        response = client.post("/api/v1/grabacion/descarga_masiva",
                               data={"files": json.dumps(files)},
                               headers=make.headers(recorded["sup"]))
    finally:
        recordings.start_zip = original
    assert (response.status_code, response.get_json()) == \
        (200, {"status": "OK", "msg": "Exportación de grabaciones Zip en proceso"})
    started[0].join(5)
    sup = recorded["sup"]
    url = f"/api/v1/grabacion/archivo/?filename=/zip/{sup.username}-grabaciones.zip"
    response = client.get(url, headers=make.headers(sup))
    assert response.status_code == 200 and response.mimetype == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    assert sorted(archive.namelist()) == sorted([recorded["name"], "datos.csv"])
    assert archive.read(recorded["name"]) == AUDIO
    assert archive.read("datos.csv").decode().splitlines() == \
        ["archivo,telefono,agente", f"{recorded['name']},3511000001,Ana"]
    # Another user's zip is never served.
    assert client.get(url, headers=make.headers(recorded["admin"])).status_code == 404


@pytest.mark.parametrize("files", ["", "not json", "{}", "[]", '[{"x": 1}]', '["a"]'])
def test_bulk_download_refuses_a_bad_list(client, make, recorded, files):
    response = client.post("/api/v1/grabacion/descarga_masiva", data={"files": files},
                           headers=make.headers(recorded["sup"]))
    assert (response.status_code, response.get_json()) == \
        (400, {"status": "ERROR", "message": "Valor inválido para files"})


def test_the_engine_records_a_recording_campaigns_bridged_call(app, make):
    from tests.unit.test_engine_replay import Harness, fresh, online, rest_click_to_call
    from ari_engine import ids, recording
    engine = Harness(app)
    agent = online(make, "1001")
    campaign = make.campaign(agents=[agent.user])
    db.session.get(Campaign, campaign.id).record = True
    db.session.commit()
    call_id = rest_click_to_call(engine, agent)
    fresh(call_id).campaign_id = campaign.id
    db.session.commit()
    engine.replay("click_to_call-contact_hangup", call_id)
    call = fresh(call_id)
    name = f"{call.created_at:%Y-%m-%d}/{call_id}"
    assert call.recording_file == f"{name}.wav"
    records = [r for r in engine.ari.requests if r[0] == "request" and r[1][1].endswith("/record")]
    assert records == [("request", ("POST", f"/bridges/{ids.bridge(call_id)}/record",
                                    {"name": name, "format": "wav", "ifExists": "overwrite",
                                     "beep": "false", "terminateOn": "none"}), {})]
    recording.finished({"type": "RecordingFinished", "recording": {
        "name": name, "format": "wav", "target_uri": f"bridge:{ids.bridge(call_id)}",
        "duration": 7}})
    ready = db.session.scalar(select(Event).where(Event.call_id == call_id,
                                                  Event.type == "recording.ready"))
    assert ready.data["file"] == f"{name}.wav" and ready.data["duration"] == 7


def test_a_campaign_without_record_is_not_recorded(app, make):
    from tests.unit.test_engine_replay import Harness, fresh, online, rest_click_to_call
    engine = Harness(app)
    agent = online(make, "1001")
    call_id = rest_click_to_call(engine, agent)
    engine.replay("click_to_call-contact_hangup", call_id)
    assert fresh(call_id).recording_file is None
    assert not [r for r in engine.ari.requests if r[0] == "request" and r[1][1].endswith("/record")]
