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
    assert response.get_json() == {"status": "ok", "database": "ok", "ari": "disabled",
                                   "ari_problems": []}


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
                                   "ari": ari if isinstance(ari, str) else "error",
                                   "ari_problems": []}


def test_database_down_is_503(client, monkeypatch):
    def broken(*args, **kwargs):
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))
    monkeypatch.setattr(db.session, "execute", broken)
    response = client.get("/api/v1/health")
    assert response.status_code == 503
    assert response.get_json() == {"status": "degraded", "database": "error", "ari": "disabled",
                                   "ari_problems": []}


def test_post_is_405(client):
    response = client.post("/api/v1/health/")
    assert response.status_code == 405


def test_api_only_worker_places_calls_over_ari(app, monkeypatch):
    """`oml-server run --no-engine` (split deployment) installs the ARI backend, so its
    makeCall reaches Asterisk instead of answering "calls are not enabled"."""
    from oml_server import serve as serve_module
    from oml_server.services import telephony

    served = {}
    monkeypatch.setattr(serve_module, "DrainingWSGIServer",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("stop here")))
    monkeypatch.setattr(serve_module, "listening_socket", lambda host, port: None)
    app.config["ARI_ENABLED"] = True
    previous = telephony.get_backend()
    try:
        try:
            serve_module.serve(app, "127.0.0.1", 0, with_engine=False)
        except RuntimeError as exc:
            served["stopped"] = str(exc)
        backend = telephony.get_backend()
        assert type(backend).__name__ == "AriBackend" and backend.supervisor is None
    finally:
        app.config["ARI_ENABLED"] = False
        telephony.set_backend(previous)
    assert served == {"stopped": "stop here"}
