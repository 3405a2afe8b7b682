"""Helpers for integration tests against a real, private Asterisk and SIPp peers (no tests here).

* :class:`Lab` starts/stops the private Asterisk through ``asterisk-config/lab.sh`` in a temp
  dir on its own ports (so it never collides with a developer's lab on the default ports),
  gives an :class:`AriClient`, pushes agents through ARI dynamic config and cleans leftovers.
* :class:`SippPeer` runs one SIPp process from a scenario in ``tests/integration/sipp/``
  and stops it by PID. :func:`sipp_register` REGISTERs (or un-REGISTERs) agents on behalf of a
  UAS on another port (hence ``rewrite_contact=no`` on the endpoints).
* :class:`EventCollector` reads an app's events in a thread and lets a test wait for one.

Environment: OML_LAB_ARI_PORT (18088), OML_LAB_SIP_PORT (15070), OML_LAB_TRUNK_PORT (15090),
OML_LAB_DIR (a fresh temp dir), OML_LAB_KEEP=1 keeps the dir after stop for post-mortems.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from typing import Callable, Iterable, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SIPP_DIR = os.path.join(HERE, "sipp")
LAB_SH = os.path.join(REPO, "asterisk-config", "lab.sh")

import sys  # noqa: E402

if REPO not in sys.path:
    sys.path.insert(0, REPO)

from ari_engine.ari_client import (AriClient, AriError, AriEventStream,  # noqa: E402
                                   AriNotFound, AriUnavailable)

__all__ = ["Lab", "SippPeer", "EventCollector", "sipp_register", "ephemeral_credentials",
           "free_udp_port", "missing_programs", "AriClient", "AriError", "AriNotFound",
           "AriEventStream", "AriUnavailable"]


def missing_programs() -> list[str]:
    """Programs the lab needs that are not installed (empty list: the lab can run)."""
    return [p for p in ("asterisk", "sipp", "curl") if shutil.which(p) is None]


def require_lab() -> None:
    """Skip the calling test (pytest) with a clear reason when the lab cannot run here."""
    missing = missing_programs()
    if missing:
        import pytest

        pytest.skip(f"lab not installed ({', '.join(missing)} missing): "
                    f"run `asterisk-config/lab.sh install` as root")


_port_lock = threading.Lock()
_used_ports: set[int] = set()


def free_udp_port(count: int = 1) -> int:
    """First of ``count`` consecutive UDP ports on 127.0.0.1 that are free right now and not
    handed out before by this process. SIPp's -mp needs 4 (audio, audio+1, video, video+1)."""
    with _port_lock:
        for _ in range(500):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", 0))
                base = s.getsockname()[1]
            ports = range(base, base + count)
            if base + count >= 60000 or any(p in _used_ports for p in ports):
                continue
            try:
                socks = []
                for p in ports:
                    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    socks.append(sock)
                    sock.bind(("127.0.0.1", p))
            except OSError:
                continue
            finally:
                for sock in socks:
                    sock.close()
            _used_ports.update(ports)
            return base
    raise RuntimeError("no free UDP port")


def ephemeral_credentials(ext: str, secret: str, ttl: int = 3600,
                          now: Optional[float] = None) -> tuple[str, str]:
    """OMniLeads-style ephemeral SIP credentials: (``"<expiry>:<ext>"``, base64 HMAC-SHA1).

    The digest username carries the colon; the SIP URI user stays ``<ext>``.
    """
    expiry = int((now or time.time()) + ttl)
    username = f"{expiry}:{ext}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


