"""Helpers for the fault and data-loss tests (no tests here): throw-away databases (SQLite
file or a PostgreSQL database of its own on a shared cluster), a small provisioned world for
writers, and the real `oml-server run` as a subprocess that can be stopped gracefully and
started again on the same port.

Used by tests/integration/test_faults.py, test_no_data_loss.py and bench/restart_under_load.py.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from oml_server import secrets_file  # noqa: E402

PASSWORD = "fault-test-pass"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- databases ------------------------------------------------------------------------------

def postgres_base_url() -> str | None:
    """A PostgreSQL URL that answers now (DATABASE_URL when it names one, else the local
    default), or None."""
    from sqlalchemy import create_engine, text
    url = os.environ.get("DATABASE_URL", "")
    url = url if url.startswith("postgres") else DEFAULT_PG
    try:
        engine = create_engine(_psycopg2(url), connect_args={"connect_timeout": 2})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return url
    except Exception:
        return None


def _psycopg2(url: str) -> str:
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url


def admin_engine(base_url: str):
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    return create_engine(make_url(_psycopg2(base_url)).set(database="postgres"),
                         isolation_level="AUTOCOMMIT")


def create_pg_database(base_url: str, prefix: str = "oml_fault") -> tuple[str, str]:
    """(url, name) of a new empty database on the cluster of `base_url`."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    engine = admin_engine(base_url)
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    url = make_url(_psycopg2(base_url)).set(database=name).render_as_string(hide_password=False)
    return url, name


def drop_pg_database(base_url: str, name: str) -> None:
    from sqlalchemy import text
    engine = admin_engine(base_url)
    with engine.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def pg_block(base_url: str, name: str) -> int:
    """Make database `name` (only it) unavailable: no new connections, every session of it
    terminated. Returns how many sessions were cut."""
    from sqlalchemy import text
    engine = admin_engine(base_url)
    with engine.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
        cut = conn.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                "WHERE datname = :name AND pid <> pg_backend_pid()"),
                           {"name": name}).scalar()
    engine.dispose()
    return int(cut or 0)


def pg_unblock(base_url: str, name: str) -> None:
    from sqlalchemy import text
    engine = admin_engine(base_url)
    with engine.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
    engine.dispose()


# -- a provisioned world for writers ----------------------------------------------------------

def provision_writers(database_url: str, agents: int = 1) -> dict:
    """Migrate `database_url` and create agents (writer0…), one manual campaign they belong to
    (duplicate phones allowed) with an external-id column, and one disposition option."""
    from flask_migrate import upgrade

    from oml_server import create_app
    from oml_server.extensions import db
    from oml_server.models import Campaign, ContactDatabase, DispositionOption
    from oml_server.services import users

    # A cheap hash: these accounts exist for a few seconds; logins should not dominate the run.
    app = create_app({"SQLALCHEMY_DATABASE_URI": _psycopg2(database_url), "ARI_ENABLED": False,
                      "TESTING": True, "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
                      **secrets_file.generate()})
    with app.app_context():
        upgrade()
        created = []
        for i in range(agents):
            created.append(users.create_user(f"writer{i}", PASSWORD, "Agente"))
        db.session.flush()
        database = ContactDatabase(name="writes", columns=["TELEFONO", "NOMBRE", "id_ext"],
                                   main_phone="TELEFONO", other_phones=[],
                                   external_id_column="id_ext")
        campaign = Campaign(name="writes", type="manual", state="active", database=database,
                            allow_duplicate_phones=True)
        campaign.agents = [u.agent for u in created]
        db.session.add(campaign)
        db.session.flush()
        option = DispositionOption(campaign_id=campaign.id, name="Venta", type="no_action",
                                   hidden=False)
        db.session.add(option)
        db.session.commit()
        world = {"campaign": campaign.id, "option": option.id,
                 "usernames": [u.username for u in created]}
        db.session.remove()
        db.engine.dispose()
    return world


