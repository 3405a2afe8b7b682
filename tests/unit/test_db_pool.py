"""The connection pool under load (oml_server/database.py): requests waiting for a connection
are served in arrival order, and a hot-path request that ran without a transaction block
(statements_commit_alone) hands its connection back as an ordinary transactional one."""
import threading
import time

import pytest
from sqlalchemy import event, select
from sqlalchemy.util import queue as sqla_queue

from oml_server.database import FairQueue
from oml_server.extensions import db
from oml_server.models import Contact


def _wait_until(predicate, timeout=5):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def _waiting_getters(queue, names, got):
    """Start one get() per name, each only once the previous one is queued."""
    threads = []
    for i, name in enumerate(names):
        thread = threading.Thread(target=lambda n=name: got.append((n, queue.get(True, 5))))
        thread.start()
        _wait_until(lambda i=i: len(queue.waiters) == i + 1)
        threads.append(thread)
    return threads


def test_connections_go_to_waiters_in_arrival_order():
    queue = FairQueue(maxsize=3)
    got = []
    threads = _waiting_getters(queue, ["first", "second", "third"], got)
    for conn in ("conn-1", "conn-2", "conn-3"):
        queue.put(conn, False)
    for thread in threads:
        thread.join(5)
    assert sorted(got) == [("first", "conn-1"), ("second", "conn-2"), ("third", "conn-3")]


def test_a_newcomer_does_not_take_the_connection_a_waiter_was_given():
    queue = FairQueue(maxsize=1)
    got = []
    threads = _waiting_getters(queue, ["waiter"], got)
    queue.put("conn", False)
    with pytest.raises(sqla_queue.Empty):   # SQLAlchemy's own queue hands "conn" over here
        queue.get(False)
    threads[0].join(5)
    assert got == [("waiter", "conn")]


def test_a_waiter_gives_up_after_the_timeout_and_leaves_the_line():
    queue = FairQueue(maxsize=1)
    with pytest.raises(sqla_queue.Empty):
        queue.get(True, 0.05)
    assert not queue.waiters
    queue.put("conn", False)   # kept for the next request, not handed to the one that left
    assert queue.get(False) == "conn"


def test_a_full_pool_refuses_an_extra_connection():
    queue = FairQueue(maxsize=1)
    queue.put("conn-1", False)
    with pytest.raises(sqla_queue.Full):   # QueuePool then closes the overflow connection
        queue.put("conn-2", False)


def _in_own_context(app, func):
    """Run `func` in a thread: a fresh app context and session, as a served request has."""
    result = {}

    def run():
        with app.app_context():
            try:
                result["value"] = func()
            finally:
                db.session.remove()
    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    return result.get("value")


def test_a_transaction_after_a_hot_path_request_is_still_all_or_nothing(app, make):
    """After new_contact (no transaction block on PostgreSQL) its connection serves the next
    request: a transaction there must still roll back as a whole."""
    agent = make.agent()
    campaign = make.campaign(agents=[agent])
    headers = make.headers(agent)
    database_id = campaign.database.id
    db.session.commit()

    phones = iter(range(3511111111, 3511111200))

    def new_contact():
        return app.test_client().post("/api/v1/new_contact/", headers=headers, json={
            "idCampaign": campaign.id, "TELEFONO": str(next(phones))})

    def two_writes_then_rollback():
        db.session.add(Contact(database_id=database_id, main_phone="3512222222", data={}))
        db.session.flush()
        db.session.add(Contact(database_id=database_id, main_phone="3513333333", data={}))
        db.session.flush()
        db.session.rollback()

    for _ in range(3):   # the pool hands the same few connections around
        response = _in_own_context(app, new_contact)
        assert response.status_code == 200, response.get_json()
        _in_own_context(app, two_writes_then_rollback)
    phones = _in_own_context(app, lambda: db.session.scalars(
        select(Contact.main_phone).where(Contact.database_id == database_id)).all())
    assert "3512222222" not in phones and "3513333333" not in phones


@pytest.fixture(params=[True, False], ids=["prepared", "planned"])
def prepared_statements(request, app):
    """Both ways of running the hot statements (DB_PREPARED_STATEMENTS; SQLite: the same)."""
    app.config["DB_PREPARED_STATEMENTS"] = request.param
    yield request.param
    app.config["DB_PREPARED_STATEMENTS"] = True


