"""Engine tuning per backend: SQLite in WAL with foreign keys; PostgreSQL cooperative under gevent."""
import collections
import itertools
import re
import threading
import time

from flask import current_app
from sqlalchemy import Integer, bindparam, event, text
from sqlalchemy.exc import DBAPIError, DisconnectionError, MultipleResultsFound, NoResultFound
from sqlalchemy.orm import scoped_session
from sqlalchemy.pool import QueuePool
from sqlalchemy.util import queue as sqla_queue

from .extensions import db


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
        _autocommit_ends_at_checkin(engine)
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


def statements_commit_alone(session):
    """PostgreSQL: the session's next transaction runs in autocommit, each statement committing
    on its own; SQLite: nothing changes.

    For requests that write with at most one statement (the hot paths: new_contact, a
    disposition, the reads): a transaction block around them only adds two round trips,
    BEGIN and COMMIT/ROLLBACK (psycopg2 sends BEGIN on its own before the first statement).
    Under READ COMMITTED every statement sees its own snapshot anyway, so the reads see what
    they saw inside a block; a single write is atomic by itself; uniqueness is still the
    constraints'. Not for requests that write twice, lock rows (FOR UPDATE), or must read
    one snapshot. Must run before the request's first statement; later, it does nothing.
    True when it applied (no transaction was open, whatever the database)."""
    if isinstance(session, scoped_session):
        session = session()
    if session.in_transaction():
        return False
    if session.get_bind().dialect.name == "postgresql":
        # psycopg2's own flag, not SQLAlchemy's AUTOCOMMIT isolation level: resetting that
        # on check-in costs a `SET default_transaction_isolation` round trip. The flag is
        # cleared on check-in (_autocommit_ends_at_checkin), on the client side only.
        session.connection().connection.dbapi_connection.autocommit = True
    return True


def statements_in_transaction(session):
    """Undo statements_commit_alone from here on: the session's next statements run in one
    transaction block again (psycopg2 sends BEGIN before the next one; the session's commit
    ends it). For a single-write request that turns out to need two writes (an uncommon
    case); what it read before stays read (each statement had its own snapshot anyway)."""
    if isinstance(session, scoped_session):
        session = session()
    if session.get_bind().dialect.name == "postgresql":
        raw = session.connection().connection.dbapi_connection
        if raw.autocommit:
            raw.autocommit = False


def commit_keeping_loaded(session):
    """Commit and give the connection back to the pool, leaving the objects already loaded
    usable: not expired, so reading them later sends no SELECT."""
    if isinstance(session, scoped_session):
        session = session()
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = True


def _autocommit_ends_at_checkin(engine):
    @event.listens_for(engine.pool, "checkin")
    def _end_autocommit(dbapi_conn, _record):
        if dbapi_conn is not None and not dbapi_conn.closed and dbapi_conn.autocommit:
            dbapi_conn.autocommit = False


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


class _Waiter:
    __slots__ = ("ready", "item")

    def __init__(self):
        self.ready = threading.Event()   # gevent's Event once threading is patched
        self.item = None


class FairQueue(sqla_queue.Queue):
    """SQLAlchemy's pool queue, first come first served.

    SQLAlchemy's queue wakes a waiter when a connection comes back, but any request arriving
    before the woken one runs takes the connection first, and the waiter sleeps again: under
    load a few requests waited seconds while others never waited (bench/README.md, "the
    collapse"). Here a returned connection goes straight to the longest waiter, and a
    newcomer queues behind the waiters even when the pool is not empty."""

    def __init__(self, maxsize=0, use_lifo=False):
        super().__init__(maxsize, use_lifo)
        self.waiters = collections.deque()

    def put(self, item, block=True, timeout=None):
        with self.mutex:
            if self.waiters:
                waiter = self.waiters.popleft()
                waiter.item = item
                waiter.ready.set()
                return
            if self._full():   # QueuePool then closes the (overflow) connection
                raise sqla_queue.Full
            self._put(item)

    def get(self, block=True, timeout=None):
        with self.mutex:
            if not self.waiters and not self._empty():
                return self._get()
            if not block:
                raise sqla_queue.Empty
            waiter = _Waiter()
            self.waiters.append(waiter)
        waiter.ready.wait(timeout)
        with self.mutex:
            if waiter.item is not None:   # handed over, possibly just as the wait timed out
                return waiter.item
            self.waiters.remove(waiter)
        raise sqla_queue.Empty


class FairQueuePool(QueuePool):
    """QueuePool with FairQueue: waits for a connection are served in arrival order."""
    _queue_class = FairQueue


def run(statement, params):
    """Execute a Core statement, or a Prepared one, on the session's connection."""
    connection = db.session.connection()
    if isinstance(statement, Prepared):
        return statement.execute(connection, params)
    return connection.execute(statement, params)


