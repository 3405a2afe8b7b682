"""`asterisk-config/lab.sh phone EXT`: the one command that gives a new user an agent phone.
It takes the SIP credentials from the running server's API, registers to the lab Asterisk,
answers a click-to-call (streaming audio) and un-registers on Ctrl-C."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from conftest import PASSWORD
from lab import LAB_SH, AriNotFound, wait_until

pytestmark = pytest.mark.integration


def _online(lab, ext):
    try:
        return lab.endpoint_state(ext) == "online"
    except AriNotFound:  # not pushed yet: the phone has not asked the API for credentials
        return False


def test_lab_phone_registers_with_the_apis_credentials_answers_and_unregisters(server, lab, world):
    agent = world.agents["dan"]
    env = dict(os.environ, OML_API=server.url, SIP_PORT=str(lab.sip_port))
    phone = subprocess.Popen([LAB_SH, "phone", agent["ext"], "--username", "dan",
                              "--password", PASSWORD], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_until(lambda: phone.poll() is None and _online(lab, agent["ext"]), 20,
                   "the lab phone registered")
        token = server.token("dan")
        body = server.post("/api/v1/makeCall/", token, {
            "idCampaign": world.campaigns["manual"], "idAgent": agent["agent_id"],
            "phone": "5552000"})
        assert body["status"] == "OK", body
        seen = {}

        def bridged():
            seen["call"] = server.get(f"/api/v1/calls/{body['callId']}/", token)
            return seen["call"]["state"] in ("bridged", "ended", "failed")
        wait_until(bridged, 10, "the call answered by the lab phone")
        assert seen["call"]["state"] == "bridged", seen["call"]
        assert server.post("/api/v1/hangupCall/", token) == {"status": "OK"}
    finally:
        if phone.poll() is None:
            os.killpg(phone.pid, signal.SIGINT)  # Ctrl-C
        output = phone.communicate(timeout=20)[0]
    assert phone.returncode == 0, output
    assert f"phone {agent['ext']} (dan) registered" in output, output
    assert f"phone {agent['ext']} stopped" in output, output
    lab.wait_endpoint_state(agent["ext"], "offline", 5)
    wait_until(lambda: not lab.ari.channels() and not lab.ari.bridges(), 5, "nothing left")


def test_lab_phone_says_what_is_wrong_when_no_server_answers(lab):
    env = dict(os.environ, OML_API="http://127.0.0.1:9", SIP_PORT=str(lab.sip_port))
    started = time.monotonic()
    done = subprocess.run([LAB_SH, "phone", "1001"], env=env, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 1
    assert "no server answers at http://127.0.0.1:9" in done.stderr and "Traceback" not in done.stderr
    assert time.monotonic() - started < 15
