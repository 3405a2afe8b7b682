"""Smoke tests: the lab Asterisk + SIPp really do what the engine will rely on.

Run: ``.venv/bin/python -m pytest -m integration tests/integration -v``
(skipped when asterisk/sipp are not installed: ``asterisk-config/lab.sh install``).
"""
from __future__ import annotations

import os
import sys
import time
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lab import (AriError, AriNotFound, EventCollector, Lab, SippPeer,  # noqa: E402
                 ephemeral_credentials, require_lab)

pytestmark = pytest.mark.integration

SECRET = "lab-ephemeral-secret"


@pytest.fixture(scope="module")
def lab():
    require_lab()
    instance = Lab(app=f"oml-smoke-{os.getpid()}")
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def trunk(lab):
    peer = SippPeer("trunk_uas.xml", port=lab.trunk_port).start()
    yield peer
    peer.stop()


@pytest.fixture(scope="module")
def agent_phone(lab):
    """One auto-answering UAS; every registered test agent's contact points at it."""
    peer = SippPeer("agent_answer.xml").start()
    yield peer
    peer.stop()


@pytest.fixture()
def events(lab):
    with EventCollector(lab) as collector:
        yield collector


@pytest.fixture(autouse=True)
def clean_asterisk(lab):
    lab.clean()
    yield
    # Tests assert leftovers themselves; this only keeps a failed test from poisoning the next.
    lab.clean()


def make_agent(lab, ext: str, phone: SippPeer) -> tuple[str, str]:
    username, password = ephemeral_credentials(ext, SECRET, ttl=3600)
    lab.push_agent(ext, username, password)
    lab.register([(ext, username, password)], phone.port)
    lab.wait_endpoint_state(ext, "online", timeout=3)
    return username, password


def click_to_call(lab, events, ext: str, number: str, timeout: float = 10.0):
    """The engine's click-to-call dance over raw ARI. Returns (agent_id, contact_id,
    bridge_id, seconds from originate request to both legs in the bridge)."""
    call_id = uuid.uuid4().hex[:12]
    agent_id, contact_id, bridge_id = f"{call_id}-agent", f"{call_id}-contact", f"{call_id}-br"
    t0 = time.monotonic()
    lab.ari.originate(f"PJSIP/{ext}", appArgs=f"click2call,{call_id}", channelId=agent_id,
                      callerId=f"{number} <{number}>", timeout=int(timeout))
    start = events.wait_channel("StasisStart", agent_id, timeout)
    assert start["channel"]["state"] == "Up"
    assert start["args"] == ["click2call", call_id]
    lab.ari.bridge_create(bridge_id, type="mixing")
    lab.ari.bridge_add_channel(bridge_id, agent_id)
    lab.ari.channel_create(f"PJSIP/{number}@trunk", appArgs=f"contact,{call_id}",
                           channelId=contact_id)
    events.wait_channel("StasisStart", contact_id, timeout)
    lab.ari.bridge_add_channel(bridge_id, contact_id)
    lab.ari.dial(contact_id, timeout=int(timeout))
    return agent_id, contact_id, bridge_id, t0


