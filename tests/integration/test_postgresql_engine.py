"""The engine on PostgreSQL against the real Asterisk.

The rest of the integration suite runs the server on SQLite; on PostgreSQL the engine takes
other paths: each call step, a call's end and makeCall's write as one prepared statement, the
device-state mirror's prepared read and writes, the pool handing out the connection given back
last. Here a server of its own (its own database, Stasis app and node) places a click-to-call
to the SIPp trunk after a periodic sweep has refreshed presence, ends it, and the agent's phone
then unregisters: every row, leg and mirror as on SQLite, nothing left in Asterisk.

Runs when PostgreSQL answers (OML_IT_PG_URL, set by `make test`; else the local default).
"""
from __future__ import annotations

import os
import time
import uuid

import pytest

from conftest import Server, _provision
from lab import wait_until
from test_engine_calls import Agent, assert_nothing_left, device_state, phones  # noqa: F401

pytestmark = pytest.mark.integration

ADMIN_URL = os.environ.get("OML_IT_PG_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
EXTENSION = "1951"   # not one of the SQLite world's agents (the same Asterisk serves both)


def _admin():
    import psycopg2
    try:
        conn = psycopg2.connect(ADMIN_URL, connect_timeout=3)
    except psycopg2.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable ({exc.__class__.__name__})")
    conn.autocommit = True
    return conn


@pytest.fixture(scope="module")
def pg(lab, trunk, workdir):
    """A throw-away database with the suite's world, and a server (API + engine) on it."""
    import psycopg2
    admin = _admin()
    name = f"oml_it_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    server = None
    try:
        world = _provision(url.replace("postgresql://", "postgresql+psycopg2://", 1))
        ana = world.agents["ana"]
        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            cur.execute("UPDATE agents SET sip_extension = %s WHERE id = %s",
                        (EXTENSION, ana["agent_id"]))
        ana["ext"] = EXTENSION
        server = Server(lab, url, workdir, name="pg-server")
        server.env.update(ARI_APP=lab.app + "-pg", ASTERISK_NODE="pg")
        server.start()
        yield server, world, url
    finally:
        if server is not None:
            server.stop()
        lab.clean()
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            cur.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.close()


def _query(url, sql, *args):
    import psycopg2
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


def test_a_call_after_a_sweep_on_postgresql_ends_clean_and_presence_follows(pg, lab, phones):  # noqa: F811
    server, world, url = pg
    ana = Agent(server, lab, world.agents["ana"])
    ana.register(phones["answer"])
    assert ana.session("login") == {"status": "OK"}
    wait_until(lambda: device_state(lab, EXTENSION) == "NOT_INUSE", 3, "NOT_INUSE after login")
    # Past one periodic sweep (its presence refresh) before the call: the endpoint events of
    # the call then repeat the state the refresh listed.
    time.sleep(float(server.env["ENGINE_SWEEP_SECONDS"]) + 0.5)

    call = ana.make_call(world.campaigns["manual"], "5559001")
    assert call["status"] == "OK", call
    bridged = ana.wait_call(call["callId"], "bridged", 10)
    assert bridged["state"] == "bridged"
    wait_until(lambda: device_state(lab, EXTENSION) == "INUSE", 3, "INUSE on the call")
    assert ana.hangup() == {"status": "OK"}
    ended = ana.wait_call(call["callId"], ("ended", "failed"), 5)
    assert (ended["state"], ended["reason"]) == ("ended", "hangup_requested")
    assert_nothing_left(lab)
    wait_until(lambda: device_state(lab, EXTENSION) == "NOT_INUSE", 3, "NOT_INUSE after it")

    legs = _query(url, "SELECT role, resource, state FROM call_legs WHERE call_id = %s "
                       "ORDER BY role", call["callId"])
    assert legs == [("agent", "channel", "gone"), ("contact", "channel", "gone"),
                    ("main", "bridge", "gone")]
    events = [t for (t,) in _query(url, "SELECT type FROM events WHERE call_id = %s ORDER BY id",
                                   call["callId"])]
    assert events == ["call.requested", "call.agent_ringing", "call.answered",
                      "call.contact_ringing", "call.bridged", "call.ended"]
    assert _query(url, "SELECT on_call, online FROM agent_sessions WHERE agent_id = %s",
                  ana.agent_id) == [(False, True)]

    # A registration lost after the sweep is still applied (it differs from what was listed).
    ana.register(phones["answer"], expires=0)
    wait_until(lambda: _query(url, "SELECT online FROM agent_sessions WHERE agent_id = %s",
                              ana.agent_id) == [(False,)], 3, "offline after un-REGISTER")
    wait_until(lambda: device_state(lab, EXTENSION) == "UNAVAILABLE", 3, "UNAVAILABLE")