class Lab:
    """A private Asterisk for one test session."""

    def __init__(self, directory: Optional[str] = None, ari_port: Optional[int] = None,
                 sip_port: Optional[int] = None, trunk_port: Optional[int] = None,
                 app: str = "omnileads", user: str = "oml", password: Optional[str] = None,
                 rtp_start: int = 40000, rtp_end: int = 49999):
        env = os.environ
        self.ari_port = int(ari_port or env.get("OML_LAB_ARI_PORT", 18088))
        self.sip_port = int(sip_port or env.get("OML_LAB_SIP_PORT", 15070))
        self.trunk_port = int(trunk_port or env.get("OML_LAB_TRUNK_PORT", 15090))
        self.dir = directory or env.get("OML_LAB_DIR") or tempfile.mkdtemp(prefix="oml-lab-")
        self.app = app
        self.user = user
        # Never the repository's development password: the server refuses to use it.
        self.password = password or secrets.token_urlsafe(16)
        self.rtp_start, self.rtp_end = rtp_start, rtp_end
        self.ari_url = f"http://127.0.0.1:{self.ari_port}/ari"
        self.ari: Optional[AriClient] = None
        self.started = False

    def _env(self) -> dict:
        env = dict(os.environ)
        env.update(LAB_DIR=self.dir, ARI_PORT=str(self.ari_port), SIP_PORT=str(self.sip_port),
                   TRUNK_PORT=str(self.trunk_port), ARI_USER=self.user,
                   ARI_PASSWORD=self.password, ARI_APP=self.app,
                   RTP_START=str(self.rtp_start), RTP_END=str(self.rtp_end))
        return env

    def start(self) -> "Lab":
        """Start Asterisk (fresh astdb) and wait for ARI. Raises RuntimeError with the log."""
        proc = subprocess.run([LAB_SH, "start", self.dir], env=self._env(), capture_output=True,
                              text=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"lab.sh start failed ({proc.returncode}):\n{proc.stderr}")
        self.started = True
        self.ari = AriClient(self.ari_url, self.user, self.password, self.app, pool_size=20)
        return self

    def stop(self) -> None:
        if self.ari is not None:
            self.ari.close()
        if self.started:
            subprocess.run([LAB_SH, "stop", self.dir], env=self._env(), capture_output=True,
                           text=True, timeout=60)
            self.started = False
        if not os.environ.get("OML_LAB_KEEP") and self.dir.startswith(tempfile.gettempdir()):
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Lab":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def cli(self, command: str) -> str:
        """Run one Asterisk CLI command (e.g. ``pjsip show contacts``) and return its output."""
        return subprocess.run([LAB_SH, "cli", self.dir, command], env=self._env(),
                              capture_output=True, text=True, timeout=20).stdout

    # -- state hygiene ---------------------------------------------------------------------------

    def clean(self, timeout: float = 5.0) -> None:
        """Hang up every channel and destroy every bridge (a killed test leaves them behind)."""
        for ch in self.ari.channels():
            try:
                self.ari.hangup(ch["id"])
            except AriNotFound:
                pass
        for br in self.ari.bridges():
            try:
                self.ari.bridge_destroy(br["id"])
            except AriNotFound:
                pass
        wait_until(lambda: not self.ari.channels() and not self.ari.bridges(), timeout,
                   "channels/bridges left after clean()")

    def leftovers(self) -> dict:
        return {"channels": [c["id"] for c in self.ari.channels()],
                "bridges": [b["id"] for b in self.ari.bridges()]}

    # -- agents ----------------------------------------------------------------------------------

    def push_agent(self, ext: str, username: str, password: str, context: str = "agents",
                   contact: Optional[str] = None, **endpoint_fields) -> None:
        """Create an agent's auth, aor, endpoint through ARI dynamic config (in that order:
        an endpoint pushed before its auth answers REGISTER with 500).

        ``contact`` gives the AOR a static contact (no REGISTER needed; reads online forever).
        """
        self.ari.dynamic_config_put("auth", ext, {"auth_type": "userpass",
                                                  "username": username, "password": password})
        aor = {"max_contacts": 1, "remove_existing": "yes"}
        if contact:
            aor["contact"] = contact
        self.ari.dynamic_config_put("aor", ext, aor)
        fields = {"transport": "transport-udp", "context": context, "disallow": "all",
                  "allow": "ulaw,alaw", "auth": ext, "aors": ext, "identify_by": "username",
                  "rewrite_contact": "no", "direct_media": "no", "timers": "no",
                  "send_connected_line": "no", "callerid": f"Agent {ext} <{ext}>"}
        fields.update(endpoint_fields)
        self.ari.dynamic_config_put("endpoint", ext, fields)

    def delete_agent(self, ext: str) -> None:
        for kind in ("endpoint", "aor", "auth"):
            try:
                self.ari.dynamic_config_delete(kind, ext)
            except AriNotFound:
                pass

    def endpoint_state(self, ext: str) -> str:
        return self.ari.endpoint("PJSIP", ext)["state"]

    def wait_endpoint_state(self, ext: str, state: str, timeout: float = 5.0) -> float:
        """Poll until PJSIP/<ext> reads ``state`` (online/offline); returns seconds waited."""
        return wait_until(lambda: self.endpoint_state(ext) == state, timeout,
                          f"PJSIP/{ext} not {state}")

    def register(self, agents: Iterable[tuple[str, str, str]], contact_port: int,
                 expires: int = 600, parallel: int = 20) -> None:
        """REGISTER ``(ext, digest_username, password)`` agents, contacts pointing at
        ``contact_port`` (a SippPeer UAS). ``expires=0`` un-REGISTERs."""
        sipp_register(agents, self.sip_port, contact_port, expires=expires, parallel=parallel)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str,
               interval: float = 0.02) -> float:
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{what} after {timeout}s")
        time.sleep(interval)


