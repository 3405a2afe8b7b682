"""Who hears whom when a supervisor listens in, proven with real audio through the lab Asterisk.

The caller (SIPp UAC into an inbound campaign) streams 500 Hz, the agent's phone 900 Hz, the
supervisor's phone 1400 Hz. The supervisor acts through `action_on_agent` (the real server);
its phone rings, answers and hangs up by itself after a few seconds. For each mode the RTP
Asterisk sends to each phone is captured on the loopback and each tone's level measured:

    spy      supervisor hears caller + agent; agent and caller do not hear the supervisor
    whisper  supervisor hears both; the agent hears the supervisor, the caller does not
    barge    everybody hears everybody
    take     the supervisor and the caller hear each other; the agent is gone

Run: ``.venv/bin/python -m pytest -m integration tests/integration/test_supervision_audio.py -s``
(prints the level table; needs root for the raw socket).
"""
from __future__ import annotations

import contextlib
import os
import time

import pytest

from conftest import PASSWORD
from lab import SIPP_DIR, SippPeer, sipp_register, wait_until
from test_engine_calls import Agent, assert_nothing_left
from tones import RtpCapture, tone_levels, write_tone_pcap

pytestmark = pytest.mark.integration

CALLER_HZ, AGENT_HZ, SUPERVISOR_HZ = 500, 900, 1400
TONES = (CALLER_HZ, AGENT_HZ, SUPERVISOR_HZ)
HEARD, SILENT = 1500.0, 300.0      # the tones are sent at amplitude 8000
SUPERVISOR_EXT = "1901"
LISTEN_SECONDS = 5                  # the supervisor's phone hangs up after this


def _scenario(workdir, name, pcap):
    text = open(os.path.join(SIPP_DIR, name), encoding="latin-1").read()
    path = os.path.join(workdir, f"tone-{os.path.basename(pcap)}-{name}")
    with open(path, "w", encoding="latin-1") as out:
        out.write(text.replace("/usr/share/sip-tester/g711a.pcap", pcap))
    return path


@pytest.fixture(scope="module")
def pcaps(workdir):
    paths = {}
    for hz in TONES:
        paths[hz] = os.path.join(workdir, f"tone{hz}.pcap")
        write_tone_pcap(paths[hz], hz, 60)
    return paths


@pytest.fixture(scope="module")
def supervisor(database_url, world, server):
    """Sol, a supervisor of the `lonely` campaign (agent ivy) with her own phone."""
    from oml_server import create_app, secrets_file
    from oml_server.extensions import db
    from oml_server.models import Campaign
    from oml_server.services import users
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "ARI_ENABLED": False,
                      "TESTING": True, **secrets_file.generate()})
    with app.app_context():
        sol = users.create_user("sol", PASSWORD, "Supervisor", first_name="Sol")
        db.session.flush()
        users.ensure_supervisor_phone(sol, SUPERVISOR_EXT)
        lonely = db.session.get(Campaign, world.campaigns["lonely"])
        lonely.supervisors.append(sol)
        db.session.commit()
    return server.token("sol")


@pytest.fixture(scope="module")
def agents(server, lab, world):
    return {name: Agent(server, lab, info) for name, info in world.agents.items()}


def _unregister(lab, agent, phone):
    if agent.creds is not None:
        sipp_register([(agent.ext, *agent.creds)], lab.sip_port, phone.port, expires=0)
        lab.wait_endpoint_state(agent.ext, "offline", 3)


def _supervisor_channel(lab):
    return [c for c in lab.ari.channels()
            if c["name"].startswith(f"PJSIP/{SUPERVISOR_EXT}-") and c["state"] == "Up"]


def _in_a_bridge(lab, channel_id):
    return any(channel_id in b["channels"] for b in lab.ari.bridges())


