"""Engine tuning per backend: SQLite in WAL with foreign keys; PostgreSQL cooperative under gevent."""
from sqlalchemy import event


def configure_engine(engine):
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
    elif engine.dialect.name == "postgresql":
        _make_psycopg_green()


def _make_psycopg_green():
    """Without a wait callback one slow query stalls every greenlet (architecture.md)."""
    try:
        from gevent import monkey
        if not monkey.is_module_patched("socket"):
            return
        from psycogreen.gevent import patch_psycopg
        patch_psycopg()
    except ImportError:
        pass


def is_unique_violation(exc):
    """True when an IntegrityError is a UNIQUE violation, on SQLite or PostgreSQL."""
    orig = getattr(exc, "orig", exc)
    code = getattr(orig, "pgcode", None)
    if code is not None:
        return code == "23505"
    return "UNIQUE constraint failed" in str(orig)