class SippPeer:
    """One SIPp process (UAS by default) started and stopped by PID.

    Scenarios (``tests/integration/sipp/``):
      agent_answer.xml          answers with SDP, streams G.711a, waits for BYE
      agent_answer_hangup.xml   same, hangs up itself after ``hangup_ms``
      agent_noanswer.xml        rings until CANCEL
      agent_reject.xml          ``keys={"reject_code": 486, "reject_reason": "Busy Here"}``
      trunk_uas.xml             the PSTN: 486…/603…/180… prefixes busy/decline/ring, else answer
    """

    _seq = itertools.count()

    def __init__(self, scenario: str, port: Optional[int] = None,
                 keys: Optional[dict] = None, hangup_ms: Optional[int] = None,
                 extra_args: Iterable[str] = (), remote: Optional[str] = None,
                 log_dir: Optional[str] = None):
        self.scenario = scenario if os.path.isabs(scenario) else os.path.join(SIPP_DIR, scenario)
        self.port = port or free_udp_port()
        self.media_port = free_udp_port(4)
        self.control_port = free_udp_port()
        self.keys = dict(keys or {})
        self.hangup_ms = hangup_ms
        self.extra_args = list(extra_args)
        self.remote = remote
        self._own_log_dir = log_dir is None
        self.log_dir = log_dir or tempfile.mkdtemp(prefix="oml-sipp-")
        self.name = f"{os.path.splitext(os.path.basename(self.scenario))[0]}-{next(self._seq)}"
        self.proc: Optional[subprocess.Popen] = None

    def _scenario_file(self) -> str:
        text = open(self.scenario, encoding="latin-1").read()
        if "@HANGUP_MS@" not in text:
            return self.scenario
        path = os.path.join(self.log_dir, f"{self.name}.xml")
        with open(path, "w", encoding="latin-1") as f:
            f.write(text.replace("@HANGUP_MS@", str(int(self.hangup_ms or 1000))))
        return path

    def command(self) -> list[str]:
        cmd = ["sipp"]
        if self.remote:
            cmd.append(self.remote)
        cmd += ["-sf", self._scenario_file(), "-i", "127.0.0.1", "-p", str(self.port),
                "-mp", str(self.media_port), "-cp", str(self.control_port), "-nostdin",
                "-trace_err", "-error_file", os.path.join(self.log_dir, f"{self.name}.err"),
                "-max_recv_loops", "10000", "-max_sched_loops", "10000"]
        for key, value in self.keys.items():
            cmd += ["-key", str(key), str(value)]
        return cmd + self.extra_args

    def start(self, settle: float = 0.15) -> "SippPeer":
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.log_dir, f"{self.name}.log"),
                                                 "w"),
                                     cwd=self.log_dir)
        time.sleep(settle)
        if self.proc.poll() is not None:
            raise RuntimeError(f"sipp {self.name} exited at once ({self.proc.returncode}): "
                               f"{self.errors()}")
        return self

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def errors(self) -> str:
        out = []
        for suffix in (".err", ".log"):
            p = os.path.join(self.log_dir, self.name + suffix)
            if os.path.exists(p):
                out.append(open(p, errors="replace").read()[-3000:])
        return "\n".join(out)

    def stop(self, keep_logs: bool = False) -> None:
        """Terminate by PID (SIPp finishes on SIGTERM/SIGUSR1); kill if it lingers. Removes its
        own log dir unless ``keep_logs`` or OML_LAB_KEEP=1 (read :meth:`errors` before)."""
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=3)
        if self._own_log_dir and not keep_logs and not os.environ.get("OML_LAB_KEEP"):
            shutil.rmtree(self.log_dir, ignore_errors=True)

    def __enter__(self) -> "SippPeer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def sipp_register(agents: Iterable[tuple[str, str, str]], sip_port: int, contact_port: int,
                  expires: int = 600, parallel: int = 20, timeout: float = 15.0) -> None:
    """REGISTER each ``(ext, digest_username, password)`` with Contact ``<ext>@127.0.0.1:
    <contact_port>`` (the UAS that will answer). ``expires=0`` un-REGISTERs.

    One short SIPp process per agent (``parallel`` at a time), because SIPp 3.6 cannot take
    per-call credentials from an injection file. Raises RuntimeError with SIPp's errors if
    any registration failed.
    """
    pending = list(agents)
    running: list[tuple[str, SippPeer, float]] = []
    failures: list[str] = []
    log_dir = tempfile.mkdtemp(prefix="oml-sipp-reg-")
    try:
        while pending or running:
            while pending and len(running) < parallel:
                ext, username, password = pending.pop(0)
                peer = SippPeer("register.xml", keys={"contact_port": contact_port,
                                                      "expires": expires},
                                remote=f"127.0.0.1:{sip_port}", log_dir=log_dir,
                                extra_args=["-s", ext, "-au", username, "-ap", password,
                                            "-m", "1", "-recv_timeout", "5000",
                                            "-timeout", f"{int(timeout)}s", "-timeout_error"])
                peer.start(settle=0)
                running.append((ext, peer, time.monotonic() + timeout + 5))
            still = []
            for ext, peer, deadline in running:
                rc = peer.proc.poll()
                if rc is None and time.monotonic() > deadline:
                    peer.stop()
                    failures.append(f"{ext}: timed out {peer.errors()}")
                elif rc is None:
                    still.append((ext, peer, deadline))
                elif rc != 0:
                    failures.append(f"{ext}: rc {rc} {peer.errors()}")
            running = still
            if running:
                time.sleep(0.005)
    finally:
        for _, peer, _ in running:
            peer.stop()
        shutil.rmtree(log_dir, ignore_errors=True)
    if failures:
        raise RuntimeError("sipp register failed: " + "\n".join(failures)[:4000])


