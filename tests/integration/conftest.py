"""Fixtures for end-to-end tests of the engine: the lab Asterisk on ports of its own, the "PSTN"
SIPp peer behind the trunk, a migrated SQLite database provisioned with agents and campaigns,
and the REAL server (`oml-server run`, API + engine in one gevent process) as a subprocess,
driven over HTTP like a CRM would.

Everything is session-scoped (one Asterisk start, one server start: ~2 s) and every wait is
bounded. The server's log is printed when a test fails (see `server_log` in the test module).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest
import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lab import (REPO, Lab, SippPeer, free_udp_port, missing_programs,  # noqa: E402
                 wait_until)

from oml_server import secrets_file  # noqa: E402

SIP_SECRET = "engine-test-sip-secret"
PASSWORD = "engine-test-pass"
AGENT_ANSWER_TIMEOUT = 3
CONTACT_ANSWER_TIMEOUT = 4
INBOUND_WAIT_SECONDS = 2
TRANSFER_TIMEOUT = 3
IDLE_SECONDS = float(os.environ.get("OML_IT_IDLE_SECONDS", "2"))  # ENGINE_IDLE_SECONDS


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def lab():
    if missing_programs():
        pytest.skip(f"lab not installed ({', '.join(missing_programs())} missing): "
                    "run `asterisk-config/lab.sh install` as root")
    instance = Lab(ari_port=free_tcp_port(), sip_port=free_udp_port(), trunk_port=free_udp_port(),
                   app=f"oml-engine-{os.getpid()}",
                   rtp_start=20000 + (os.getpid() % 50) * 200, rtp_end=20000 + (os.getpid() % 50) * 200 + 199)
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def trunk(lab):
    """The PSTN: 486… busy, 603… decline, 180… rings forever, anything else answers."""
    holder = {"peer": SippPeer("trunk_uas.xml", port=lab.trunk_port).start()}
    yield holder
    holder["peer"].stop()


class World:
    """What the provisioning created: agent users by name, campaign ids, extensions."""

    def __init__(self):
        self.agents = {}      # name -> {"user_id", "agent_id", "ext", "username"}
        self.campaigns = {}   # name -> id


def _provision(database_url: str) -> World:
    from oml_server import create_app
    from oml_server.extensions import db
    from oml_server.models import Campaign, ContactDatabase
    from oml_server.services import users
    from flask_migrate import upgrade

    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "ARI_ENABLED": False,
                      "TESTING": True, **secrets_file.generate()})
    world = World()
    with app.app_context():
        upgrade()
        names = ["ana", "bob", "cid", "dan", "eva", "fay", "gus", "hal", "ivy"]
        created = {}
        for name in names:
            user = users.create_user(name, PASSWORD, "Agente", first_name=name.title())
            db.session.flush()
            created[name] = user
        database = ContactDatabase(name="db", columns=["TELEFONO", "NOMBRE"], main_phone="TELEFONO",
                                   other_phones=[], external_id_column=None)
        db.session.add(database)
        manual = Campaign(name="manual", type="manual", state="active", database=database,
                          allow_duplicate_phones=True)
        manual.agents = [created[n].agent for n in names]
        inbound = Campaign(name="inbound", type="inbound", state="active", database=database,
                           allow_duplicate_phones=True)
        inbound.agents = [created[n].agent for n in ("eva", "fay", "gus", "hal")]
        lonely = Campaign(name="lonely", type="inbound", state="active", database=database,
                          allow_duplicate_phones=True)
        lonely.agents = [created["ivy"].agent]
        db.session.add_all([manual, inbound, lonely])
        console = _provision_console(created, database)
        db.session.commit()
        for name, user in created.items():
            world.agents[name] = {"user_id": user.id, "agent_id": user.agent.id,
                                  "ext": user.agent.sip_extension, "username": name}
        world.campaigns = {"manual": manual.id, "inbound": inbound.id, "lonely": lonely.id,
                           "console": console.id}
    return world


CONSOLE_AGENTS = ("wanda", "walt")  # browser phones (tests/integration/test_console_browser.py)
KNOWN_CALLER = {"TELEFONO": "5551234", "NOMBRE": "Carla Gómez"}
CONTACT_TO_CALL = {"TELEFONO": "5553000", "NOMBRE": "Dora Ruiz"}   # from the console's list
CRM_CALLER = {"TELEFONO": "5554000", "NOMBRE": "Elsa Díaz"}         # calls in; the CRM pops


def _provision_console(created, database):
    """The browser agents' own campaign (so other tests' calls never reach them), its
    disposition options (one hidden), a pause of the site and a caller the database knows."""
    from oml_server.extensions import db
    from oml_server.models import Campaign, Contact, DispositionOption, Pause
    from oml_server.services import users
    for name in CONSOLE_AGENTS:
        created[name] = users.create_user(name, PASSWORD, "Agente", first_name=name.title())
    db.session.flush()
    campaign = Campaign(name="console", type="inbound", state="active", database=database,
                        allow_duplicate_phones=True)
    campaign.agents = [created[n].agent for n in CONSOLE_AGENTS]
    db.session.add(campaign)
    db.session.flush()
    db.session.add_all([DispositionOption(campaign_id=campaign.id, name="Venta"),
                        DispositionOption(campaign_id=campaign.id, name="No interesado"),
                        DispositionOption(campaign_id=campaign.id, name="Antigua", hidden=True),
                        Pause(name="Break", type="recreational"),
                        Contact(database_id=database.id, main_phone=KNOWN_CALLER["TELEFONO"],
                                data=dict(KNOWN_CALLER)),
                        *(Contact(database_id=database.id, main_phone=c["TELEFONO"], data=dict(c))
                          for c in (CONTACT_TO_CALL, CRM_CALLER))])
    return campaign


class Server:
    """`oml-server run` in a subprocess; stopped by PID."""

    def __init__(self, lab: Lab, database_url: str, workdir: str, name: str = "server",
                 command: tuple = ("run",), engine: bool = True):
        self.port = free_tcp_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if not engine:  # an API-only worker (split deployment)
            name, command = f"api-{self.port}", ("run", "--no-engine")
        self.engine = engine
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.command = list(command)
        self.env = dict({**secrets_file.generate(), **os.environ}, DATABASE_URL=database_url,
                        ARI_URL=lab.ari_url,
                        ARI_USER=lab.user, ARI_PASSWORD=lab.password, ARI_APP=lab.app,
                        ARI_ENABLED="1", SIP_SECRET_KEY=SIP_SECRET,
                        AGENT_ANSWER_TIMEOUT=str(AGENT_ANSWER_TIMEOUT),
                        CONTACT_ANSWER_TIMEOUT=str(CONTACT_ANSWER_TIMEOUT),
                        INBOUND_WAIT_SECONDS=str(INBOUND_WAIT_SECONDS),
                        TRANSFER_TIMEOUT=str(TRANSFER_TIMEOUT),
                        # Workers leave quiet calls to their rows after 2 s (600 in production)
                        # and the sweep runs every 3 s: every test proves both paths.
                        ENGINE_IDLE_SECONDS=str(IDLE_SECONDS),
                        ENGINE_SWEEP_SECONDS=os.environ.get("OML_IT_SWEEP_SECONDS", "3"),
                        DIAL_TEMPLATE="PJSIP/{number}@trunk", PYTHONUNBUFFERED="1",
                        # Where the lab Asterisk writes recordings (its astspooldir/recording).
                        RECORDINGS_DIR=os.path.join(lab.dir, "var", "spool", "recording"),
                        RECORDINGS_ZIP_DIR=os.path.join(workdir, "zips"),
                        MAKECALL_MAX_PER_WINDOW="100000",  # tests call faster than any CRM loop
                        # CRM deliveries retry within a test's patience (2 s doubling in production).
                        CRM_RETRY_BASE_SECONDS="0.3", CRM_RETRY_MAX_SECONDS="1",

                        PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])))
        self.env.pop("FLASK_APP", None)
        self.proc = None
        self.http = requests.Session()
        self.http.trust_env = False

    def start(self):
        self._log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [os.path.join(REPO, ".venv", "bin", "oml-server"), *self.command, "--host",
             "127.0.0.1", "--port", str(self.port)], env=self.env, cwd=REPO,
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)

        def healthy():
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}):\n{self.log()}")
            try:
                return self.http.get(self.url + "/api/v1/health/", timeout=1).json()["ari"] == "ok"
            except (requests.RequestException, ValueError, KeyError):
                return False
        wait_until(healthy, 20, "server healthy with ARI connected", interval=0.05)
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()

    def log(self, tail: int = 8000) -> str:
        try:
            return open(self.log_path, errors="replace").read()[-tail:]
        except OSError:
            return ""

    # -- HTTP like a CRM --------------------------------------------------------------------

    def token(self, username: str) -> str:
        r = self.http.post(self.url + "/api/v1/login", json={"username": username,
                                                             "password": PASSWORD}, timeout=5)
        assert r.status_code == 200, r.text
        return r.json()["token"]

    def post(self, path: str, token: str, body=None):
        r = self.http.post(self.url + path, json=body or {}, timeout=10,
                           headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.json()

    def get(self, path: str, token: str):
        r = self.http.get(self.url + path, timeout=10, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.json()


@pytest.fixture(scope="session")
def workdir():
    path = tempfile.mkdtemp(prefix="oml-engine-it-")
    yield path
    if not os.environ.get("OML_LAB_KEEP"):
        import shutil
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(workdir):
    return "sqlite:///" + os.path.join(workdir, "oml.sqlite3")


@pytest.fixture(scope="session")
def world(database_url):
    return _provision(database_url)


@pytest.fixture(scope="session")
def server(lab, trunk, world, database_url, workdir):
    instance = Server(lab, database_url, workdir)
    try:
        instance.start()
    except Exception as exc:
        instance.stop()
        raise RuntimeError(f"{exc}\n---- server log ----\n{instance.log()}") from exc
    yield instance
    instance.stop()
    if os.environ.get("OML_SHOW_SERVER_LOG"):
        print(instance.log(60000))


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Lets fixtures see whether the test failed (to print the server's log)."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(autouse=True)
def _lab_clean_after_a_failure(request):
    """On failure: the server's log tail, then hang up what the test left (a SIPp peer stopped
    by PID sends no BYE), so one failure does not fail every test after it that counts channels
    or needs the agent."""
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is None or not rep.failed:
        return
    if "server" in request.fixturenames:
        print("---- server log ----\n" + request.getfixturevalue("server").log(20000))
    if "lab" not in request.fixturenames:
        return
    instance = request.getfixturevalue("lab")
    try:
        instance.clean()
    except Exception as exc:  # the lab itself may be what failed; the next test will say so
        print(f"lab clean after failure: {exc}")