def test_spy_whisper_barge_and_take_call_with_real_audio(agents, world, lab, server, supervisor,
                                                         pcaps, workdir, database_url):
    """Also recorded: one file for the whole call, across the supervisor's barge and take-call
    (both join the call's bridge: it never empties), the supervisor's voice in it."""
    ivy = agents["ivy"]
    agent_phone = SippPeer(_scenario(workdir, "agent_answer.xml", pcaps[AGENT_HZ])).start()
    sup_phone = SippPeer(_scenario(workdir, "agent_answer_hangup.xml", pcaps[SUPERVISOR_HZ]),
                         hangup_ms=LISTEN_SECONDS * 1000).start()
    caller = SippPeer(_scenario(workdir, "caller_uac.xml", pcaps[CALLER_HZ]),
                      remote=f"127.0.0.1:{lab.sip_port}",
                      extra_args=["-s", str(world.campaigns["lonely"]), "-m", "1",
                                  "-timeout", "90s", "-timeout_error"])
    ports = {"caller": caller.media_port, "agent": agent_phone.media_port,
             "supervisor": sup_phone.media_port}
    capture = RtpCapture(ports.values()).start()
    heard, creds = {}, {}
    with _recording(database_url, world):
        try:
            ivy.register(agent_phone)
            assert ivy.session("login") == {"status": "OK"}
            creds = server.get("/api/v1/sip/credentials/agent/", supervisor)
            assert creds["status"] == "OK", creds
            sipp_register([(SUPERVISOR_EXT, creds["sip_user"], creds["sip_password"])],
                          lab.sip_port, sup_phone.port)
            lab.wait_endpoint_state(SUPERVISOR_EXT, "online", 3)
            caller.start(settle=0)

            def on_call():
                entry = [a for a in server.get("/api/v1/supervision/agents/", supervisor)
                         if a["id"] == ivy.agent_id]
                return entry and entry[0]["status"] == "ONCALL" and entry[0]
            wait_until(on_call, 8, "ivy on the inbound call")
            call_id = on_call()["call_id"]
            started = time.monotonic()

            for action, mode in (("CHANSPY", "spy"), ("CHANSPYWISHPER", "whisper"),
                                 ("CHANCONFER", "barge"), ("CHANTAKECALL", "take")):
                answer = server.post(f"/api/v1/supervision/action_on_agent/{ivy.agent_id}/",
                                     supervisor, {"accion": action})
                assert answer == {"status": "OK"}, (action, answer)
                wait_until(lambda: _supervisor_channel(lab) and
                           _in_a_bridge(lab, _supervisor_channel(lab)[0]["id"]), 6,
                           f"supervisor's phone in a bridge ({mode})")
                if mode == "take":
                    wait_until(lambda: not [c for c in lab.ari.channels()
                                            if c["name"].startswith(f"PJSIP/{ivy.ext}-")], 4,
                               "the agent's leg gone")
                start = time.monotonic() + 0.6   # media settles
                time.sleep(2.4)
                end = time.monotonic()
                heard[mode] = {who: tone_levels(capture.samples(port, start, end), TONES)
                               for who, port in ports.items()}
                wait_until(lambda: not _supervisor_channel(lab), LISTEN_SECONDS + 4,
                           f"supervisor hung up ({mode})")
            ended = time.monotonic()
            wait_until(lambda: not caller.alive(), 5, "the caller got BYE after the take-call")
            call = ivy.call(call_id)
            assert (call["state"], call["reason"]) == ("ended", "agent_hangup"), call
            assert_nothing_left(lab)
            wait_until(lambda: any(e["type"] == "recording.ready"
                                   for e in ivy.call(call_id)["events"]), 5, "recording.ready")
            record = server.get(f"/api/v1/call_record/{call_id}/", supervisor)
            response = server.http.get(server.url + record["record"], timeout=10,
                                       headers={"Authorization": f"Bearer {supervisor}"})
            rate, seconds, samples = _wav_samples(response.content,
                                                  os.path.join(workdir, "recording-supervised.wav"))
            whole = tone_levels(samples, TONES)
            print(f"\nrecording: {seconds:.2f} s (call {ended - started:.2f} s seen by the test); "
                  f"whole {whole}")
            assert ended - started - 1.5 <= seconds <= ended - started + 2.0
            assert all(whole[hz] > SILENT for hz in TONES)
        finally:
            capture.stop()
            ivy.session("logout")
            _unregister(lab, ivy, agent_phone)  # other modules expect ivy's phone offline
            if creds.get("status") == "OK":
                sipp_register([(SUPERVISOR_EXT, creds["sip_user"], creds["sip_password"])],
                              lab.sip_port, sup_phone.port, expires=0)
            for peer in (caller, agent_phone, sup_phone):
                peer.stop()

    print("\nlevels (amplitude of each tone in what each phone received; sent at 8000):")
    for mode, by_phone in heard.items():
        for who, levels in by_phone.items():
            print(f"  {mode:8} {who:10} " + "  ".join(f"{hz} Hz {levels[hz]:7.0f}" for hz in TONES))

    def hears(mode, who, hz):
        return heard[mode][who][hz] > HEARD

    def silent(mode, who, hz):
        return heard[mode][who][hz] < SILENT

    for mode in ("spy", "whisper", "barge"):
        assert hears(mode, "supervisor", CALLER_HZ) and hears(mode, "supervisor", AGENT_HZ), mode
        assert hears(mode, "agent", CALLER_HZ) and hears(mode, "caller", AGENT_HZ), mode
    assert silent("spy", "agent", SUPERVISOR_HZ) and silent("spy", "caller", SUPERVISOR_HZ)
    assert hears("whisper", "agent", SUPERVISOR_HZ) and silent("whisper", "caller", SUPERVISOR_HZ)
    assert hears("barge", "agent", SUPERVISOR_HZ) and hears("barge", "caller", SUPERVISOR_HZ)
    assert hears("take", "supervisor", CALLER_HZ) and silent("take", "supervisor", AGENT_HZ)
    assert hears("take", "caller", SUPERVISOR_HZ) and silent("take", "caller", AGENT_HZ)
    assert heard["take"]["agent"] == {hz: 0.0 for hz in TONES} or \
        all(silent("take", "agent", hz) for hz in TONES)


