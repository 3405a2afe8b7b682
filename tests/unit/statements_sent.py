"""What a request sends to the database, for tests that count round trips."""
import threading

from greenlet import getcurrent
from sqlalchemy import event

from oml_server.database import Prepared, dbapi_of
from oml_server.extensions import db


def statements_of(request, whole=False, every_greenlet=False):
    """`request()`'s response and the statements it sent, prepared ones included, each as
    (first word, inside a transaction block?): PostgreSQL opens a block with BEGIN unless
    the connection is in autocommit. PREPAREs (once per connection) are left out. `whole`:
    the statement's whole text instead of its first word. `every_greenlet`: those of the
    greenlets it hands work to as well (the engine's call workers)."""
    # Only this request's: not other tests' leftover threads, nor greenlets (the tests do not
    # monkey-patch, so a greenlet that runs while the request waits, e.g. for the password
    # helper, shares this thread).
    sent, here = [], (threading.get_ident(), getcurrent())

    def ours():
        if every_greenlet:
            return threading.get_ident() == here[0]
        return (threading.get_ident(), getcurrent()) == here

    def said(statement):
        return " ".join(statement.split()) if whole else statement.split()[0]

    def in_block(dbapi):
        return not getattr(dbapi, "autocommit", False)

    def record(conn, _cursor, statement, _params, _context, _many):
        if ours() and not statement.startswith("PREPARE"):
            sent.append((said(statement), in_block(conn.connection.dbapi_connection)))

    original = Prepared._execute_raw

    def execute_raw(self, connection, sql, values, *more):   # prepared: no engine event
        if ours():   # whole: the EXECUTE and the text it runs
            sent.append((said(f"{sql} -- {self.statement}" if whole else sql),
                         in_block(dbapi_of(connection))))
        return original(self, connection, sql, values, *more)

    event.listen(db.engine, "before_cursor_execute", record)
    Prepared._execute_raw = execute_raw
    try:
        response = request()
    finally:
        Prepared._execute_raw = original
        event.remove(db.engine, "before_cursor_execute", record)
    return response, sent


def is_postgresql(app):
    return app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql")