def run_alone(statement, params):
    """One statement that commits on its own (a read, or a write that is atomic by itself),
    its rows read at once: a PreparedResult (rows, first, scalar, rowcount…).

    On PostgreSQL, when the session has no transaction open, a Prepared statement runs on a
    connection taken from the pool for it alone, in autocommit, and handed back at once. The
    session's way (statements_commit_alone, run, commit: a SessionTransaction, a Connection
    and their events around the same check-out) cost twice the CPU of the statement itself
    (0.25 against 0.12 ms, bench/README.md): the engine runs ~7 such statements per call.
    Otherwise (SQLite, a transaction open in the session, DB_PREPARED_STATEMENTS=0) it runs
    through the session as before, committed when no transaction was open."""
    session = db.session()
    engine = db.engine
    if isinstance(statement, Prepared) and engine.dialect.name == "postgresql" \
            and not session.in_transaction() \
            and current_app.config.get("DB_PREPARED_STATEMENTS", True):
        return statement.execute_alone(engine, params)
    alone = statements_commit_alone(session)
    result = run(statement, params)
    rows = result if isinstance(result, PreparedResult) else PreparedResult.of(result)
    if alone:
        session.commit()
    return rows


def dbapi_of(connection):
    """The DB-API connection under a SQLAlchemy Connection or a pool's connection."""
    if hasattr(connection, "dbapi_connection"):
        return connection.dbapi_connection
    return connection.connection.dbapi_connection


def _parameter_type(type_, dialect):
    """A PREPARE parameter's type. Integers are BIGINT whatever the column: a request may
    name id 2**40, which `id = $1` must find absent rather than fail on as out of range."""
    if type_._isnull:
        return "unknown"   # PostgreSQL infers it from where the parameter is used
    if isinstance(type_, Integer):
        return "BIGINT"
    return dialect.type_compiler_instance.process(type_)


_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


class Prepared:
    """A hot-path Core statement that PostgreSQL parses and plans once per connection
    (PREPARE), then runs by name (EXECUTE); elsewhere it runs as is.

    psycopg2 has no server-side prepared statements of its own, and planning is most of what
    PostgreSQL spends on these short statements (bench/README.md: the token check's SELECT
    costs the server 100 µs of CPU planned every time, 33 µs prepared). `execute` takes the
    statement's bind parameters like Connection.execute and returns its Result; the Python
    side column defaults (created_at) and type conversions (JSON) still apply."""

    _names = itertools.count(1)

    def __init__(self, statement):
        self.statement = statement
        self.name = f"oml_prepared_{next(self._names)}"
        self._postgresql = None   # (PREPARE sql, EXECUTE sql, compiled, processors, prefetch)
        self.row_class = None     # the rows' named tuple, from the first result's columns
        self.row_processors = None   # the result columns' type conversions (None: none)

    def execute(self, connection, params):
        # DB_PREPARED_STATEMENTS=0: behind a pooler that hands one client several server
        # sessions (PgBouncer in transaction mode), a name PREPAREd on one is unknown on another.
        if connection.dialect.name != "postgresql" \
                or not current_app.config.get("DB_PREPARED_STATEMENTS", True):
            return connection.execute(self.statement, params)
        execute, values = self._ready(connection, connection.dialect, params)
        return self._execute_raw(connection, execute, values)

    def execute_alone(self, engine, params):
        """PostgreSQL: run on a pool connection of its own, in autocommit (database.run_alone)."""
        try:
            connection = engine.pool.connect()
        except engine.dialect.loaded_dbapi.Error as exc:
            # The pool raises the driver's error; callers (and the API's 503 for a database
            # that is down) expect SQLAlchemy's, as a session's connect raises it.
            raise DBAPIError.instance(None, None, exc, engine.dialect.loaded_dbapi.Error,
                                      dialect=engine.dialect) from exc
        try:
            connection.dbapi_connection.autocommit = True   # cleared at check-in
            execute, values = self._ready(connection, engine.dialect, params)
            return self._execute_raw(connection, execute, values, engine.dialect)
        finally:
            connection.close()

    def _ready(self, connection, dialect, params):
        """The EXECUTE and its values, the statement PREPAREd on this connection first."""
        if self._postgresql is None:
            self._postgresql = self._compile(dialect)
        prepare, execute, compiled, processors, prefetch = self._postgresql
        prepared = connection.info.setdefault("oml_prepared", set())   # emptied on reconnect
        if self.name not in prepared:
            _cursor_execute(connection, dialect, prepare, None).close()
            prepared.add(self.name)
        values = compiled.construct_params(params)
        for column, default in prefetch:   # Python-side defaults (INSERT) and onupdate (UPDATE)
            if values.get(column.key) is None:
                values[column.key] = default.arg(None) if default.is_callable else default.arg
        for name, process in processors.items():
            values[name] = process(values[name])
        return execute, values

    def _execute_raw(self, connection, sql, values, dialect=None):
        """Run on the DB-API cursor itself. Through `exec_driver_sql`, SQLAlchemy rebuilt the
        result's metadata from the cursor at every execution (no compiled cache for driver
        SQL): 40-50 µs of CPU per statement, as much as psycopg2 and libpq spend on it
        (bench/README.md). Errors are SQLAlchemy's as before (IntegrityError…), and a lost
        connection is invalidated as SQLAlchemy would. Engine events do not see these.
        `connection`: a SQLAlchemy Connection, or a pool's connection (execute_alone)."""
        cursor = _cursor_execute(connection, dialect or connection.dialect, sql, values)
        return PreparedResult(self, cursor)

    def _compile(self, dialect):
        compiled = self.statement.compile(dialect=dialect)
        names = list(dict.fromkeys(_PLACEHOLDER.findall(compiled.string)))
        numbers = {name: f"${i}" for i, name in enumerate(names, 1)}
        body = _PLACEHOLDER.sub(lambda m: numbers[m.group(1)], compiled.string).replace("%%", "%")
        types = ", ".join(_parameter_type(compiled.binds[n].type, dialect) for n in names)
        prepare = f"PREPARE {self.name} ({types}) AS {body}" if names \
            else f"PREPARE {self.name} AS {body}"   # `()` is a syntax error
        execute = f"EXECUTE {self.name} ({', '.join(f'%({n})s' for n in names)})" if names \
            else f"EXECUTE {self.name}"
        processors = {}
        for name in names:
            type_ = compiled.binds[name].type.dialect_impl(dialect)
            process = type_.bind_processor(dialect)
            if process is not None:
                processors[name] = process
        prefetch = [(column, column.default) for column in
                    getattr(compiled, "insert_prefetch", ()) or ()] + \
                   [(column, column.onupdate) for column in
                    getattr(compiled, "update_prefetch", ()) or ()]
        converters = [column[3].dialect_impl(dialect).result_processor(dialect, None)
                      for column in compiled._result_columns]
        self.row_processors = converters if any(converters) else None
        return prepare, execute, compiled, processors, prefetch


