"""Calls of any length: click-to-call, inbound and agent-dialled calls held bridged and silent
(no ARI events) longer than the engine keeps a call's worker, then ended from either side.
The engine must find each call again from its rows (a hang-up of an Asterisk-named channel
included: the inbound caller, the agent's own phone), end it with the right reason, hang up
the other leg within 2 s and leave nothing in Asterisk.

The suite holds the calls OML_LONG_CALL_SECONDS (default 3 s) with the server's worker idle
limit at 2 s; `make long-calls` holds them 11 minutes with the production idle limit (600 s).
"""
from __future__ import annotations

import os
import sqlite3
import time

import pytest

from lab import SippPeer, wait_until
from test_engine_calls import Agent, agents, assert_nothing_left, phones  # noqa: F401

pytestmark = pytest.mark.integration

HOLD = float(os.environ.get("OML_LONG_CALL_SECONDS", "3"))


def rows(database_url, sql, *args):
    with sqlite3.connect(database_url[len("sqlite:///"):], timeout=5) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(sql, args).fetchall()]


def wait_row(database_url, kind, number, states=("bridged",), timeout=10.0):
    found = {}

    def there():
        hits = rows(database_url, "SELECT * FROM calls WHERE kind = ? AND number = ? "
                    "ORDER BY created_at DESC LIMIT 1", kind, number)
        found["row"] = hits[0] if hits else None
        return bool(hits) and hits[0]["state"] in states
    try:
        wait_until(there, timeout, f"{kind} call to {number} in {states}")
    except TimeoutError:
        pytest.fail(f"{kind} call never reached {states}: {found.get('row')}")
    return found["row"]


def uac(scenario, lab, service, workdir, name, extra=()):
    log_dir = os.path.join(workdir, name)
    os.makedirs(log_dir, exist_ok=True)
    return SippPeer(scenario, remote=f"127.0.0.1:{lab.sip_port}", log_dir=log_dir,
                    extra_args=["-s", service, "-m", "1", "-trace_logs",
                                "-timeout", f"{int(HOLD) + 60}s", "-timeout_error", *extra]
                    ).start(settle=0)


@pytest.mark.parametrize("side", ["agent", "customer"])
def test_quiet_calls_outlive_their_workers_and_end_from_either_side(
        agents, world, lab, phones, workdir, database_url, side):  # noqa: F811
    ana, eva, dan = agents["ana"], agents["eva"], agents["dan"]
    ana.register(phones["answer"])
    eva.register(phones["answer"])
    for other in ("fay", "gus", "hal"):  # only eva takes the inbound call
        agents[other].session("logout")
    assert eva.session("login") == {"status": "OK"}
    peers = []
    try:
        c2c = ana.make_call(world.campaigns["manual"], f"55{side == 'agent':d}1100")
        assert c2c["status"] == "OK", c2c
        ana.wait_call(c2c["callId"], "bridged", 10)
        peers.append(uac("caller_uac.xml", lab, str(world.campaigns["inbound"]), workdir,
                         f"long-caller-{side}"))
        sip_user, sip_password = dan.credentials()
        number = f"55{side == 'agent':d}1300"
        peers.append(uac("agent_dial_uac.xml", lab, number, workdir, f"long-dial-{side}",
                         ["-key", "ext", dan.ext, "-au", sip_user, "-ap", sip_password]))
        calls = [rows(database_url, "SELECT * FROM calls WHERE id = ?", c2c["callId"])[0],
                 wait_row(database_url, "inbound", "trunk"),
                 wait_row(database_url, "outbound", number)]
        assert len(lab.ari.bridges()) == 3

        time.sleep(HOLD)  # nothing happens: no events; every worker has idled out

        for call in calls:
            assert rows(database_url, "SELECT state FROM calls WHERE id = ?",
                        call["id"])[0]["state"] == "bridged", call
        hung_at = time.monotonic()
        for call in calls:
            lab.ari.hangup(call["agent_channel_id" if side == "agent"
                                else "contact_channel_id"])
        for call in calls:
            other = call["contact_channel_id" if side == "agent" else "agent_channel_id"]
            wait_until(lambda: other not in {c["id"] for c in lab.ari.channels()}, 2,
                       f"{call['kind']}: the other leg hung up")
            final = wait_row(database_url, call["kind"], call["number"], ("ended", "failed"), 2)
            assert (final["state"], final["reason"]) == \
                ("ended", "agent_hangup" if side == "agent" else "contact_hangup"), final
        assert time.monotonic() - hung_at < 2.5
        assert_nothing_left(lab)
        leftover = rows(database_url, "SELECT id, state FROM calls WHERE state NOT IN "
                        "('ended', 'failed')")
        assert leftover == []
    finally:
        for peer in peers:
            peer.stop()
        eva.session("logout")
