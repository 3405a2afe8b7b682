"""Item 3: 50 simultaneous requests racing for one agent's pause state.

(The other races of the issue live beside their endpoints' tests, at 50 threads each:
tests/unit/test_dispositions.py — one disposition per contact; tests/unit/test_new_contact.py —
one contact per external id / phone; tests/unit/test_make_call.py — one live call per agent.)
"""
import threading

import pytest
from sqlalchemy import select

from oml_server.extensions import db
from oml_server.models import AgentActivity, AgentSession

THREADS = 50
OK = {"status": "OK"}


def _race(app, requests):
    """Send `requests` [(path, json, headers)] all at once, each from its own client."""
    barrier = threading.Barrier(len(requests))
    results = [None] * len(requests)

    def worker(i):
        path, body, headers = requests[i]
        client = app.test_client()
        barrier.wait()
        response = client.post(path, json=body, headers=headers)
        results[i] = (response.status_code, response.get_json())

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


@pytest.mark.parametrize("rounds", [1, 2])
def test_pause_and_unpause_interleaved(app, make, world, fake_telephony, rounds):
    """25 pauses and 25 unpauses at once, twice over: each answers OK (both are idempotent
    targets), the session row is one and coherent, and the activity log alternates strictly
    pause / unpause — no change recorded twice, none lost, none half-written."""
    agent = world.alice
    headers = make.headers(agent)
    client = app.test_client()
    assert client.post("/api/v1/asterisk_login/", headers=headers).get_json() == OK
    pause_id = world.pause.id
    for _ in range(rounds):
        requests = [("/api/v1/asterisk_pause/" if i % 2 == 0 else "/api/v1/asterisk_unpause/",
                     {"pause_id": pause_id}, headers) for i in range(THREADS)]
        results = _race(app, requests)
        assert results == [(200, OK)] * THREADS

    db.session.expire_all()
    rows = db.session.scalars(select(AgentSession).where(
        AgentSession.agent_id == agent.agent.id)).all()
    assert len(rows) == 1
    session = rows[0]
    assert session.logged_in is True
    assert (session.pause_id == str(pause_id)) if session.paused else (session.pause_id is None)

    events = db.session.execute(select(AgentActivity.event, AgentActivity.pause_id)
                                .where(AgentActivity.agent_id == agent.agent.id)
                                .order_by(AgentActivity.id)).all()
    assert events[0] == ("login", None)
    changes = events[1:]
    assert all(pid == str(pause_id) for _, pid in changes), changes
    kinds = [event for event, _ in changes]
    assert all(a != b for a, b in zip(kinds, kinds[1:])), kinds  # strictly alternating
    if kinds:
        assert kinds[0] == "pause"
        assert session.paused == (kinds[-1] == "pause")
    else:
        assert session.paused is False


def test_many_agents_pause_at_once_each_once(app, make, world, fake_telephony):
    """50 agents pause at the same moment: 50 OKs, 50 paused sessions, 50 pause rows."""
    agents = [make.agent() for _ in range(THREADS)]
    headers = [make.headers(agent) for agent in agents]
    client = app.test_client()
    for h in headers:
        assert client.post("/api/v1/asterisk_login/", headers=h).get_json() == OK
    results = _race(app, [("/api/v1/asterisk_pause/", {"pause_id": world.pause.id}, h)
                          for h in headers])
    assert results == [(200, OK)] * THREADS
    db.session.expire_all()
    ids = [agent.agent.id for agent in agents]
    paused = db.session.scalars(select(AgentSession).where(AgentSession.agent_id.in_(ids))).all()
    assert len(paused) == THREADS and all(row.paused for row in paused)
    pauses = db.session.scalars(select(AgentActivity).where(
        AgentActivity.agent_id.in_(ids), AgentActivity.event == "pause")).all()
    assert len(pauses) == THREADS