class EventCollector:
    """Reads one app's ARI events in a background thread; tests wait for matching events.

    Events are kept (in order) so a waiter never misses one that arrived before it asked.
    """

    def __init__(self, lab: Lab, app: Optional[str] = None):
        self.lab = lab
        self.app = app or lab.app
        self.stream = AriEventStream(lab.ari_url, lab.user, lab.password, self.app)
        self.events: list[dict] = []
        self._cond = threading.Condition()
        self._thread: Optional[threading.Thread] = None
        self.error: Optional[BaseException] = None

    def start(self) -> "EventCollector":
        self.stream.connect()
        self._thread = threading.Thread(target=self._run, name=f"ari-events-{self.app}",
                                        daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            for event in self.stream:
                with self._cond:
                    self.events.append(event)
                    self._cond.notify_all()
        except BaseException as exc:  # reported to waiters
            self.error = exc
            with self._cond:
                self._cond.notify_all()

    def stop(self) -> None:
        self.stream.close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> "EventCollector":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def wait_for(self, predicate: Callable[[dict], bool], timeout: float = 5.0,
                 what: str = "event") -> dict:
        """First event (since start) matching ``predicate``; TimeoutError if none in time."""
        deadline = time.monotonic() + timeout
        index = 0
        with self._cond:
            while True:
                while index < len(self.events):
                    event = self.events[index]
                    index += 1
                    if predicate(event):
                        return event
                if self.error is not None:
                    raise RuntimeError(f"event stream died: {self.error}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no {what} within {timeout}s")
                self._cond.wait(remaining)

    def wait_channel(self, event_type: str, channel_id: str, timeout: float = 5.0) -> dict:
        return self.wait_for(lambda e: e.get("type") == event_type
                             and e.get("channel", {}).get("id") == channel_id,
                             timeout, f"{event_type} for {channel_id}")
