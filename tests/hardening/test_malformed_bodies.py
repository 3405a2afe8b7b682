"""Item 2: malformed bodies and hostile ids. Every one gets the endpoint's own error style
(contract §1.6), never a 5xx, and nothing is written."""
import io
import json

import pytest
from werkzeug.test import EnvironBuilder, run_wsgi_app
from sqlalchemy import func, select

from oml_server.extensions import db
from oml_server.models import (AgentActivity, Call, Contact, Disposition, ThrottleEvent,
                               User)

DATA_ERRORS = "Hubo errores en los datos recibidos"


def _rows():
    return {model.__name__: db.session.scalar(select(func.count()).select_from(model))
            for model in (Contact, Disposition, Call, AgentActivity, User)}


# The endpoint's error style for a body that cannot be read, as a predicate on (status, body).
def login_style(status, body):
    return status == 400 and set(body) == {"detail"} and isinstance(body["detail"], str)


def data_errors_style(expected_status):
    def check(status, body):
        return (status == expected_status and list(body) == ["status", "message", "errors"]
                and body["status"] == "ERROR" and body["message"] == DATA_ERRORS
                and isinstance(body["errors"], dict) and body["errors"])
    return check


def disposition_style(status, body):
    return status == 400 and body.get("status") == "ERROR" and len(body) >= 2


def heartbeat_style(status, body):
    return status == 400 and list(body) == ["status", "message"] and body["status"] == "ERROR"


def status_error_style(status, body):
    return status == 200 and body == {"status": "ERROR"}


@pytest.fixture
def endpoints(world, make):
    """(method, path, style, authenticated?) for every endpoint that reads a body."""
    from oml_server.models import Disposition as D
    disposition = D(agent_id=world.alice.agent.id, contact_id=world.contact_a.id,
                    campaign_id=world.campaign_a.id, option_id=world.option_a.id, comments="")
    db.session.add(disposition)
    db.session.commit()
    return [
        ("post", "/api/v1/login/", login_style, False),
        ("post", "/api/v1/campaign/database_metadata/", data_errors_style(400), True),
        ("post", "/api/v1/new_contact/", data_errors_style(400), True),
        ("post", "/api/v1/makeCall/", data_errors_style(200), True),
        ("post", "/api/v1/disposition/", disposition_style, True),
        ("put", f"/api/v1/disposition/{disposition.id}/", disposition_style, True),
        ("post", "/api/v1/new_contact/disposition/", disposition_style, True),
        ("post", "/api/v1/asterisk_pause/", status_error_style, True),
        ("post", "/api/v1/asterisk_unpause/", status_error_style, True),
        ("post", "/api/v1/asterisk_ringing/", status_error_style, True),
        ("post", "/api/v1/agent/presence/heartbeat/", heartbeat_style, True),
    ]


def _deep(depth):
    return ("[" * depth + "]" * depth).encode()


BAD_BODIES = {
    "invalid JSON": (b'{"username": "x", ', "application/json"),
    "truncated": (b'{"idCampaign": 1', "application/json"),
    "JSON list": (b'[{"idCampaign": 1}]', "application/json"),
    "JSON string": (b'"idCampaign"', "application/json"),
    "JSON number": (b"42", "application/json"),
    "JSON null": (b"null", "application/json"),
    "JSON true": (b"true", "application/json"),
    "deeply nested list": (_deep(100000), "application/json"),
    "deeply nested object": (b'{"a":' * 50000 + b"1" + b"}" * 50000, "application/json"),
    "non-UTF-8": (b'{"username": "\xff\xfe"}', "application/json"),
    "latin-1 bytes": ('{"phone": "ñandú"}'.encode("latin-1"), "application/json"),
    "unknown content type": (b"<xml>1</xml>", "text/xml"),
    "octet-stream": (b"\x00\x01\x02", "application/octet-stream"),
    "NUL bytes": (b"\x00" * 64, "application/json"),
}