@contextlib.contextmanager
def _recording(database_url, world):
    """The `lonely` campaign records while the block runs."""
    from oml_server import create_app, secrets_file
    from oml_server.extensions import db
    from oml_server.models import Campaign
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "ARI_ENABLED": False,
                      "TESTING": True, **secrets_file.generate()})

    def record(on):
        with app.app_context():
            db.session.get(Campaign, world.campaigns["lonely"]).record = on
            db.session.commit()
    record(True)
    try:
        yield
    finally:
        record(False)


def _wav_samples(content, path):
    """(rate, seconds, 16-bit samples) of a downloaded WAV file."""
    import wave
    with open(path, "wb") as out:
        out.write(content)
    with wave.open(path) as audio:
        rate, frames = audio.getframerate(), audio.readframes(audio.getnframes())
        width, seconds = audio.getsampwidth(), audio.getnframes() / audio.getframerate()
    return rate, seconds, [int.from_bytes(frames[i:i + 2], "little", signed=True)
                           for i in range(0, len(frames), width)]


def test_a_recording_campaigns_call_is_recorded_with_both_parties(agents, world, lab, server,
                                                                  supervisor, pcaps, workdir,
                                                                  database_url):
    """`record: true`: the file is real audio of the whole bridged call, both tones in it,
    served to the campaign's supervisor with Range, and `recording.ready` is a call event."""
    import sqlite3

    ivy = agents["ivy"]
    agent_phone = SippPeer(_scenario(workdir, "agent_answer.xml", pcaps[AGENT_HZ])).start()
    caller = SippPeer(_scenario(workdir, "caller_uac.xml", pcaps[CALLER_HZ]),
                      remote=f"127.0.0.1:{lab.sip_port}",
                      extra_args=["-s", str(world.campaigns["lonely"]), "-m", "1",
                                  "-timeout", "30s", "-timeout_error"])
    try:
        with _recording(database_url, world):
            ivy.register(agent_phone)
            assert ivy.session("login") == {"status": "OK"}
            caller.start(settle=0)
            call_id = _on_call(server, supervisor, ivy)
            time.sleep(4)
            assert ivy.hangup() == {"status": "OK"}
            wait_until(lambda: not caller.alive(), 5, "the caller got BYE")
            path = os.path.join(database_url[len("sqlite:///"):])

            def ready():
                with sqlite3.connect(path, timeout=5) as conn:
                    return conn.execute("SELECT data FROM events WHERE call_id = ? AND type = "
                                        "'recording.ready'", (call_id,)).fetchone()
            wait_until(ready, 5, "recording.ready")
            record = server.get(f"/api/v1/call_record/{call_id}/", supervisor)
            assert record["record"].startswith("/api/v1/grabacion/archivo/?filename=/")
            assert record["record"].endswith(f"/{call_id}.wav")
            response = server.http.get(server.url + record["record"], timeout=10,
                                       headers={"Authorization": f"Bearer {supervisor}"})
            assert response.status_code == 200 and response.headers["Content-Type"] == "audio/wav"
            part = server.http.get(server.url + record["record"], timeout=10,
                                   headers={"Authorization": f"Bearer {supervisor}",
                                            "Range": "bytes=0-3"})
            assert (part.status_code, part.content) == (206, b"RIFF")
            rate, seconds, samples = _wav_samples(response.content,
                                                  os.path.join(workdir, "recording.wav"))
            middle = samples[rate:rate * 3]  # one to three seconds in
            levels = tone_levels(middle, TONES)
            print(f"\nrecording: {seconds:.2f} s at {rate} Hz; levels {levels}")
            assert rate == 8000 and 3.5 <= seconds <= 6.0
            assert levels[CALLER_HZ] > HEARD and levels[AGENT_HZ] > HEARD
            assert levels[SUPERVISOR_HZ] < SILENT
            assert_nothing_left(lab)
    finally:
        ivy.session("logout")
        _unregister(lab, ivy, agent_phone)
        for peer in (caller, agent_phone):
            peer.stop()