def test_hot_paths_answer_the_same_prepared_or_not(client, make, prepared_statements):
    agent = make.agent()
    campaign = make.campaign(agents=[agent], options=["Venta"])
    headers = make.headers(agent, "en")
    response = client.post("/api/v1/new_contact/", headers=headers,
                           json={"idCampaign": campaign.id, "TELEFONO": "3511111111"})
    assert response.status_code == 200, response.get_json()
    contact_id = response.get_json()["id"]
    options = client.get(f"/api/v1/campaign/{campaign.id}/dispositionOptions/", headers=headers)
    assert [o["name"] for o in options.get_json()] == ["Venta"]
    body = {"idContact": contact_id, "idDispositionOption": options.get_json()[0]["id"]}
    response = client.post("/api/v1/disposition/", headers=headers, json=body)
    assert response.status_code == 201, response.get_json()
    again = client.post("/api/v1/disposition/", headers=headers, json=body)
    assert again.status_code == 400 and list(again.get_json()) == ["status", "msg"]


def test_ids_beyond_32_bits_are_not_found_not_errors(client, make, prepared_statements):
    """Hot-path statements are prepared on PostgreSQL with typed parameters: an id no column
    can hold is still a plain "not found" in the endpoint's own style."""
    agent = make.agent()
    campaign = make.campaign(agents=[agent])
    headers = make.headers(agent, "en")
    huge = 2**40
    response = client.post("/api/v1/new_contact/", headers=headers,
                           json={"idCampaign": huge, "TELEFONO": "3511111111"})
    assert response.status_code == 400
    assert response.get_json()["errors"] == {"idCampaign": ["Campaign not found"]}
    response = client.post("/api/v1/disposition/", headers=headers,
                           json={"idContact": huge, "idDispositionOption": huge})
    assert response.status_code == 400
    assert list(response.get_json()) == ["status", "idDispositionOption"]
    response = client.get(f"/api/v1/campaign/{huge}/dispositionOptions/", headers=headers)
    assert response.status_code == 404
    assert client.get(f"/api/v1/campaign/{campaign.id}/dispositionOptions/",
                      headers=headers).status_code == 200


def test_the_connection_given_back_last_is_the_next_one_taken(app):
    """PostgreSQL: a server doing a few statements a second (its polls, one call at a time)
    keeps using one warm connection. Taken first-in-first-out, each check-out got the
    connection idle longest, past PING_AFTER_IDLE_SECONDS, and paid a `SELECT 1` first."""
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        pytest.skip("PostgreSQL's pool (SQLite's connections are not pooled the same way)")
    first, second = db.engine.connect(), db.engine.connect()
    given_back_last = second.connection.dbapi_connection
    first.close()
    second.close()
    with db.engine.connect() as again:
        assert again.connection.dbapi_connection is given_back_last


def test_a_burst_as_wide_as_the_pool_opens_no_connection_once_warm(app):
    """Every connection the pool lends is kept once opened: a second burst as wide as the
    pool opens none (an overflow connection was closed as soon as it came back, so each burst
    that needed one paid a new PostgreSQL backend and prepared its statements again)."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's pool (SQLite opens its file per connection)")
    options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]
    width = options["pool_size"] + options["max_overflow"]   # the most it lends at once
    opened = []

    def burst():
        lent = [db.engine.pool.connect() for _ in range(width)]
        for connection in lent:
            connection.close()

    def count(*args):
        opened.append(1)

    event.listen(db.engine.pool, "connect", count)
    try:
        burst()
        warm = len(opened)
        burst()
    finally:
        event.remove(db.engine.pool, "connect", count)
    assert len(opened) == warm


def test_a_statement_run_alone_while_postgresql_is_down_raises_sqlalchemys_error():
    """A lone prepared statement takes its connection from the pool itself: when PostgreSQL
    cannot be reached that is SQLAlchemy's OperationalError, as through a session, so a login
    then answers 503 "Service temporarily unavailable", not 500
    (tests/integration/test_faults.py)."""
    from sqlalchemy import create_engine, literal
    from sqlalchemy.exc import OperationalError

    from oml_server.database import Prepared
    down = create_engine("postgresql+psycopg2://postgres@127.0.0.1:9/none?connect_timeout=2")
    try:
        with pytest.raises(OperationalError):
            Prepared(select(literal(1))).execute_alone(down, {})
    finally:
        down.dispose()
