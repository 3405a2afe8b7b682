"""Split deployment with the engine away: an API-only worker (`oml-server run --no-engine`) and
one `oml-server engine` on their own Stasis app, the engine stopped while calls are bridged.

The worker must know from the engine's heartbeat that no engine runs (health says so, makeCall
is refused at once instead of ringing an agent into an app nobody listens to), and a call whose
contact hung up during the outage must end (contact_hangup, the agent's leg hung up) when the
engine is back, leaving the agent free to call again.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from conftest import REPO, Server
from lab import SippPeer, wait_until
from test_engine_calls import Agent, assert_nothing_left

pytestmark = pytest.mark.integration


@pytest.fixture
def split(lab, trunk, world, database_url, workdir):
    app = lab.app + "-split"
    api = Server(lab, database_url, workdir, name="split-api", command=("run", "--no-engine"))
    for proc in (api,):
        # Its own node: the session's server runs an engine beside it on the same database, and
        # its heartbeat (and sweep) for node "local" must not stand in for the stopped one.
        proc.env.update(ARI_APP=app, ASTERISK_NODE="split", ENGINE_HEARTBEAT_SECONDS="1",
                        ENGINE_SWEEP_SECONDS="30",
                        SWEEP_GRACE_SECONDS="1")  # the call is seconds old when the engine is back
    engine = {"env": dict(api.env), "proc": None}
    log = open(os.path.join(workdir, "split-engine.log"), "a")

    def start_engine():
        engine["proc"] = subprocess.Popen(
            [os.path.join(REPO, ".venv", "bin", "oml-server"), "engine"], env=engine["env"],
            cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    def stop_engine():
        proc = engine["proc"]
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)  # no goodbye heartbeat: the beats just stop
            proc.wait(timeout=10)
    start_engine()
    api.start()  # waits for health "ok": the engine's heartbeat reached the worker
    yield api, start_engine, stop_engine
    stop_engine()
    api.stop()
    log.close()
    lab.clean()  # a failed test's bridged call must not fail the tests after it


def health(api):
    return api.http.get(api.url + "/api/v1/health/", timeout=5).json()


def test_engine_away_is_known_and_its_calls_are_settled_when_it_is_back(split, world, lab):
    api, start_engine, stop_engine = split
    hal = Agent(api, lab, world.agents["hal"])
    phone = SippPeer("agent_answer.xml").start()
    try:
        hal.register(phone)
        body = hal.make_call(world.campaigns["manual"], "5559100")
        assert body["status"] == "OK", body
        call = hal.wait_call(body["callId"], "bridged", 10)

        stop_engine()
        wait_until(lambda: health(api)["ari"] == "no_engine", 6, "worker noticing the engine gone")
        assert health(api)["status"] == "degraded"
        t0 = time.monotonic()
        gus = Agent(api, lab, world.agents["gus"])  # hal is on a call: another agent asks
        refused = gus.make_call(world.campaigns["manual"], "5559101", lang="en")
        assert time.monotonic() - t0 < 1.0
        assert refused == {"status": "ERROR", "message": "Error when executing the call",
                           "errors": ["The telephony server is not reachable."]}
        lab.ari.hangup(call["contact_channel_id"])  # the contact hangs up: nobody listens
        assert hal.call(call["id"])["state"] == "bridged"

        start_engine()
        ended = hal.wait_call(call["id"], ("ended", "failed"), 10)
        assert (ended["state"], ended["reason"]) == ("ended", "contact_hangup"), ended
        assert_nothing_left(lab)  # the agent's leg was hung up and the bridge destroyed
        wait_until(lambda: health(api)["ari"] == "ok", 6, "engine heartbeat back")
        again = hal.make_call(world.campaigns["manual"], "5559102")
        assert again["status"] == "OK", again
        hal.wait_call(again["callId"], "bridged", 10)
        assert hal.hangup() == {"status": "OK"}
        assert_nothing_left(lab)
    finally:
        phone.stop()