@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_unreadable_bodies_get_the_endpoints_error_style(client, make, world, endpoints, name,
                                                           fake_telephony):
    raw, content_type = BAD_BODIES[name]
    headers = make.headers(world.alice)
    before = _rows()
    for method, path, style, authenticated in endpoints:
        response = getattr(client, method)(path, data=raw, content_type=content_type,
                                           headers=headers if authenticated else {})
        body = response.get_json()
        assert style(response.status_code, body), (path, response.status_code, body)
        assert response.headers["Content-Type"] == "application/json"
    assert _rows() == before


HOSTILE_IDS = [1.5, -1, 0, 10 ** 30, -(10 ** 30), "1e3", "1; DROP TABLE contacts;--",
               "' OR '1'='1", "<script>alert(1)</script>", "１２", "", " ", None, True, [],
               {}, [1], {"id": 1}, "NaN", "Infinity", "0x10", "\u0000", "9" * 400]


@pytest.mark.parametrize("value", HOSTILE_IDS, ids=[repr(v)[:25] for v in HOSTILE_IDS])
def test_hostile_ids_are_refused_in_style(client, make, world, value, fake_telephony):
    headers = make.headers(world.alice)
    before = _rows()
    cases = [
        ("/api/v1/campaign/database_metadata/", {"idCampaign": value}, data_errors_style(400)),
        ("/api/v1/new_contact/", {"idCampaign": value, "TELEFONO": "3511234567"},
         data_errors_style(400)),
        ("/api/v1/makeCall/", {"idCampaign": value, "idAgent": world.alice.agent.id,
                               "phone": "3511234567"}, data_errors_style(200)),
        ("/api/v1/makeCall/", {"idCampaign": world.campaign_a.id, "idAgent": value,
                               "phone": "3511234567"}, data_errors_style(200)),
        ("/api/v1/disposition/", {"idContact": value, "idDispositionOption": world.option_a.id},
         disposition_style),
        ("/api/v1/disposition/", {"idContact": world.contact_a.id, "idDispositionOption": value},
         disposition_style),
        ("/api/v1/new_contact/disposition/", {"idDispositionOption": value, "phone": "3511234567"},
         disposition_style),
        ("/api/v1/asterisk_pause/", {"pause_id": value}, status_error_style),
    ]
    for path, body, style in cases:
        response = client.post(path, json=body, headers=headers)
        assert style(response.status_code, response.get_json()), (path, body, response.get_json())
    assert _rows() == before


PATH_IDS = [v for v in HOSTILE_IDS if isinstance(v, (int, str)) and not isinstance(v, bool)
            and str(v).strip()] + [1.5]


@pytest.mark.parametrize("value", PATH_IDS, ids=[repr(v)[:25] for v in PATH_IDS])
def test_hostile_ids_in_paths_are_404(client, make, world, value):
    segment = str(value).replace("/", "%2F").replace("?", "%3F").replace("#", "%23")
    headers = make.headers(world.alice)
    for path in (f"/api/v1/disposition/{segment}/", f"/api/v1/calls/{segment}/",
                 f"/api/v1/campaign/{segment}/dispositionOptions/",
                 f"/api/v1/campaign/{segment}/dispositionOptions/{segment}/"):
        response = client.get(path, headers=headers)
        assert response.status_code == 404, (path, response.get_json())
        assert response.get_json() == {"detail": "No encontrado."}


NUL_BODIES = [
    ("/api/v1/login/", {"username": "ad\u0000min", "password": "x"}, login_style, False),
    ("/api/v1/new_contact/", {"idCampaign": 1, "TELEFONO": "351\u0000", "id_ext": "a"},
     data_errors_style(400), True),
    ("/api/v1/new_contact/", {"idCampaign": 1, "TELEFONO": "3511", "id_ext": "\u0000"},
     data_errors_style(400), True),
    ("/api/v1/makeCall/", {"idCampaign": 1, "idAgent": 1, "phone": "3511234567",
                           "idExternalSystem": "\u0000", "idContact": "\u0000"},
     data_errors_style(200), True),
    ("/api/v1/disposition/", {"idContact": "x\u0000", "idDispositionOption": 1,
                              "idExternalSystem": 1, "comments": "\u0000"}, disposition_style, True),
    ("/api/v1/new_contact/disposition/", {"idDispositionOption": 1, "phone": "3511234567",
                                          "idExternalContact": "\u0000"}, disposition_style, True),
    ("/api/v1/asterisk_pause/", {"pause_id": "\u0000"}, status_error_style, True),
    ("/api/v1/new_contact/", {"idCampaign": 1, "\u0000": "key"}, data_errors_style(400), True),
]