def _on_call(server, supervisor, agent):
    """The call id once supervision shows `agent` ONCALL."""
    def on_call():
        entry = [a for a in server.get("/api/v1/supervision/agents/", supervisor)
                 if a["id"] == agent.agent_id and a["status"] == "ONCALL"]
        return entry and entry[0]
    wait_until(on_call, 8, f"{agent.name} on the inbound call")
    return on_call()["call_id"]


TARGET_HZ = 1900                    # the agent a held call is transferred to


def test_a_recorded_call_held_and_transferred_is_one_file_with_all_three_parties(
        agents, world, lab, server, supervisor, pcaps, workdir, database_url):
    """`record: true` across a hold and a blind transfer: ONE file from bridged to the end.
    ivy (900 Hz) talks with the caller (500 Hz), holds, takes the caller back and transfers
    the call to dan (1900 Hz), who talks with the caller and hangs up. The file's length is
    the whole call's; its start has the caller and ivy, its end the caller and dan (not ivy),
    and all three tones are in it. Before the engine kept the waiting caller in the call's
    bridge, the file ended at the transfer (4.8 s of an 8 s call, no 1900 Hz)."""
    def hold_then_blind_transfer(call):
        call.post("/api/v1/call/hold/", {"action": "hold"})
        call.happened("call.held")
        time.sleep(1.5)
        call.post("/api/v1/call/hold/", {"action": "unhold"})
        call.happened("call.unheld")
        time.sleep(1)
        call.post("/api/v1/transfer/blind-agent/", {"target_agent_id": call.dan.agent_id})
    _recorded_transfer(agents, world, lab, server, supervisor, pcaps, workdir, database_url,
                       hold_then_blind_transfer)


def test_a_recorded_call_consulted_and_transferred_is_one_file_with_all_three_parties(
        agents, world, lab, server, supervisor, pcaps, workdir, database_url):
    """The same across a consultative transfer: ivy consults dan (the caller waits with
    music), they talk, ivy completes, dan talks with the caller and hangs up. One file as long
    as the call, all three tones in it. Before the waiting caller stayed in the call's bridge
    the file ended at the consultation's start (no 1900 Hz, a few seconds of a 10 s call)."""
    def consult_then_complete(call):
        call.post("/api/v1/agent/transfer/consult/start/", {"target_agent_id": call.dan.agent_id})
        call.happened("call.consult_answered")
        time.sleep(2)
        call.post("/api/v1/agent/transfer/consult/complete/", {})
    _recorded_transfer(agents, world, lab, server, supervisor, pcaps, workdir, database_url,
                       consult_then_complete)


def test_a_recorded_three_way_call_the_agent_leaves_is_one_file_with_all_three_parties(
        agents, world, lab, server, supervisor, pcaps, workdir, database_url):
    """The same when ivy adds dan (3way), the three talk, then ivy hangs up: the call's
    bridge never empties, one file, all three tones."""
    def three_way_then_the_agent_leaves(call):
        call.post("/api/v1/transfer/3way/", {"endpoint": call.dan.ext})
        call.happened("call.third_party_joined")
        time.sleep(2)
        [agent_leg] = [leg["channel"] for leg in call.ivy.call(call.call_id)["legs"]
                       if leg["role"] == "agent" and leg["resource"] == "channel"
                       and leg["state"] == "live"]
        lab.ari.hangup(agent_leg)  # ivy's phone hangs up
    _recorded_transfer(agents, world, lab, server, supervisor, pcaps, workdir, database_url,
                       three_way_then_the_agent_leaves, handed="call.agent_left")


