#!/usr/bin/env python3
"""Supervision endpoints at scale: 1,000 agents and 1 million calls in the database; and an
agent's campaign/<id>/contacts/ page (DataTables) with 1 million contacts.

    .venv/bin/python bench/supervision_bench.py                       # PostgreSQL (127.0.0.1)
    .venv/bin/python bench/supervision_bench.py --backend sqlite
    .venv/bin/python bench/supervision_bench.py --calls 100000 --repeats 30   # quicker

A throw-away database (PostgreSQL: created and dropped on BENCH_PG_URL's server; SQLite: a
file in a temp dir) is migrated and filled with SQL set operations: 1,000 agents in 10
campaigns of 100 (an administrator and a supervisor of campaign 1), their sessions in a mix of
states (ready, paused, on a call, logged out, heartbeat lost), 77 live calls and the rest of
the calls ended, spread over the last 365 days. Then each endpoint is requested --repeats times
in-process (Flask's test client: routing, authentication, queries, JSON; no HTTP socket) and
its median and p95 in milliseconds are printed with the 50 ms target. Then --contacts contacts
(1 million) go into campaign 1's database, 10,000 of them dispositioned in it, and the contacts
page is timed (first page, a deep page, searches that match one contact, some, every one
and none) against 100 ms.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TARGET_MS = 50.0
CONTACTS_TARGET_MS = 100.0
AGENTS, CAMPAIGNS = 1000, 10


def _database(backend):
    if backend == "sqlite":
        path = os.path.join(tempfile.mkdtemp(prefix="supbench-"), "bench.db")
        return f"sqlite:///{path}", lambda: os.unlink(path)
    import sqlalchemy

    from oml_server.config import normalize_database_url
    name = f"supbench_{uuid.uuid4().hex[:8]}"
    admin_url = normalize_database_url(PG_ADMIN_URL)
    admin = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")

    def drop():
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return admin_url.rsplit("/", 1)[0] + "/" + name, drop


def _fill(db, calls, pg):
    """Set-based inserts: a million rows in seconds, not one ORM object each."""
    series = ("generate_series(1, {n}) AS g(i)" if pg else
              "(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) "
              "SELECT i FROM s) AS g")
    now = "now()" if pg else "CURRENT_TIMESTAMP"
    ago = ((lambda sec: f"(now() - ({sec}) * interval '1 second')") if pg else
           (lambda sec: f"datetime('now', '-' || ({sec}) || ' seconds')"))
    false, true = ("false", "true") if pg else ("0", "1")
    run = db.session.execute
    from sqlalchemy import text
    run(text(f"INSERT INTO users (id, username, password_hash, role, first_name, last_name, email,"
             f" is_active, token_version, created_at) SELECT i, 'agent' || i, 'x', 'Agente', "
             f"'Agent', 'N' || i, '', {true}, 0, {now} FROM {series.format(n=AGENTS)}"))
    run(text(f"INSERT INTO users (id, username, password_hash, role, first_name, last_name, email,"
             f" is_active, token_version, created_at) VALUES "
             f"({AGENTS + 1}, 'bench-admin', 'x', 'Administrador', '', '', '', {true}, 0, {now}),"
             f"({AGENTS + 2}, 'bench-sup', 'x', 'Supervisor', '', '', '', {true}, 0, {now})"))
    run(text(f"INSERT INTO agents (id, user_id, sip_extension, sip_webrtc, \"group\") SELECT i, i, "
             f"CAST(10000 + i AS VARCHAR), {false}, 'G' || (i % 5) FROM {series.format(n=AGENTS)}"))
    run(text("INSERT INTO contact_databases (id, name, columns, main_phone, other_phones) VALUES "
             "(1, 'bench', '[\"TEL\", \"NOMBRE\"]', 'TEL', '[]')"))
    run(text(f"INSERT INTO campaigns (id, name, type, state, database_id, allow_duplicate_phones,"
             f" record, strategy) SELECT i, 'camp' || i, 'inbound', 'active', 1, {true}, {false},"
             f" 'leastrecent' FROM {series.format(n=CAMPAIGNS)}"))
    run(text(f"INSERT INTO campaign_agents (campaign_id, agent_id) SELECT 1 + (i - 1) % "
             f"{CAMPAIGNS}, i FROM {series.format(n=AGENTS)}"))
    run(text(f"INSERT INTO campaign_supervisors (campaign_id, user_id) VALUES (1, {AGENTS + 2})"))
    # Sessions: every 17th logged out, every 7th paused, every 11th heartbeat lost, every 13th
    # on a call (prime steps, so each campaign gets a mix).
    run(text(f"INSERT INTO agent_sessions (agent_id, online, logged_in, paused, pause_id, ringing,"
             f" on_call, idle_since, status_since, heartbeat_at, updated_at) SELECT i, {true}, "
             f"CASE WHEN i % 17 = 0 THEN {false} ELSE {true} END, "
             f"CASE WHEN i % 7 = 0 THEN {true} ELSE {false} END, "
             f"CASE WHEN i % 7 = 0 THEN '00' ELSE NULL END, {false}, "
             f"CASE WHEN i % 13 = 1 THEN {true} ELSE {false} END, {now}, {ago('i')}, "
             f"CASE WHEN i % 11 = 0 THEN {ago(3600)} ELSE {now} END, {now} "
             f"FROM {series.format(n=AGENTS)}"))
    # Calls: the agents on a call have a live bridged one (call i for agent i); the rest ended.
    live = f"(i <= {AGENTS} AND i % 13 = 1)"
    run(text(f"INSERT INTO calls (id, kind, campaign_id, agent_id, active_agent_id, number, state,"
             f" reason, node, created_at, agent_answered_at, bridged_at, ended_at) SELECT "
             f"'c' || i, 'inbound', 1 + (i / 7) % {CAMPAIGNS}, 1 + (i - 1) % {AGENTS}, "
             f"CASE WHEN {live} THEN i ELSE NULL END, '35100' || i, "
             f"CASE WHEN {live} THEN 'bridged' WHEN i % 3 = 0 THEN 'failed' ELSE 'ended' END, "
             f"CASE WHEN i % 6 = 0 THEN 'caller_hangup' WHEN i % 3 = 0 THEN 'no_agent_available' "
             f"ELSE 'contact_hangup' END, 'local', "
             f"CASE WHEN {live} THEN {ago(60)} ELSE {ago(f'(i * 31) % 31536000')} END, NULL, "
             f"CASE WHEN {live} OR i % 3 <> 0 THEN {ago(30)} ELSE NULL END, NULL "
             f"FROM {series.format(n=calls)}"))
    db.session.commit()
    if pg:
        run(text("ANALYZE"))
        db.session.commit()
    # The consoles beat again now: writing a million calls can outlast the heartbeat timeout,
    # which would show every agent UNAVAILABLE.
    run(text(f"UPDATE agent_sessions SET heartbeat_at = {now} WHERE agent_id % 11 <> 0"))
    db.session.commit()


def _fill_contacts(db, contacts, pg):
    from sqlalchemy import text
    series = ("generate_series(1, {n}) AS g(i)" if pg else
              "(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) "
              "SELECT i FROM s) AS g")
    now = "now()" if pg else "CURRENT_TIMESTAMP"
    data = (f"'{{\"TEL\": \"' || CAST(3510000000 + i AS VARCHAR) || '\", \"NOMBRE\": "
            f"\"Nombre ' || i || '\"}}'")
    # search_text as models.contact_search_text() writes it: the values, one per line, lower case.
    search = "CAST(3510000000 + i AS VARCHAR) || CHAR(10) || 'nombre ' || i"
    if pg:
        search = search.replace("CHAR(10)", "chr(10)")
    db.session.execute(text(
        f"INSERT INTO contacts (id, database_id, main_phone, data, created_at, search_text) "
        f"SELECT i, 1, CAST(3510000000 + i AS VARCHAR), {f'CAST({data} AS JSON)' if pg else data},"
        f" {now}, {search} FROM {series.format(n=contacts)}"))
    db.session.execute(text("INSERT INTO disposition_options (id, campaign_id, name, type, hidden)"
                            " VALUES (1, 1, 'Venta', 'engaged', false)" if pg else
                            "INSERT INTO disposition_options (id, campaign_id, name, type, hidden)"
                            " VALUES (1, 1, 'Venta', 'engaged', 0)"))
    db.session.execute(text(
        f"INSERT INTO dispositions (contact_id, campaign_id, agent_id, option_id, comments, "
        f"created_at, updated_at) SELECT i * {max(1, contacts // 10000)}, 1, 1, 1, '', {now}, "
        f"{now} FROM {series.format(n=min(10000, contacts))}"))
    db.session.commit()
    if pg:
        db.session.execute(text("ANALYZE"))
        db.session.commit()


def _time(client, path, headers, repeats):
    client.get(path, headers=headers)  # warm: first-use compilation, caches
    samples, cpu = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        response = client.get(path, headers=headers)
        samples.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - cpu_start) * 1000)
        assert response.status_code == 200, (path, response.status_code, response.get_json())
    samples.sort()
    # CPU: this process's (with SQLite, the query's too; PostgreSQL's backend is not in it).
    return (statistics.median(samples), samples[max(0, int(len(samples) * 0.95) - 1)],
            response.get_json(), statistics.median(cpu))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    args = parser.parse_args()

    from flask_migrate import upgrade

    from oml_server.app import create_app
    from oml_server.auth import issue_token
    from oml_server.extensions import db
    from oml_server.models import User

    url, drop = _database(args.backend)
    try:
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "ARI_ENABLED": False,
                          "SECRET_KEY": "bench-signing-key-" + uuid.uuid4().hex,
                          "SIP_SECRET_KEY": "bench-sip-key-" + uuid.uuid4().hex,
                          "ARI_PASSWORD": "unused"})
        with app.app_context():
            upgrade()
            started = time.perf_counter()
            _fill(db, args.calls, args.backend == "postgresql")
            print(f"{args.backend}: {AGENTS} agents, {args.calls:,} calls written in "
                  f"{time.perf_counter() - started:.1f} s")
            client = app.test_client()
            with app.test_request_context():
                admin = db.session.get(User, AGENTS + 1)
                sup = db.session.get(User, AGENTS + 2)
                tokens = {who: issue_token(user)[0] for who, user in (("admin", admin), ("sup", sup))}
            day = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 86400 * 30))
            today = time.strftime("%Y-%m-%d", time.gmtime())
            cases = [
                ("supervision/agents (admin: 1,000 agents)", "/api/v1/supervision/agents/", "admin"),
                ("supervision/agents (supervisor: 100)", "/api/v1/supervision/agents/", "sup"),
                ("agent_status/campaign/1", "/api/v1/agent_status/campaign/1", "sup"),
                ("agent_status_list/campaign/1", "/api/v1/agent_status_list/campaign/1", "sup"),
                ("call_status/campaign/1 (one day)",
                 f"/api/v1/call_status/campaign/1?date_start={day}&date_end={day}", "sup"),
                ("call_status/campaign/1 (30 days)",
                 f"/api/v1/call_status/campaign/1?date_start={day}&date_end={today}", "sup"),
            ]
            print(f"{'endpoint':45} {'median ms':>10} {'p95 ms':>8}  target {TARGET_MS:.0f} ms")
            worst = 0.0
            for label, path, who in cases:
                median, p95, body, _ = _time(client, path,
                                             {"Authorization": f"Bearer {tokens[who]}"}, args.repeats)
                worst = max(worst, median)
                size = len(body) if isinstance(body, list) else body
                print(f"{label:45} {median:10.1f} {p95:8.1f}  {'ok' if median < TARGET_MS else 'MISSED'}"
                      f"   ({size})")
            print(f"worst median {worst:.1f} ms: target {'met' if worst < TARGET_MS else 'MISSED'}")

            started = time.perf_counter()
            _fill_contacts(db, args.contacts, args.backend == "postgresql")
            print(f"\n{args.contacts:,} contacts (10,000 dispositioned) written in "
                  f"{time.perf_counter() - started:.1f} s")
            with app.test_request_context():
                agent_token = issue_token(db.session.get(User, 1))[0]
            base = "/api/v1/campaign/1/contacts/?draw=1&length=10"
            cases = [("first page", f"{base}&start=0"),
                     ("page at row 10,000", f"{base}&start=10000"),
                     ("phone search (prefix)", f"{base}&start=0&search[value]=351000050"),
                     ("phone search (inner digits)", f"{base}&start=0&search[value]=0098765"),
                     ("data search (one contact)", f"{base}&start=0&search[value]=Nombre%20123456"),
                     ("data search (every contact)", f"{base}&start=0&search[value]=nombre"),
                     ("data search (~11% of contacts)", f"{base}&start=0&search[value]=nombre%205"),
                     ("search, 2 characters", f"{base}&start=0&search[value]=77"),
                     ("search, no match", f"{base}&start=0&search[value]=zzzz")]
            print(f"{'contacts page':45} {'median ms':>10} {'p95 ms':>8} {'cpu ms':>7}  "
                  f"target {CONTACTS_TARGET_MS:.0f} ms")
            for label, path in cases:
                median, p95, body, cpu = _time(client, path,
                                               {"Authorization": f"Bearer {agent_token}"},
                                               max(5, args.repeats // 5))
                print(f"{label:45} {median:10.1f} {p95:8.1f} {cpu:7.1f}  "
                      f"{'ok' if median < CONTACTS_TARGET_MS else 'MISSED'}"
                      f"   (total {body['recordsTotal']}, filtered {body['recordsFiltered']})")
            db.session.remove()
            db.engine.dispose()
    finally:
        drop()


if __name__ == "__main__":
    main()
