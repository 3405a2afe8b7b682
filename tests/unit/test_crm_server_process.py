"""The real server process (`oml-server run`, gevent, no Asterisk needed) with a stub CRM:
deliveries survive a SIGKILL while the CRM is down (each delivery id arrives once), and the
event stream delivers a call's events in order to its agent and a supervisor, resumes with
Last-Event-ID, beats its heart, and does not hold a graceful stop."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
import requests

from oml_server import create_app, secrets_file
from oml_server.extensions import db
from tests.stub_crm import StubCrm

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PASSWORD = "crm-test-pass"


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out ({timeout} s) waiting for {what}")


class World:
    """A migrated SQLite file with an admin, a supervisor, two agents and a campaign; the test
    process writes call state changes into it as the engine would."""

    def __init__(self, path):
        from flask_migrate import upgrade
        from oml_server.models import Campaign, ContactDatabase
        from oml_server.services import users
        self.url = path if "://" in path else "sqlite:///" + path
        self.secrets = secrets_file.generate()
        self.app = create_app({"SQLALCHEMY_DATABASE_URI": self.url, "ARI_ENABLED": False,
                               "TESTING": True, **self.secrets})
        with self.app.app_context():
            upgrade()
            self.users = {}
            for name, role in (("admin", "Administrador"), ("sup", "Supervisor"),
                               ("ref", "Referente"), ("ana", "Agente"), ("bob", "Agente")):
                self.users[name] = users.create_user(name, PASSWORD, role)
            database = ContactDatabase(name="db", columns=["TELEFONO"], main_phone="TELEFONO")
            campaign = Campaign(name="sales", database=database)
            campaign.agents = [self.users["ana"].agent, self.users["bob"].agent]
            campaign.supervisors = [self.users["sup"]]
            db.session.add(campaign)
            db.session.commit()
            self.campaign_id = campaign.id
            self.agent_ids = {n: self.users[n].agent.id for n in ("ana", "bob")}

    def call(self, agent, end_reason="contact hung up"):
        """A whole click-to-call written through call_state, as the engine does."""
        from oml_server.services import call_state
        call_id = uuid.uuid4().hex
        with self.app.app_context():
            call_state.create(call_id, "click_to_call", agent_id=self.agent_ids[agent],
                              campaign_id=self.campaign_id, number="3515550000")
            for state in ("agent_ringing", "agent_answered", "contact_ringing", "bridged"):
                call_state.advance(call_id, state)
            call_state.finish(call_id, "ended", end_reason)
            db.session.remove()
        return call_id

    def query(self, statement):
        with self.app.app_context():
            try:
                return db.session.execute(db.text(statement)).all()
            finally:
                db.session.remove()


class Server:
    def __init__(self, world, workdir, **settings):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(workdir, "server.log")
        self.env = dict(os.environ, **world.secrets, DATABASE_URL=world.url, ARI_ENABLED="0",
                        PYTHONUNBUFFERED="1", DELIVERY_POLL_SECONDS="0.05",
                        CRM_RETRY_BASE_SECONDS="0.2", CRM_RETRY_MAX_SECONDS="0.5",
                        CRM_TIMEOUT_SECONDS="2", STREAM_POLL_SECONDS="0.05",
                        STREAM_HEARTBEAT_SECONDS="0.5",
                        PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])),
                        **settings)
        self.env.pop("FLASK_APP", None)
        self.proc = None

    def start(self):
        self._log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), "oml-server"), "run", "--no-engine",
             "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT)

        def healthy():
            assert self.proc.poll() is None, open(self.log_path).read()[-4000:]
            try:
                return requests.get(self.url + "/api/v1/health/", timeout=1).status_code < 500
            except requests.RequestException:
                return False
        wait_until(healthy, 20, "server up")
        return self

    def kill(self, sig=signal.SIGKILL):
        self.proc.send_signal(sig)
        self.proc.wait(timeout=15)
        self._log.close()

    def token(self, username):
        answer = requests.post(self.url + "/api/v1/login/", json={"username": username,
                                                                   "password": PASSWORD}, timeout=5)
        return answer.json()["token"]


@pytest.fixture
def world(tmp_path):
    return World(str(tmp_path / "oml.sqlite3"))


@pytest.fixture
def crm():
    stub = StubCrm().up()
    yield stub
    stub.down()


@pytest.fixture
def server(world, tmp_path):
    instance = Server(world, str(tmp_path)).start()
    yield instance
    if instance.proc.poll() is None:
        instance.kill(signal.SIGTERM)


def test_sigkill_while_the_crm_is_down_loses_nothing_and_sends_each_delivery_once(world, crm, tmp_path):
    port = crm.port
    crm.down()
    server = Server(world, str(tmp_path)).start()
    try:
        _outage_then_restart(world, crm, tmp_path, port, server)
    finally:
        if server.proc.poll() is None:
            server.kill(signal.SIGTERM)


def _outage_then_restart(world, crm, tmp_path, port, server):
    admin = server.token("admin")
    hook = requests.post(server.url + "/api/v1/webhooks/", headers={"Authorization": f"Bearer {admin}"},
                         json={"url": f"http://127.0.0.1:{port}/hook", "events": ["call.*"],
                               "secret": "whsec-9"}).json()
    calls = [world.call("ana"), world.call("bob")]
    # All 12 stored; the first of each call tried and failed again and again, the rest of
    # each call waiting behind it (in order per call).
    wait_until(lambda: tuple(world.query("SELECT count(*), min(attempts), max(attempts) FROM deliveries "
                                         "WHERE attempts > 0 OR state = 'pending'")[0]) >= (12, 0, 2)
               and world.query("SELECT count(*) FROM deliveries WHERE attempts >= 2")[0][0] == 2,
               20, "12 deliveries stored, the first of each call tried twice")
    server.kill(signal.SIGKILL)
    calls.append(world.call("ana"))   # written while no server runs: found from the cursor
    server.start()   # the same database, a new process
    crm.port = port
    crm.up()
    try:
        wait_until(lambda: len(crm.requests_to("/hook", ok_only=True)) >= 18, 30,
                   "all 18 events delivered")
        time.sleep(1)   # anything sent twice would arrive now
        got = crm.requests_to("/hook", ok_only=True)
        ids = [r.headers["X-OML-Delivery"] for r in got]
        assert len(got) == 18 and len(set(ids)) == 18
        for call_id in calls:
            types = [r.json()["type"] for r in got if r.json()["data"]["call_id"] == call_id]
            assert types == ["call.requested", "call.agent_ringing", "call.answered",
                             "call.contact_ringing", "call.bridged", "call.ended"]
        log = requests.get(f"{server.url}/api/v1/webhooks/{hook['id']}/deliveries/",
                           headers={"Authorization": f"Bearer {server.token('admin')}"}).json()
        assert {d["state"] for d in log["deliveries"]} == {"delivered"}
    finally:
        server.kill(signal.SIGTERM)


class Stream:
    """An SSE client in a thread: collects (id, type, data) and heartbeat comments."""

    def __init__(self, server, token, last_event_id=None):
        headers = {"Authorization": f"Bearer {token}"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        self.response = requests.get(server.url + "/api/v1/events/", headers=headers, stream=True,
                                     timeout=10)
        assert self.response.status_code == 200
        assert self.response.headers["Content-Type"].startswith("text/event-stream")
        self.events, self.comments = [], 0
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        fields = {}
        try:
            for line in self.response.iter_lines(decode_unicode=True):
                if line.startswith(":"):
                    self.comments += 1
                elif line == "":
                    if "data" in fields:
                        self.events.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
                    fields = {}
                else:
                    key, _, value = line.partition(": ")
                    fields[key] = value
        except (requests.RequestException, AttributeError, ValueError):
            pass

    def of_call(self, call_id):
        return [t for _, t, body in self.events if body["data"].get("call_id") == call_id]

    def close(self):
        self.response.close()


WHOLE_CALL = ["call.requested", "call.agent_ringing", "call.answered", "call.contact_ringing",
              "call.bridged", "call.ended"]


def test_the_stream_delivers_in_order_to_agent_and_supervisor_and_resumes(world, server):
    ana = Stream(server, server.token("ana"))
    sup = Stream(server, server.token("sup"))
    time.sleep(0.3)
    call_id = world.call("ana")
    other = world.call("bob")
    wait_until(lambda: len(sup.of_call(other)) == 6 and len(ana.of_call(call_id)) == 6, 10,
               "both calls on the streams")
    assert ana.of_call(call_id) == WHOLE_CALL and sup.of_call(call_id) == WHOLE_CALL
    assert ana.of_call(other) == []   # bob's call is not ana's business
    ids = [event_id for event_id, _, _ in ana.events]
    assert ids == sorted(ids)
    wait_until(lambda: ana.comments >= 2, 5, "heartbeats")
    # Disconnect, miss a call, resume from the last id seen.
    last = ana.events[-1][0]
    ana.close()
    missed = world.call("ana")
    resumed = Stream(server, server.token("ana"), last_event_id=last)
    wait_until(lambda: len(resumed.of_call(missed)) == 6, 10, "the missed call replayed")
    assert resumed.of_call(missed) == WHOLE_CALL and resumed.of_call(call_id) == []
    # A graceful stop does not wait for the open streams.
    started = time.monotonic()
    server.kill(signal.SIGTERM)
    assert time.monotonic() - started < 5
    sup.close()
    resumed.close()


def test_the_stream_refuses_without_credentials_and_for_a_referente(world, server):
    assert requests.get(server.url + "/api/v1/events/", timeout=5).status_code == 403
    referente = {"Authorization": f"Bearer {server.token('ref')}"}
    assert requests.get(server.url + "/api/v1/events/", headers=referente, timeout=5).status_code == 403


class Gunicorn(Server):
    """The deployed form: `gunicorn -k gevent wsgi:app` with the repository's gunicorn.conf.py."""

    def __init__(self, world, workdir, workers=1, **settings):
        super().__init__(world, workdir, **settings)
        self.worker_count = workers

    def start(self):
        self._log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), "gunicorn"), "-k", "gevent", "-w", str(self.worker_count),
             "-b", f"127.0.0.1:{self.port}", "--graceful-timeout", "120", "wsgi:app"],
            env=self.env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT)
        wait_until(lambda: self._healthy(), 30, "gunicorn up")
        return self

    def workers(self):
        with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as children:
            return {int(pid) for pid in children.read().split()}

    def _healthy(self):
        assert self.proc.poll() is None, open(self.log_path).read()[-4000:]
        try:
            return requests.get(self.url + "/api/v1/health/", timeout=1).status_code < 500
        except requests.RequestException:
            return False