class _LiveCall:
    """The call under test as the hand-over step sees it: commands as ivy, events awaited."""

    def __init__(self, server, ivy, dan, call_id):
        self.server, self.ivy, self.dan, self.call_id = server, ivy, dan, call_id

    def post(self, path, body):
        response = self.server.http.post(self.server.url + path, timeout=10,
                                         json=dict(body, call_id=self.call_id),
                                         headers={"Authorization": f"Bearer {self.ivy.token}"})
        assert response.status_code == 202, (path, response.status_code, response.text)

    def happened(self, kind):
        wait_until(lambda: any(e["type"] == kind for e in self.ivy.call(self.call_id)["events"]),
                   8, kind)


def _recorded_transfer(agents, world, lab, server, supervisor, pcaps, workdir, database_url,
                       hand_over, handed="call.transferred"):
    """ivy talks with the caller for 2 s, `hand_over(call)` moves the call to dan, dan talks
    with the caller for 3 s and hangs up; the one recording is checked (see the tests)."""
    target_pcap = os.path.join(workdir, f"tone{TARGET_HZ}.pcap")
    write_tone_pcap(target_pcap, TARGET_HZ, 60)
    ivy, dan = agents["ivy"], agents["dan"]
    ivy_phone = SippPeer(_scenario(workdir, "agent_answer.xml", pcaps[AGENT_HZ])).start()
    dan_phone = SippPeer(_scenario(workdir, "agent_answer.xml", target_pcap)).start()
    caller = SippPeer(_scenario(workdir, "caller_uac.xml", pcaps[CALLER_HZ]),
                      remote=f"127.0.0.1:{lab.sip_port}",
                      extra_args=["-s", str(world.campaigns["lonely"]), "-m", "1",
                                  "-timeout", "60s", "-timeout_error"])
    try:
        with _recording(database_url, world):
            for agent, phone in ((ivy, ivy_phone), (dan, dan_phone)):
                agent.register(phone)
                assert agent.session("login") == {"status": "OK"}
            caller.start(settle=0)
            call = _LiveCall(server, ivy, dan, _on_call(server, supervisor, ivy))
            call_id = call.call_id
            started = time.monotonic()
            time.sleep(2)
            hand_over(call)
            call.happened(handed)
            time.sleep(3)
            assert dan.hangup() == {"status": "OK"}
            ended = time.monotonic()
            wait_until(lambda: not caller.alive(), 5, "the caller got BYE")
            call.happened("recording.ready")
            assert sum(e["type"] == "recording.ready" for e in ivy.call(call_id)["events"]) == 1
            record = server.get(f"/api/v1/call_record/{call_id}/", supervisor)
            response = server.http.get(server.url + record["record"], timeout=10,
                                       headers={"Authorization": f"Bearer {supervisor}"})
            assert response.status_code == 200
            rate, seconds, samples = _wav_samples(
                response.content, os.path.join(workdir, f"recording-{hand_over.__name__}.wav"))
            tones = (CALLER_HZ, AGENT_HZ, TARGET_HZ)
            first = tone_levels(samples[rate // 2:rate * 3 // 2], tones)
            last = tone_levels(samples[-rate * 2:-rate // 2], tones)
            whole = tone_levels(samples, tones)
            print(f"\nrecording: {seconds:.2f} s (call {ended - started:.2f} s seen by the "
                  f"test); first second {first}; last seconds {last}; whole {whole}")
            # One file covering bridged → end (the test saw ONCALL a moment after the bridge).
            assert ended - started - 1.0 <= seconds <= ended - started + 2.0
            assert first[CALLER_HZ] > HEARD and first[AGENT_HZ] > HEARD
            assert first[TARGET_HZ] < SILENT
            assert last[CALLER_HZ] > HEARD and last[TARGET_HZ] > HEARD
            assert last[AGENT_HZ] < SILENT
            assert all(whole[hz] > SILENT for hz in tones)
            assert_nothing_left(lab)
    finally:
        for agent, phone in ((ivy, ivy_phone), (dan, dan_phone)):
            agent.session("logout")
            _unregister(lab, agent, phone)
        for peer in (caller, ivy_phone, dan_phone):
            peer.stop()
