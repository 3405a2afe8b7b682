"""Engine tuning per backend: SQLite in WAL with foreign keys; PostgreSQL cooperative under gevent."""
import time

from sqlalchemy import event, text
from sqlalchemy.exc import DisconnectionError


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
        if not engine.pool._pre_ping:
            _ping_when_idle(engine)


# A connection used this recently is taken as alive; one idle longer is pinged at check-out.
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_when_idle(engine):
    """`pool_pre_ping` sends `SELECT 1` at every check-out: under load that was ~5% of the
    server's CPU, since the session checks a connection out for every transaction. A connection
    checked in less than a second ago is used as is: if the database went away meanwhile, the
    first statement fails, SQLAlchemy sees the disconnect and empties the pool, so one request
    fails (as it would have during the outage anyway) and the next ones reconnect. Older
    connections are pinged; a dead one is replaced before use (DisconnectionError makes the
    pool retry with a new connection)."""
    @event.listens_for(engine.pool, "checkin")
    def _checked_in(_dbapi_conn, record):
        if record is not None:
            record.info["oml_checked_in"] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _checked_out(dbapi_conn, record, _proxy):
        since = record.info.get("oml_checked_in")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise DisconnectionError(f"connection idle since {since:.0f} is dead: {exc}") from exc


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


def take_write_lock(session):
    """Make the current transaction a writer now, on SQLite, where `SELECT ... FOR UPDATE` is a
    no-op and the driver only opens the transaction at the first write: a read-then-write would
    act on what it read before another writer committed (two "pause" rows for one pause). A
    write that matches nothing takes SQLite's write lock (others wait `busy_timeout`), so what
    is read next stays current until commit. On PostgreSQL `FOR UPDATE` does the job: no-op."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("UPDATE agent_sessions SET agent_id = agent_id WHERE 1 = 0"))