def assert_nothing_left(lab, timeout: float = 3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = lab.leftovers()
        if not left["channels"] and not left["bridges"]:
            return
        time.sleep(0.05)
    pytest.fail(f"leftovers in Asterisk: {lab.leftovers()}")


def test_ari_answers(lab):
    info = lab.ari.asterisk_info()
    assert info["system"]["version"].startswith("16.")
    assert lab.ari.asterisk_info(only="status")["status"]["startup_time"]


def test_agent_registers_with_ephemeral_credentials(lab, agent_phone, events):
    ext = "1001"
    username, password = ephemeral_credentials(ext, SECRET, ttl=600)
    assert ":" in username and username.endswith(":" + ext)
    lab.push_agent(ext, username, password)
    assert lab.endpoint_state(ext) == "offline"
    lab.ari.subscribe(f"endpoint:PJSIP/{ext}", app=events.app)

    lab.register([(ext, username, password)], agent_phone.port)
    lab.wait_endpoint_state(ext, "online", timeout=3)
    change = events.wait_for(lambda e: e["type"] == "EndpointStateChange"
                             and e["endpoint"]["resource"] == ext
                             and e["endpoint"]["state"] == "online", 3, "online event")
    assert change["endpoint"]["technology"] == "PJSIP"

    # A wrong password is refused (proves auth is really checked).
    with pytest.raises(RuntimeError):
        lab.register([(ext, username, "wrong")], agent_phone.port)

    lab.register([(ext, username, password)], agent_phone.port, expires=0)
    lab.wait_endpoint_state(ext, "offline", timeout=3)
    lab.delete_agent(ext)
    with pytest.raises(AriNotFound):
        lab.ari.endpoint("PJSIP", ext)


def test_originate_to_unregistered_agent_fails_at_once(lab):
    ext = "1009"
    username, password = ephemeral_credentials(ext, SECRET)
    lab.push_agent(ext, username, password)
    assert lab.endpoint_state(ext) == "offline"
    with pytest.raises(AriError) as err:
        lab.ari.originate(f"PJSIP/{ext}", channelId="unreg-1", timeout=5)
    assert err.value.status == 500
    assert_nothing_left(lab)
    lab.delete_agent(ext)


def test_click_to_call_bridges_both_legs_and_cleans_up(lab, agent_phone, trunk, events):
    ext = "1002"
    make_agent(lab, ext, agent_phone)
    agent_id, contact_id, bridge_id, t0 = click_to_call(lab, events, ext, "5551234")

    events.wait_for(lambda e: e["type"] == "ChannelStateChange"
                    and e["channel"]["id"] == contact_id and e["channel"]["state"] == "Up",
                    10, "contact Up")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        bridge = lab.ari.bridge(bridge_id)
        if set(bridge["channels"]) == {agent_id, contact_id}:
            break
        time.sleep(0.01)
    setup = time.monotonic() - t0
    assert set(bridge["channels"]) == {agent_id, contact_id}
    assert lab.ari.channel(agent_id)["state"] == "Up"
    assert lab.ari.channel(contact_id)["state"] == "Up"
    print(f"click-to-call setup {setup * 1000:.0f} ms")

    # The agent hangs up; inside Stasis the other leg stays up: the engine must end it.
    lab.ari.hangup(agent_id)
    events.wait_channel("StasisEnd", agent_id, 5)
    assert lab.ari.channel(contact_id)["state"] == "Up"
    lab.ari.hangup(contact_id)
    events.wait_channel("StasisEnd", contact_id, 5)
    lab.ari.bridge_destroy(bridge_id)
    with pytest.raises(AriNotFound):  # cleanup of something gone is a 404: counts as done
        lab.ari.bridge_destroy(bridge_id)
    assert_nothing_left(lab)


def test_busy_contact_gives_cause_17(lab, agent_phone, trunk, events):
    ext = "1003"
    make_agent(lab, ext, agent_phone)
    agent_id, contact_id, bridge_id, _ = click_to_call(lab, events, ext, "4865550000")
    destroyed = events.wait_channel("ChannelDestroyed", contact_id, 10)
    assert destroyed["cause"] == 17, destroyed
    # The agent is still up in its bridge: the engine ends the call.
    assert lab.ari.channel(agent_id)["state"] == "Up"
    lab.ari.hangup(agent_id)
    events.wait_channel("StasisEnd", agent_id, 5)
    lab.ari.bridge_destroy(bridge_id)
    assert_nothing_left(lab)


def test_agent_phone_hangs_up_first(lab, trunk, events):
    ext = "1004"
    with SippPeer("agent_answer_hangup.xml", hangup_ms=300) as phone:
        username, password = make_agent(lab, ext, phone)
        agent_id, contact_id, bridge_id, _ = click_to_call(lab, events, ext, "5550004")
        end = events.wait_channel("ChannelDestroyed", agent_id, 10)
        assert end["cause"] == 16  # normal clearing, BYE from the phone
        assert lab.ari.channel(contact_id)["state"] in ("Up", "Ringing", "Ring")
        lab.ari.hangup(contact_id)
        lab.ari.bridge_destroy(bridge_id)
        assert_nothing_left(lab)
        lab.register([(ext, username, password)], phone.port, expires=0)
        lab.wait_endpoint_state(ext, "offline", timeout=3)


def test_device_state_roundtrip(lab, events):
    name = f"Stasis:agent-{uuid.uuid4().hex[:6]}"
    lab.ari.device_state_put(name, "INUSE")
    assert lab.ari.device_state_get(name)["state"] == "INUSE"
    lab.ari.device_state_put(name, "NOT_INUSE")
    assert lab.ari.device_state_get(name)["state"] == "NOT_INUSE"
    lab.ari.device_state_delete(name)
    with pytest.raises(AriError) as err:
        lab.ari.device_state_put("Custom:nope", "INUSE")
    assert err.value.status == 409


def _dialled_by_an_agent(lab, events, number):
    """Send `number` through the [agents] dialplan (as an agent phone dialling it would) and
    return the StasisStart args of the leg that reaches our app, or None within 1.5 s."""
    call_id = uuid.uuid4().hex[:12]
    lab.ari.originate(f"Local/{number}@agents", appArgs=f"probe,{call_id}",
                      channelId=f"{call_id}-probe")
    try:
        event = events.wait_for(lambda e: e.get("type") == "StasisStart"
                                and e.get("args", [None])[0] == "outbound"
                                and e["args"][1:] == [number], 1.5, f"outbound {number}")
        return event["args"]
    except TimeoutError:
        return None
    finally:
        lab.clean()


@pytest.mark.parametrize("number", ["3511234567", "+543511234567", "*72#", "5"])
def test_agents_dialplan_passes_digits_plus_star_hash(lab, events, number):
    assert _dialled_by_an_agent(lab, events, number) == ["outbound", number]


@pytest.mark.parametrize("number", ["3511234567abc", "351-1234567", "351.evil", "+54x"])
def test_agents_dialplan_refuses_any_other_character(lab, events, number):
    """Toll fraud through the dial string: trailing text never reaches the engine."""
    assert _dialled_by_an_agent(lab, events, number) is None


def test_endpoint_subscription_repeats_events_and_the_engine_stream_drops_them(lab, agent_phone):
    """With `endpoint:PJSIP` subscribed (the engine's registrations), Asterisk sends a channel's
    events twice, byte for byte; the event filter keeps the unread types off the wire, and the
    engine's stream (drop_repeats) hands each event over once."""
    from ari_engine.dispatcher import IGNORED_EVENTS
    from ari_engine.supervisor import REPEAT_WINDOW
    from lab import AriEventStream

    app = f"{lab.app}-repeats"
    raw = EventCollector(lab, app)  # no drop: what Asterisk sends
    engine_like = EventCollector(lab, app + "-engine")
    engine_like.stream = AriEventStream(lab.ari_url, lab.user, lab.password, engine_like.app,
                                        drop_repeats=REPEAT_WINDOW)
    with raw, engine_like:
        for name in (raw.app, engine_like.app):
            lab.ari.subscribe("endpoint:PJSIP", app=name)
        lab.ari.filter_events(IGNORED_EVENTS, app=engine_like.app)
        make_agent(lab, "1009", agent_phone)
        ids = {}
        for collector in (raw, engine_like):
            ids[collector.app] = channel = f"{uuid.uuid4().hex[:12]}-agent"
            lab.ari.originate("PJSIP/1009", app=collector.app, channelId=channel, timeout=5)
            collector.wait_channel("StasisStart", channel, 10)
            lab.ari.hangup(channel)
            collector.wait_channel("ChannelDestroyed", channel, 5)
        time.sleep(0.3)  # a late copy would arrive now

    def of(collector, kind):
        return [e for e in collector.events if e.get("type") == kind
                and e.get("channel", {}).get("id") == ids[collector.app]]
    assert len(of(raw, "ChannelDestroyed")) == 2  # the repeat this stream is for
    assert len(of(engine_like, "ChannelDestroyed")) == 1
    assert len(of(engine_like, "StasisStart")) == 1
    assert of(raw, "ChannelVarset") and not of(engine_like, "ChannelVarset")
    assert engine_like.stream.repeats > 0
    assert_nothing_left(lab)
