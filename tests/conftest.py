"""Test fixtures: a migrated database per run (SQLite by default; PostgreSQL when
DATABASE_URL points at one), emptied between tests, and an app with calls disabled."""
import os
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from oml_server import create_app
from oml_server.extensions import db

from .factories import Factory


def _postgres_test_url(base_url):
    """Create a throw-away database beside DATABASE_URL's and return its URL."""
    url = make_url(base_url)
    name = f"oml_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name), name


def _drop_postgres(base_url, name):
    admin = create_engine(make_url(base_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    from oml_server.config import normalize_database_url
    base = normalize_database_url(os.environ.get("DATABASE_URL", ""))
    if base.startswith("postgres"):
        url, name = _postgres_test_url(base)
        yield url.render_as_string(hide_password=False)
        _drop_postgres(base, name)
    else:
        yield "sqlite:///" + str(tmp_path_factory.mktemp("db") / "test.sqlite3")


TEST_CONFIG = {
    "TESTING": True,
    # The suite's own secrets: the app refuses to start without real ones (config.check_secrets).
    "SECRET_KEY": "test-suite-token-signing-key-not-the-development-one",
    "SIP_SECRET_KEY": "test-suite-sip-key-not-the-development-one",
    "ARI_ENABLED": False,
    "TOKEN_EXPIRED_AFTER_SECONDS": 32400,
    "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",  # production hashes cost ~0.1 s each
    # Abuse limits stay out of the way of other tests; tests/hardening/test_abuse.py sets its own.
    "MAKECALL_MAX_PER_WINDOW": 100000,
    "LOGIN_MAX_FAILURES": 100000,
    "LOGIN_MAX_FAILURES_PER_ADDRESS": 100000,
    "LOGIN_SLOWDOWN_SECONDS": 0,
}


@pytest.fixture(scope="session")
def _migrated_app(database_url):
    from flask_migrate import upgrade
    app = create_app({**TEST_CONFIG, "SQLALCHEMY_DATABASE_URI": database_url})
    with app.app_context():
        upgrade()
    return app


def _empty_all_tables():
    with db.engine.begin() as conn:
        # DELETE, not TRUNCATE: on tables this small it is ten times faster on PostgreSQL.
        for table in reversed(db.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture(autouse=True)
def _no_random_prune(monkeypatch):
    """The throttle prunes old counts on 1 % of its writes, at random: an extra DELETE that
    made tests counting a request's statements fail once in a hundred runs. The tests of the
    prune itself set the chance to 1."""
    from oml_server.services import throttle
    monkeypatch.setattr(throttle, "PRUNE_CHANCE", 0.0)


@pytest.fixture
def app(_migrated_app):
    app = _migrated_app
    with app.app_context():
        _empty_all_tables()
        yield app
        for harness in app.extensions.pop("engine_harnesses", []):
            harness.close()
        db.session.remove()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def make(app):
    """Builds users, agents, campaigns and the rest: see tests/factories.py."""
    return Factory(app)
