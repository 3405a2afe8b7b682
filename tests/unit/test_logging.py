"""Logging: one line per request, LOG_LEVEL and LOG_FORMAT=json (oml_server/logging_setup.py)."""
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from oml_server import logging_setup, secrets_file

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def configured():
    """configure() for a test, writing into a buffer; the root logger is put back after."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    buffer = io.StringIO()

    def apply(**env):
        logging_setup.configure(env, stream=buffer)
        return buffer
    yield apply
    root.handlers[:], level = saved
    root.setLevel(level)


def test_one_json_line_per_request_with_method_path_status_ms(client, configured):
    out = configured(LOG_FORMAT="json")
    client.get("/api/v1/health")
    client.post("/api/v1/login", json={"username": "nobody"})
    client.get("/api/v1/no-such-thing/")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    requests_logged = [line for line in lines if line["logger"] == "oml_server.request"]
    assert [(r["method"], r["path"], r["status"]) for r in requests_logged] == [
        ("GET", "/api/v1/health", 200), ("POST", "/api/v1/login", 400),
        ("GET", "/api/v1/no-such-thing/", 404)]
    for record in requests_logged:
        assert record["level"] == "INFO" and isinstance(record["ms"], float) and record["ms"] >= 0
        assert record["message"].startswith(f'{record["method"]} {record["path"]} {record["status"]} ')
        assert record["time"].endswith("+00:00")


def test_text_lines_by_default(client, configured):
    out = configured()
    client.get("/api/v1/health")
    line = out.getvalue().strip().splitlines()[-1]
    assert " INFO oml_server.request: GET /api/v1/health 200 " in line and line.endswith(" ms")


def test_log_level_warning_silences_the_request_lines(client, configured):
    out = configured(LOG_LEVEL="warning")
    client.get("/api/v1/health")
    assert out.getvalue() == ""


@pytest.mark.parametrize("env", [{"LOG_LEVEL": "loud"}, {"LOG_FORMAT": "xml"}])
def test_an_unknown_setting_is_refused_with_what_is_allowed(env, configured):
    with pytest.raises(logging_setup.BadLogSetting) as info:
        configured(**env)
    assert "must be" in str(info.value)


def test_extra_fields_and_exceptions_become_json_fields(configured):
    out = configured(LOG_FORMAT="json")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("ari_engine.test").error("call %s failed", 7, exc_info=True,
                                                   extra={"call_id": 7, "state": "failed"})
    record = json.loads(out.getvalue())
    assert record["message"] == "call 7 failed"
    assert (record["call_id"], record["state"]) == (7, "failed")
    assert "RuntimeError: boom" in record["exc_info"]


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_oml_server_run_logs_json_lines_for_its_requests(tmp_path):
    port = _free_port()
    env = {**os.environ, **secrets_file.generate(), "ARI_ENABLED": "0", "LOG_FORMAT": "json",
           "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3"}
    env.pop("OML_ENV", None)
    cli = os.path.join(os.path.dirname(sys.executable), "oml-server")
    proc = subprocess.Popen([cli, "run", "--no-engine", "--port", str(port)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        http = requests.Session()
        http.trust_env = False
        deadline = time.monotonic() + 30
        while True:
            try:
                http.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1)
                break
            except requests.ConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        http.get(f"http://127.0.0.1:{port}/openapi.json", timeout=5)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    lines = [json.loads(line) for line in err.splitlines()]  # every line is one JSON object
    paths = [(line["path"], line["status"]) for line in lines if line["logger"] == "oml_server.request"]
    assert ("/openapi.json", 200) in paths
    assert any("serving on" in line["message"] for line in lines)