@pytest.fixture
def gunicorn(world, tmp_path):
    instance = Gunicorn(world, str(tmp_path), DELIVERY_ENABLED="0").start()
    yield instance
    if instance.proc.poll() is None:
        workers = instance.workers()
        try:
            instance.kill(signal.SIGTERM)
        except subprocess.TimeoutExpired:   # a failed test: do not leave it behind
            for pid in workers:
                os.kill(pid, signal.SIGKILL)
            instance.kill(signal.SIGKILL)


def test_gunicorn_ends_open_streams_on_a_graceful_restart_and_on_shutdown(world, gunicorn):
    """Without the wrapped SIGTERM handler the old worker (and the shutdown) waited the whole
    graceful timeout (120 s here) for the streams."""
    first = Stream(gunicorn, gunicorn.token("admin"))
    time.sleep(0.3)
    old = gunicorn.workers()
    gunicorn.proc.send_signal(signal.SIGHUP)   # graceful restart: new worker, old one stops
    first.thread.join(timeout=60)
    assert not first.thread.is_alive()        # the stream ended, with a last comment
    assert first.comments >= 1
    wait_until(lambda: not old & gunicorn.workers(), 60, "the old worker gone")
    # The new worker streams as before.
    wait_until(lambda: gunicorn._healthy(), 30, "the new worker")
    second = Stream(gunicorn, gunicorn.token("admin"))
    time.sleep(0.3)
    call_id = world.call("ana")
    wait_until(lambda: len(second.of_call(call_id)) == 6, 10, "a call on the new worker's stream")
    started = time.monotonic()
    gunicorn.kill(signal.SIGTERM)             # shutdown: it does not wait 120 s for the stream
    assert time.monotonic() - started < 60
    second.thread.join(timeout=5)
    assert not second.thread.is_alive()


def test_notify_wakes_the_stream_on_postgresql(app, database_url, tmp_path):
    """STREAM_WAKEUP=notify with the safety poll an hour away: only NOTIFY can bring the
    events (and after a LISTEN connection is lost, the poll still would)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    db.session.remove()
    world = World(database_url)
    server = Server(world, str(tmp_path), STREAM_WAKEUP="notify",
                    STREAM_SAFETY_POLL_SECONDS="3600").start()
    try:
        stream = Stream(server, server.token("sup"))
        time.sleep(0.5)
        # The writer (this process, as the engine would) notifies in its transactions.
        world.app.config["STREAM_WAKEUP"] = "notify"
        call_id = world.call("ana")
        wait_until(lambda: len(stream.of_call(call_id)) == 6, 10, "the call woken onto the stream")
        assert stream.of_call(call_id) == WHOLE_CALL
        stream.close()
    finally:
        server.kill(signal.SIGTERM)