@pytest.mark.parametrize("path,body,style,authenticated", NUL_BODIES,
                         ids=[f"{p} {i}" for i, (p, *_) in enumerate(NUL_BODIES)])
def test_nul_characters_are_unreadable_bodies(client, make, world, path, body, style,
                                              authenticated, fake_telephony):
    before = _rows()
    headers = make.headers(world.alice) if authenticated else {}
    for send in ({"json": body}, {"data": body}):
        response = client.post(path, headers=headers, **send)
        assert style(response.status_code, response.get_json()), (path, response.get_json())
    assert _rows() == before


def test_form_bodies_with_the_same_values(client, make, world, fake_telephony):
    headers = make.headers(world.alice)
    before = _rows()
    for value in ("1.5", "-1", "9" * 40, "<b>x</b>", "1 OR 1=1"):
        response = client.post("/api/v1/new_contact/", data={"idCampaign": value,
                                                              "TELEFONO": "3511234567"},
                               headers=headers)
        assert data_errors_style(400)(response.status_code, response.get_json())
    assert _rows() == before


class _Exploding(io.RawIOBase):
    """A request stream that must never be read."""
    read_count = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        _Exploding.read_count += 1
        raise AssertionError("the body of an oversized request was read")


@pytest.mark.parametrize("path,authenticated", [
    ("/api/v1/login/", False), ("/api/v1/new_contact/", True), ("/api/v1/makeCall/", True),
    ("/api/v1/disposition/", True), ("/api/v1/asterisk_pause/", True)])
@pytest.mark.parametrize("lang,message", [(None, "El cuerpo de la solicitud es demasiado grande."),
                                          ("en", "Request body too large.")])
def test_oversized_bodies_are_refused_before_reading(app, client, make, world, path,
                                                     authenticated, lang, message):
    limit = app.config["MAX_CONTENT_LENGTH"]
    headers = make.headers(world.alice, lang=lang) if authenticated else (
        {"Accept-Language": lang} if lang else {})
    before = _rows()
    _Exploding.read_count = 0
    environ = EnvironBuilder(path=path, method="POST", headers=headers,
                             content_type="application/json").get_environ()
    environ["wsgi.input"] = _Exploding()
    environ["CONTENT_LENGTH"] = str(limit + 1)
    chunks, status, response_headers = run_wsgi_app(app, environ, buffered=True)
    assert status.startswith("413")
    assert json.loads(b"".join(chunks)) == {"detail": message}
    assert _Exploding.read_count == 0
    assert _rows() == before


def test_a_body_at_the_limit_is_read(app, client):
    limit = app.config["MAX_CONTENT_LENGTH"]
    padding = "x" * (limit - len(json.dumps({"username": "u", "password": "p", "pad": ""})))
    body = json.dumps({"username": "u", "password": "p", "pad": padding}).encode()
    assert len(body) == limit
    response = client.post("/api/v1/login/", data=body, content_type="application/json")
    assert response.status_code == 404  # read and checked: unknown credentials
    # one byte more: refused
    response = client.post("/api/v1/login/", data=body + b" ", content_type="application/json")
    assert response.status_code == 413


def test_no_throttle_rows_from_unreadable_logins(client):
    for raw, content_type in BAD_BODIES.values():
        client.post("/api/v1/login/", data=raw, content_type=content_type)
    assert db.session.scalar(select(func.count()).select_from(ThrottleEvent)) == 0