def _cursor_execute(connection, dialect, sql, values):
    """`sql` on a new DB-API cursor of `connection` (SQLAlchemy's or the pool's); a driver
    error is raised as SQLAlchemy's (IntegrityError…), a lost connection invalidated."""
    raw = dbapi_of(connection)
    cursor = raw.cursor()
    try:
        cursor.execute(sql, values)
    except dialect.loaded_dbapi.Error as exc:
        lost = dialect.is_disconnect(exc, raw, cursor)
        cursor.close()
        if lost:
            connection.invalidate(exc)
        raise DBAPIError.instance(sql, values, exc, dialect.loaded_dbapi.Error,
                                  connection_invalidated=lost, dialect=dialect) from exc
    return cursor


_NAMED_PARAMETER = re.compile(r"(?<!:):(\w+)")


def prepared_text(sql, types):
    """A Prepared statement from SQL text with `:name` parameters, each typed by `types`
    (name -> SQLAlchemy type; PREPARE declares them: an untyped parameter is left to
    PostgreSQL's inference, which fails where a value only passes through, as a SELECT list
    feeding an INSERT). For the hot paths written as one data-modifying CTE: planned once per
    connection instead of parsed and planned at every call."""
    names = dict.fromkeys(_NAMED_PARAMETER.findall(sql))
    return Prepared(text(sql).bindparams(*(bindparam(n, type_=types[n]) for n in names)))


class PreparedResult:
    """What callers of a Prepared statement read: the rows as named tuples (by index, by
    name, unpacked), with Result's first / one / one_or_none / scalar / all / iteration, and
    `rowcount`. The rows are fetched at once: these statements return a handful."""

    __slots__ = ("rowcount", "_rows")

    @classmethod
    def of(cls, result):
        """The same over a SQLAlchemy Result, read at once (database.run_alone's other way)."""
        self = cls.__new__(cls)
        self.rowcount = result.rowcount
        self._rows = result.all() if result.returns_rows else []
        return self

    def __init__(self, prepared, cursor):
        self.rowcount = cursor.rowcount
        if cursor.description is None:
            rows = []
        else:
            if prepared.row_class is None:
                names = [column[0] for column in cursor.description]
                prepared.row_class = collections.namedtuple("Row", names, rename=True)
            make, converters = prepared.row_class._make, prepared.row_processors
            if converters is None:
                rows = [make(row) for row in cursor.fetchall()]
            else:
                rows = [make(value if convert is None else convert(value)
                             for convert, value in zip(converters, row))
                        for row in cursor.fetchall()]
        cursor.close()
        self._rows = rows

    def __iter__(self):
        return iter(self._rows)

    def all(self):
        return list(self._rows)

    def first(self):
        return self._rows[0] if self._rows else None

    def scalar(self):
        return self._rows[0][0] if self._rows else None

    def one_or_none(self):
        if len(self._rows) > 1:
            raise MultipleResultsFound("Multiple rows were found when one or none was required")
        return self.first()

    def one(self):
        if not self._rows:
            raise NoResultFound("No row was found when one was required")
        return self.one_or_none()