def add_agents(database_url: str, prefix: str, count: int, campaign_id: int,
               password: str) -> list[dict]:
    """Add `count` agents (`<prefix>00`…) to an existing database and make them members of
    campaign `campaign_id`. Returns [{"username", "agent_id", "ext"}]."""
    from oml_server import create_app
    from oml_server.extensions import db
    from oml_server.models import Campaign
    from oml_server.services import users

    app = create_app({"SQLALCHEMY_DATABASE_URI": _psycopg2(database_url), "ARI_ENABLED": False,
                      "TESTING": True, "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
                      **secrets_file.generate()})
    with app.app_context():
        campaign = db.session.get(Campaign, campaign_id)
        created = [users.create_user(f"{prefix}{i:02d}", password, "Agente")
                   for i in range(count)]
        db.session.flush()
        campaign.agents = list(campaign.agents) + [u.agent for u in created]
        db.session.commit()
        out = [{"username": u.username, "agent_id": u.agent.id, "ext": u.agent.sip_extension}
               for u in created]
        db.session.remove()
        db.engine.dispose()
    return out


def stored_keys(database_url: str) -> tuple[set, set]:
    """(external ids of contacts, external ids of contacts that have a disposition)."""
    from sqlalchemy import create_engine, text
    engine = create_engine(_psycopg2(database_url))
    with engine.connect() as conn:
        contacts = {r[0] for r in conn.execute(text("SELECT external_id FROM contacts"))}
        disposed = {r[0] for r in conn.execute(text(
            "SELECT c.external_id FROM dispositions d JOIN contacts c ON c.id = d.contact_id"))}
    engine.dispose()
    return contacts, disposed


# -- the server ---------------------------------------------------------------------------------

class ApiServer:
    """`oml-server run` (API only unless `env` enables ARI) as a subprocess on a fixed port:
    `restart()` stops it with SIGTERM, waits for the exit, and starts a new one on that port."""

    def __init__(self, database_url: str, workdir: str, port: int | None = None,
                 engine: bool = False, env: dict | None = None):
        self.port = port or free_tcp_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(workdir, f"api-{self.port}.log")
        self.engine = engine
        path = os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))
        # Test clients call and log in faster than any CRM loop: lift the abuse limits.
        self.env = dict({**secrets_file.generate(), **os.environ}, DATABASE_URL=database_url,
                        PYTHONUNBUFFERED="1",
                        ARI_ENABLED="1" if engine else "0", PYTHONPATH=path,
                        MAKECALL_MAX_PER_WINDOW="1000000", LOGIN_MAX_FAILURES_PER_ADDRESS="1000000")
        self.env.pop("FLASK_APP", None)
        self.env.update(env or {})
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self, timeout: float = 20.0) -> float:
        """Start and wait until /api/v1/health answers; returns the seconds it took."""
        t0 = time.monotonic()
        self._log = open(self.log_path, "a")
        cmd = [os.path.join(REPO, ".venv", "bin", "oml-server"), "run", "--host", "127.0.0.1",
               "--port", str(self.port)]
        if not self.engine:
            cmd.append("--no-engine")
        self.proc = subprocess.Popen(cmd, env=self.env, cwd=REPO, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT)
        http = requests.Session()
        http.trust_env = False
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}):\n{self.log()}")
            try:
                if http.get(self.url + "/api/v1/health", timeout=1).status_code in (200, 503):
                    return time.monotonic() - t0
            except requests.RequestException:
                pass
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"server not answering after {timeout}s:\n{self.log()}")
            time.sleep(0.02)

    def terminate(self, timeout: float = 15.0) -> float:
        """SIGTERM and wait for the exit (graceful stop); seconds it took."""
        t0 = time.monotonic()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
                raise RuntimeError(f"server did not stop within {timeout}s:\n{self.log()}")
        if self._log is not None:
            self._log.close()
            self._log = None
        return time.monotonic() - t0

    stop = terminate

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def log(self, tail: int = 8000) -> str:
        try:
            return open(self.log_path, errors="replace").read()[-tail:]
        except OSError:
            return ""
