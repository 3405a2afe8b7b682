"""GET /api/v1/health [extension]: no authentication; 503 when the database is down."""
import pytest
from sqlalchemy.exc import OperationalError

from oml_server.extensions import db
from oml_server.services import telephony
from tests.fake_telephony import FakeTelephony


@pytest.mark.parametrize("path", ["/api/v1/health", "/api/v1/health/"])
def test_healthy_without_an_engine(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok", "ari": "disabled"}


@pytest.mark.parametrize("ari, status", [("ok", "ok"), ("down", "degraded"),
                                         ("connecting", "degraded"),
                                         (RuntimeError("boom"), "degraded")])
def test_the_engine_state_is_reported(client, ari, status):
    previous = telephony.set_backend(FakeTelephony(status=ari))
    try:
        response = client.get("/api/v1/health")
    finally:
        telephony.set_backend(previous)
    assert response.status_code == 200
    assert response.get_json() == {"status": status, "database": "ok",
                                   "ari": ari if isinstance(ari, str) else "error"}


def test_database_down_is_503(client, monkeypatch):
    def broken(*args, **kwargs):
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))
    monkeypatch.setattr(db.session, "execute", broken)
    response = client.get("/api/v1/health")
    assert response.status_code == 503
    assert response.get_json() == {"status": "degraded", "database": "error", "ari": "disabled"}


def test_post_is_405(client):
    response = client.post("/api/v1/health/")
    assert response.status_code == 405
