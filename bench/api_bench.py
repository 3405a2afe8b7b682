#!/usr/bin/env python3
"""API hot-path benchmark: the server as users deploy it, against the HTTP floor, in one run.

    .venv/bin/python bench/api_bench.py            # full mode (about 15 minutes)
    .venv/bin/python bench/api_bench.py --quick    # smoke: small counts, one run per figure

What it does, all on 127.0.0.1:
1. the floor: bench/floor_server.py (asyncio, fixed JSON body) loaded by wrk exactly like
   new_contact (same POST shape), at every concurrency;
2. for SQLite (a file in a temp dir) and PostgreSQL (a database created and dropped on
   127.0.0.1:5432, when one answers): a throw-away database per scale, migrated, provisioned
   (`oml-server provision`: one agent, the campaign, options, extra campaigns for
   dispositions) and filled by the project's own import (`oml-server import-contacts`) with
   1 thousand or 1 million contacts (the million-row import is timed);
3. the server as a subprocess with ARI_ENABLED=0: `oml-server run --no-engine` (one gevent
   process) and `gunicorn -k gevent -w 2 wsgi:app`, on a free port;
4. wrk (bench/lua/*.lua) for each hot path: sequential (1 connection) median and p99
   latency, and throughput and p50 at each concurrency with keep-alive; every figure is the
   median of --repeats runs;
5. memory: the gevent server's RSS (/proc/PID/status) after start and after 100 thousand
   new_contact requests;
6. prints a table, writes bench/results/api.json and bench/results/api_latency.png.

Every process it starts it stops by PID. Every comparison is a ratio of two figures measured
in this same run. Needs wrk (`apt-get install -y wrk`; installed here when missing and root).
"""
import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LUA = os.path.join(HERE, "lua")
RESULTS = os.path.join(HERE, "results")
BIN = os.path.dirname(sys.executable)
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

AGENT = ("bench-agent", "bench-agent-pass-1")
CAMPAIGN_ID = 1
FIRST_EXTRA_OPTION = 1001      # option of extra campaign k is 1000 + k (k = 1..)
PATHS = {"new_contact": "POST /api/v1/new_contact/", "disposition": "POST /api/v1/disposition/",
         "disposition_update": "PUT /api/v1/disposition/<id>/",
         "new_contact_disposition": "POST /api/v1/new_contact/disposition/",
         "database_metadata": "POST /api/v1/campaign/database_metadata/",
         "makeCall_checks": "POST /api/v1/makeCall/ (every check, refused on the phone)",
         "login": "POST /api/v1/login",
         "dispositionOptions": f"GET /api/v1/campaign/{CAMPAIGN_ID}/dispositionOptions/"}
ENDPOINTS = tuple(PATHS)
# The writes that need fresh rows per request (a per-database cursor of indexes).
INDEXED = ("new_contact", "disposition", "new_contact_disposition")
UPDATED_DISPOSITIONS = 400   # PUT takes these in turn (a row lock is rarely contended)

# Targets of the issues (new_contact): sequential median <= 3x the floor and within 4x the
# floor's p50; at 50 clients >= 1000 req/s, >= 1/8 of the floor's throughput and p50 < 40 ms;
# every hot path at 1M contacts within 1.3x of 1k; no collapse: every hot path's median
# throughput at 50, 100 and 200 clients >= its median at 10.
TARGETS = {"seq_floor_multiple": 3.0, "seq_floor_multiple_pg": 4.0, "c50_rps": 1000.0,
           "c50_floor_fraction": 1 / 8, "c50_p50_ms": 40.0, "scale_ratio": 1.3}


def log(*parts):
    print(*parts, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ processes

def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                resp.read()
                return
        except Exception:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def stop(proc, timeout=15):
    """Stop a process we started, by its PID: SIGTERM, then SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        return []


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def server_rss_kib(proc, kind):
    """The serving processes' resident memory: the gevent process, or gunicorn's workers."""
    if kind == "gunicorn":
        return sum(rss_kib(p) for p in children(proc.pid))
    return rss_kib(proc.pid)


_SECRETS = {}


def server_env(db_url):
    from oml_server import secrets_file
    # One set per run (every server of the run accepts the others' tokens); the server
    # refuses to start without real secrets.
    _SECRETS or _SECRETS.update(secrets_file.generate())
    env = {**_SECRETS, **os.environ}
    env.update(DATABASE_URL=db_url, ARI_ENABLED="0", PYTHONUNBUFFERED="1")
    env.pop("OML_ENV", None)
    return env


@contextmanager
def running_server(kind, db_url, logdir, wrapper=None, timeout=60, extra_env=None):
    """`wrapper`: a command the server runs under (valgrind), one gevent process only."""
    port = free_port()
    env = {**server_env(db_url), **(extra_env or {})}
    if kind == "gevent":
        cmd = [os.path.join(BIN, "oml-server"), "run", "--no-engine", "--host", "127.0.0.1",
               "--port", str(port)]
        if wrapper:
            cmd = [*wrapper, sys.executable, *cmd]
    else:
        cmd = [os.path.join(BIN, "gunicorn"), "-k", "gevent", "-w", "2", "-b", f"127.0.0.1:{port}",
               "--chdir", ROOT, "--log-level", "warning", "wsgi:app"]
    out = open(os.path.join(logdir, f"server-{kind}-{port}.log"), "wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/api/v1/health", proc, timeout)
        yield proc, port
    finally:
        stop(proc)
        out.close()


@contextmanager
def floor_server(logdir):
    port = free_port()
    out = open(os.path.join(logdir, "floor.log"), "wb")
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "floor_server.py"), "--port",
                             str(port)], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/", proc)
        yield proc, port
    finally:
        stop(proc)
        out.close()


# ------------------------------------------------------------------------------ wrk

def ensure_wrk():
    if shutil.which("wrk"):
        return shutil.which("wrk")
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("wrk is missing: apt-get install -y wrk")
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False,
                       stdout=subprocess.DEVNULL)
        if not shutil.which("wrk"):
            subprocess.run(["apt-get", "update", "-qq"], check=False, stdout=subprocess.DEVNULL)
            subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False,
                           stdout=subprocess.DEVNULL)
    if not shutil.which("wrk"):
        sys.exit("wrk is required: apt-get install -y wrk")
    return shutil.which("wrk")


def wrk(port, script, args, connections, duration, timeout=10, env=None):
    """One wrk run; returns the figures report.lua prints."""
    threads = 1 if connections < 50 else 2
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s",
           "--timeout", f"{timeout}s", "-s", script, f"http://127.0.0.1:{port}", "--", *map(str, args)]
    run_env = dict(os.environ, **(env or {}))
    done = subprocess.run(cmd, cwd=LUA, capture_output=True, text=True, env=run_env,
                          timeout=duration + timeout + 60)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            figures = json.loads(line[len("BENCH_JSON "):])
            figures["threads"] = threads
            seconds = figures["duration_us"] / 1e6
            figures["rps"] = figures["requests"] / seconds if seconds else 0.0
            figures["errors"] = sum(figures[k] for k in ("connect_errors", "read_errors",
                                                         "write_errors", "status_errors", "timeouts"))
            return figures
    raise RuntimeError(f"wrk gave no figures: {done.stdout}\n{done.stderr}")


def settle(port, timeout=60):
    """Wait until the server answers /health promptly: requests still queued from the last
    run (wrk stops sending, the server does not stop working) must not bill the next one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=30) as r:
                r.read()
        except Exception:
            pass
        if time.monotonic() - started < 0.02:
            return
        time.sleep(0.1)


class Cursor:
    """Hands out disjoint index ranges to the runs of one script (unique contacts, pairs)."""

    def __init__(self, start=0):
        self.next = start

    def take(self, figures, connections):
        self.next = max(self.next, figures["max_index"] + 1) + 2 * connections


def summarize(runs):
    """The median of each figure over repeated runs, plus every run's own numbers."""
    def med(key):
        return statistics.median(r[key] for r in runs)
    return {"rps": round(med("rps"), 1), "p50_ms": round(med("p50_us") / 1000, 3),
            "p90_ms": round(med("p90_us") / 1000, 3), "p99_ms": round(med("p99_us") / 1000, 3),
            "mean_ms": round(med("mean_us") / 1000, 3), "errors": sum(r["errors"] for r in runs),
            "error_kinds": {k: sum(r[k] for r in runs) for k in (
                "connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
                if sum(r[k] for r in runs)},
            "requests": sum(r["requests"] for r in runs), "runs": len(runs),
            "rps_runs": [round(r["rps"], 1) for r in runs],
            "p50_ms_runs": [round(r["p50_us"] / 1000, 3) for r in runs]}


# ------------------------------------------------------------------------------ databases

def provisioning_yaml(extra_campaigns):
    """One agent, the benchmark campaign (5 options, duplicate phones forbidden, so new_contact
    runs both duplicate checks) and `extra_campaigns` campaigns on the same contact database
    with one option each: POST /disposition/ takes one (contact, campaign) pair per request."""
    lines = [
        "users:",
        f"  - {{username: {AGENT[0]}, password: {AGENT[1]}, role: Agente, "
        "agent: {id: 1, sip_extension: 1001}}",
        "contact_databases:",
        "  - {id: 1, name: bench-db, columns: [TELEFONO, NOMBRE, CELULAR, id_ext], "
        "main_phone: TELEFONO, other_phones: [CELULAR], external_id: id_ext}",
        "campaigns:",
        f"  - id: {CAMPAIGN_ID}",
        "    name: bench", "    type: manual", "    state: active", "    database: bench-db",
        f"    agents: [{AGENT[0]}]", "    allow_duplicate_phones: false",
        "    disposition_options:",
        "      - {id: 1, name: Venta, type: engaged}",
        "      - {id: 2, name: No interesado, type: no_action}",
        "      - {id: 3, name: Volver a llamar, type: scheduled}",
        "      - {id: 4, name: Sin respuesta, type: no_action}",
        "      - {id: 5, name: Obsoleta, type: no_action, hidden: true}",
    ]
    for k in range(1, extra_campaigns + 1):
        lines.append(f"  - {{id: {CAMPAIGN_ID + k}, name: bench-rate-{k}, type: manual, "
                     f"state: active, database: bench-db, agents: [{AGENT[0]}], "
                     f"disposition_options: [{{id: {FIRST_EXTRA_OPTION - 1 + k}, name: Rated, "
                     "type: engaged}]}")
    return "\n".join(lines) + "\n"


def pg_reachable():
    try:
        import psycopg2
        psycopg2.connect(PG_ADMIN_URL, connect_timeout=2).close()
        return True
    except Exception:
        return False


def _pg_admin(sql):
    import psycopg2
    conn = psycopg2.connect(PG_ADMIN_URL)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


@contextmanager
def throwaway_database(backend, tmpdir, label):
    if backend == "sqlite":
        path = os.path.join(tmpdir, f"{label}.sqlite3")
        yield "sqlite:///" + path
        return
    name = f"oml_bench_{os.getpid()}_{label}".lower()
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}"')
    _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def cli(db_url, *args, capture=True):
    done = subprocess.run([os.path.join(BIN, "oml-server"), *args], cwd=ROOT,
                          env=server_env(db_url), capture_output=capture, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"oml-server {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def prepare(db_url, tmpdir, n_contacts, extra_campaigns):
    """Migrate, provision and import `n_contacts`; returns the seconds the import took."""
    cli(db_url, "db", "upgrade")
    yaml_path = os.path.join(tmpdir, f"provision-{extra_campaigns}.yaml")
    with open(yaml_path, "w") as handle:
        handle.write(provisioning_yaml(extra_campaigns))
    cli(db_url, "provision", yaml_path)
    csv_path = os.path.join(tmpdir, f"contacts-{n_contacts}.csv")
    if not os.path.exists(csv_path):
        subprocess.run([sys.executable, os.path.join(HERE, "make_contacts_csv.py"),
                        str(n_contacts), csv_path], check=True)
    started = time.monotonic()
    out = cli(db_url, "import-contacts", "--campaign", str(CAMPAIGN_ID), csv_path)
    seconds = time.monotonic() - started
    report = json.loads(out.strip().splitlines()[-1])
    if report["imported"] != n_contacts:
        raise RuntimeError(f"import: {report}")
    return seconds


def contact_id_range(db_url):
    from sqlalchemy import text
    engine = _engine(db_url)
    with engine.connect() as conn:
        low, high, count = conn.execute(text(
            "SELECT min(id), max(id), count(*) FROM contacts WHERE database_id = 1")).one()
    engine.dispose()
    return low, high, count


def _engine(db_url):
    from sqlalchemy import create_engine
    return create_engine(db_url.replace("postgresql://", "postgresql+psycopg2://", 1))


def seed_updates(db_url, tmpdir, first_contact, extra):
    """The dispositions PUT replaces: UPDATED_DISPOSITIONS of the agent's, in the last extra
    campaign (POST /disposition/ never gets that far); writes "id contact option" lines."""
    from sqlalchemy import text
    campaign, option = CAMPAIGN_ID + extra, FIRST_EXTRA_OPTION - 1 + extra
    engine = _engine(db_url)
    with engine.begin() as conn:
        for contact in range(first_contact, first_contact + UPDATED_DISPOSITIONS):
            conn.execute(text(
                "INSERT INTO dispositions (contact_id, campaign_id, agent_id, option_id, comments,"
                " created_at, updated_at) VALUES (:c, :camp, 1, :o, '', CURRENT_TIMESTAMP,"
                " CURRENT_TIMESTAMP)"), {"c": contact, "camp": campaign, "o": option})
        rows = conn.execute(text("SELECT id, contact_id FROM dispositions WHERE campaign_id = :camp"
                                 " ORDER BY id"), {"camp": campaign}).all()
    engine.dispose()
    path = os.path.join(tmpdir, f"updates-{abs(hash(db_url))}.txt")
    with open(path, "w") as handle:
        handle.writelines(f"{row[0]} {row[1]} {option}\n" for row in rows)
    return path


# ------------------------------------------------------------------------------ requests

def http_json(port, method, path, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def login(port):
    status, body = http_json(port, "POST", "/api/v1/login", {"username": AGENT[0],
                                                             "password": AGENT[1]})
    if status != 200:
        raise RuntimeError(f"login failed: {status} {body}")
    return body["token"]


def check_endpoints(port, token):
    """One real request per hot path, so a benchmark of error answers cannot pass unnoticed."""
    status, body = http_json(port, "GET", f"/api/v1/campaign/{CAMPAIGN_ID}/dispositionOptions/",
                             token=token)
    assert status == 200 and len(body) == 5, (status, body)


class Measure:
    """Runs the wrk scripts of one (server, database, scale) against a live server."""

    def __init__(self, opts, port, token, first_contact, n_contacts, cursors, updates_file):
        self.opts, self.port, self.token = opts, port, token
        self.first_contact, self.n_contacts = first_contact, n_contacts
        self.cursors = cursors   # per database: every server on it continues where the last left
        self.updates_file = updates_file

    def script_args(self, endpoint, connections):
        threads = 1 if connections < 50 else 2
        if endpoint == "new_contact":
            return "new_contact.lua", [self.token, CAMPAIGN_ID, self.cursors[endpoint].next, threads]
        if endpoint == "disposition":
            return "disposition.lua", [self.token, self.cursors[endpoint].next, threads,
                                       self.first_contact, self.n_contacts, FIRST_EXTRA_OPTION]
        if endpoint == "new_contact_disposition":   # option 1: the campaign forbidding duplicates
            return "new_contact_disposition.lua", [self.token, 1, self.cursors[endpoint].next,
                                                   threads]
        if endpoint == "disposition_update":
            return "disposition_update.lua", [self.token, self.updates_file]
        if endpoint == "database_metadata":
            return "post_json.lua", [self.token, "/api/v1/campaign/database_metadata/",
                                     json.dumps({"idCampaign": CAMPAIGN_ID})]
        if endpoint == "makeCall_checks":
            # Every check's reads run (campaign, agent membership, contact) and the phone is
            # refused, so no call is placed: the checks alone, answered 200 with the errors.
            return "post_json.lua", [self.token, "/api/v1/makeCall/", json.dumps(
                {"phone": "not-a-phone", "idCampaign": CAMPAIGN_ID, "idAgent": 1,
                 "idContact": self.first_contact})]
        if endpoint == "login":
            return "login.lua", list(AGENT)
        return "get.lua", [self.token, f"/api/v1/campaign/{CAMPAIGN_ID}/dispositionOptions/"]

    def once(self, endpoint, connections):
        script, args = self.script_args(endpoint, connections)
        duration = self.opts.duration
        timeout = 10
        if endpoint == "login":   # scrypt: a few requests per second per core
            duration, timeout = max(duration, 3), 30
        figures = wrk(self.port, script, args, connections, duration, timeout=timeout)
        if endpoint in self.cursors:
            self.cursors[endpoint].take(figures, connections)
        return figures

    def cells(self, endpoint, levels):
        """Each client count's median over the repeats, the counts taken in turn within each
        repeat: the levels are compared with each other (does throughput hold from 10 to 200
        clients?), so each level's runs share the same minutes of a shared machine."""
        runs = {c: [] for c in levels}
        for _ in range(self.opts.repeats):
            for connections in levels:
                settle(self.port)
                runs[connections].append(self.once(endpoint, connections))
        out = {}
        for connections in levels:
            result = out[str(connections)] = summarize(runs[connections])
            log(f"    {endpoint:24} c={connections:<4} {result['rps']:9.1f} req/s  "
                f"p50 {result['p50_ms']:8.2f} ms  p99 {result['p99_ms']:8.2f} ms  "
                f"errors {result['errors']}")
        return out


def levels_for(endpoint, opts, full_set):
    levels = opts.concurrency if full_set else [1, 50]
    if endpoint == "login":   # bounded by scrypt; more clients only queue
        levels = [c for c in levels if c <= 10] if full_set else [1]
    return levels


def measure_server(opts, kind, db_url, tmpdir, full_set, first_contact, n_contacts, cursors,
                   updates_file):
    with running_server(kind, db_url, tmpdir) as (proc, port):
        token = login(port)
        check_endpoints(port, token)
        rss_start = server_rss_kib(proc, kind)
        measure = Measure(opts, port, token, first_contact, n_contacts, cursors, updates_file)
        # warm-up: imports, connection pools, caches (not recorded)
        for endpoint in opts.endpoints:
            if endpoint != "login":
                measure.once(endpoint, 10)
        out = {"endpoints": {}, "rss_kib_after_start": rss_start,
               "load_average_before": round(os.getloadavg()[0], 2)}
        # login last: requests wrk leaves queued behind scrypt keep the server busy a while
        for endpoint in sorted(opts.endpoints, key=lambda e: e == "login"):
            out["endpoints"][endpoint] = measure.cells(endpoint, levels_for(endpoint, opts, full_set))
        out["rss_kib_after_runs"] = server_rss_kib(proc, kind)
        # Other work on the machine competes for its 2 cores: recorded, so a reader can tell.
        out["load_average_after"] = round(os.getloadavg()[0], 2)
        return out


def round_trips(opts, db_url, tmpdir, first_contact, n_contacts, cursors, updates_file):
    """Round trips to PostgreSQL per request of each hot path, counted on the wire
    (bench/pg_wire.py) while one client sends requests to the gevent server for a second:
    every statement, BEGIN, COMMIT and ROLLBACK is one."""
    from pg_wire import WireCounter
    host, port = PG_ADMIN_URL.split("@", 1)[1].split("/", 1)[0].rsplit(":", 1)
    out = {}
    with WireCounter(host, int(port)) as wire:
        proxied = db_url.replace(f"@{host}:{port}/", f"@127.0.0.1:{wire.port}/", 1)
        # Without the CRM delivery greenlets: they poll the outbox every 0.2 s whatever the
        # load (~3 round trips a poll), which is not a cost of any one request; counted in,
        # they made a login (one request a second here) look like 120 round trips.
        with running_server("gevent", proxied, tmpdir,
                            extra_env={"DELIVERY_ENABLED": "0"}) as (_proc, server_port):
            measure = Measure(opts, server_port, login(server_port), first_contact, n_contacts,
                              cursors, updates_file)
            for endpoint in opts.endpoints:
                if endpoint != "login":
                    measure.once(endpoint, 1)   # warm: the pool's connections are open
                settle(server_port)
                before = wire.snapshot()
                figures = measure.once(endpoint, 1)
                after = wire.snapshot()
                count = figures["requests"] or 1
                out[endpoint] = {k: round((after.get(k, 0) - before.get(k, 0)) / count, 2)
                                 for k in ("trips", "begin", "commit", "rollback", "statement")}
                out[endpoint]["requests"] = figures["requests"]
                log(f"    round trips        {endpoint:24} {out[endpoint]['trips']:5.2f} per request"
                    f" (BEGIN {out[endpoint]['begin']:.2f}, COMMIT {out[endpoint]['commit']:.2f},"
                    f" ROLLBACK {out[endpoint]['rollback']:.2f})")
    return out


def memory_run(opts, db_url, tmpdir):
    """RSS of the gevent server after start, then after each 10-second slice of 50 clients
    until `opts.memory_requests` were answered: it must level off, not grow with the count.
    The requests are GET dispositionOptions (token check, two queries, a JSON list): the
    cheapest authenticated hot path, so 100 thousand of them fit in the time budget."""
    with running_server("gevent", db_url, tmpdir) as (proc, port):
        token = login(port)
        samples = [{"requests": 0, "rss_kib": rss_kib(proc.pid)}]
        done = 0
        deadline = time.monotonic() + opts.memory_seconds
        while done < opts.memory_requests and time.monotonic() < deadline:
            connections, threads = 50, 2
            figures = wrk(port, "get.lua",
                          [token, f"/api/v1/campaign/{CAMPAIGN_ID}/dispositionOptions/"],
                          connections, duration=10 if not opts.quick else 3, timeout=10)
            done += figures["requests"]
            samples.append({"requests": done, "rss_kib": rss_kib(proc.pid),
                            "errors": figures["errors"]})
            log(f"    memory: {done:>7} requests  RSS {samples[-1]['rss_kib'] / 1024:.1f} MiB")
        start, end = samples[0]["rss_kib"], samples[-1]["rss_kib"]
        after_first = samples[1]["rss_kib"]
        return {"samples": samples, "rss_kib_start": start, "rss_kib_end": end,
                "growth_ratio": round(end / start, 3),
                "growth_after_first_slice_kib": end - after_first}


def floor_figures(opts, tmpdir):
    with floor_server(tmpdir) as (_proc, port):
        out = {}
        for connections in opts.concurrency:
            runs = [wrk(port, "floor.lua", [], connections, opts.duration)
                    for _ in range(opts.repeats)]
            out[str(connections)] = summarize(runs)
            log(f"    floor              c={connections:<4} {out[str(connections)]['rps']:9.1f} req/s"
                f"  p50 {out[str(connections)]['p50_ms']:8.3f} ms")
        return out


# ------------------------------------------------------------------------------ report

def ratios(results):
    """Our figures as multiples of the floor, and 1M against 1k: computed, never typed."""
    floor = results["floor"]
    out = {"vs_floor": {}, "scale": {}}
    for name, setup in results["setups"].items():
        rows = {}
        for endpoint, cells in setup["endpoints"].items():
            rows[endpoint] = {c: {"latency_x": round(cell["p50_ms"] / floor[c]["p50_ms"], 1),
                                  "throughput_fraction": round(cell["rps"] / floor[c]["rps"], 4)}
                              for c, cell in cells.items() if c in floor}
        out["vs_floor"][name] = rows
    for name, setup in results["setups"].items():
        if setup["scale"] != "large":
            continue
        prefix = name.rsplit("/", 1)[0]
        small = next((s for n, s in results["setups"].items()
                      if s["scale"] == "small" and n.rsplit("/", 1)[0] == prefix), None)
        if not small:
            continue
        rows = {}
        for endpoint, cells in setup["endpoints"].items():
            rows[endpoint] = {}
            for c, cell in cells.items():
                base = small["endpoints"].get(endpoint, {}).get(c)
                if base:
                    rows[endpoint][c] = {
                        "p50_ratio": round(cell["p50_ms"] / base["p50_ms"], 3),
                        "rps_ratio": round(base["rps"] / cell["rps"], 3) if cell["rps"] else None}
        out["scale"][prefix] = rows
    return out


def targets(results):
    """The issue's targets for new_contact, checked against this run's own figures."""
    checks = []
    floor_seq = results["floor"]["1"]["p50_ms"]
    for name, setup in results["setups"].items():
        if setup["scale"] != "small":
            continue
        nc = setup["endpoints"].get("new_contact")
        if not nc:
            continue
        seq = nc["1"]["p50_ms"]
        multiple = TARGETS["seq_floor_multiple_pg" if "/postgresql/" in name else "seq_floor_multiple"]
        checks.append({"setup": name, "target": f"new_contact sequential median <= {multiple:g}x floor",
                       "value": f"{seq:.2f} ms = {seq / floor_seq:.1f}x floor ({floor_seq:.3f} ms)",
                       "met": seq / floor_seq <= multiple})
        if "50" in nc:
            c50 = nc["50"]
            checks.append({"setup": name, "target": "new_contact at 50 clients >= 1000 req/s",
                           "value": f"{c50['rps']:.0f} req/s", "met": c50["rps"] >= TARGETS["c50_rps"]})
            if "/postgresql/" in name and "50" in results["floor"]:
                fraction = c50["rps"] / results["floor"]["50"]["rps"]
                checks.append({"setup": name, "target": "new_contact at 50 clients >= 1/8 of the "
                               "floor's throughput", "value": f"{c50['rps']:.0f} req/s = 1/"
                               f"{1 / fraction:.0f} of {results['floor']['50']['rps']:.0f}",
                               "met": fraction >= TARGETS["c50_floor_fraction"]})
            # A median far below the mean means starved connections, not speed: shown.
            checks.append({"setup": name, "target": "new_contact at 50 clients p50 < 40 ms",
                           "value": f"{c50['p50_ms']:.1f} ms (mean {c50['mean_ms']:.1f}, "
                                    f"p99 {c50['p99_ms']:.0f})",
                           "met": c50["p50_ms"] < TARGETS["c50_p50_ms"]})
    for name, setup in results["setups"].items():
        # Each hot path's cells at 50/100/200 clients beside its cell at 10.
        above = [(endpoint, c, cells[c], cells["10"])
                 for endpoint, cells in setup["endpoints"].items() if "10" in cells
                 for c in ("50", "100", "200") if c in cells]
        # No collapse: more clients than 10 must not lower a hot path's throughput.
        drops = [f"{endpoint} c={c} {cell['rps']:.0f} < {ten['rps']:.0f}"
                 for endpoint, c, cell, ten in above if cell["rps"] < ten["rps"]]
        if above:
            checks.append({"setup": name, "target": "throughput at 50/100/200 clients >= at 10",
                           "value": "; ".join(drops) if drops else "held on every hot path",
                           "met": not drops})
            # A run of a few seconds moves by ±20 % on a shared machine: the drops every run
            # agrees on (each run at c clients below each run at 10) are the ones to act on.
            clear = [f"{endpoint} c={c} {max(cell['rps_runs']):.0f} < {min(ten['rps_runs']):.0f}"
                     for endpoint, c, cell, ten in above
                     if max(cell["rps_runs"]) < min(ten["rps_runs"])]
            checks.append({"setup": name, "target": "no drop from 10 clients that every run shows "
                           "(best run at c < worst at 10)",
                           "value": "; ".join(clear) if clear else "none", "met": not clear})
            # ...and the tail grows no faster than the queue: p99 at c clients at most c/10
            # times the p99 at 10 (each client adds one request to the queue).
            faster = [f"{endpoint} c={c} p99 {cell['p99_ms']:.0f} ms = "
                      f"{cell['p99_ms'] / ten['p99_ms']:.1f}x for {int(c) // 10}x the clients"
                      for endpoint, c, cell, ten in above
                      if cell["p99_ms"] > ten["p99_ms"] * int(c) / 10]
            checks.append({"setup": name, "target": "p99 grows no faster than the queue (c/10)",
                           "value": "; ".join(faster) if faster else "on every hot path",
                           "met": not faster})
    for name, rows in results["ratios"]["scale"].items():
        worst = max(((e, c, r["p50_ratio"]) for e, cells in rows.items() for c, r in cells.items()),
                    key=lambda t: t[2], default=None)
        if worst:
            checks.append({"setup": name, "target": "every hot path at 1M within 1.3x of 1k (p50)",
                           "value": f"worst {worst[0]} c={worst[1]}: {worst[2]:.2f}x",
                           "met": worst[2] <= TARGETS["scale_ratio"]})
    return checks


def table(results):
    lines = []
    floor = results["floor"]
    lines.append("HTTP floor (bench/floor_server.py, same POST as new_contact):")
    lines.append("  " + "  ".join(f"c={c}: {v['rps']:.0f} req/s p50 {v['p50_ms']:.3f} ms"
                                  for c, v in floor.items()))
    lines.append("")
    head = f"{'setup':22} {'endpoint':24} {'seq p50':>9} {'seq p99':>9} {'x floor':>8}"
    for c in results["options"]["concurrency"][1:]:
        head += f" {'c=' + str(c) + ' req/s':>12} {'p50 ms':>8}"
    lines.append(head)
    for name, setup in results["setups"].items():
        for endpoint, cells in setup["endpoints"].items():
            seq = cells.get("1")
            row = f"{name:22} {endpoint:24}"
            load = f" (load {setup['load_average_before']:.1f}->{setup['load_average_after']:.1f})"
            if seq:
                row += (f" {seq['p50_ms']:8.2f}m {seq['p99_ms']:8.2f}m"
                        f" {seq['p50_ms'] / floor['1']['p50_ms']:7.1f}x")
            else:
                row += f" {'':9} {'':9} {'':8}"
            for c in results["options"]["concurrency"][1:]:
                cell = cells.get(str(c))
                row += (f" {cell['rps']:12.0f} {cell['p50_ms']:8.1f}" if cell else f" {'-':>12} {'-':>8}")
            errors = sum(cell["errors"] for cell in cells.values())
            if errors:
                row += f"  ERRORS {errors}"
            lines.append(row)
        lines.append(f"{'':22} machine load average during {name}:{load}")
    if results["ratios"]["scale"]:
        lines.append("")
        lines.append(f"Scale: {scale_label(results['options']['large'])} contacts against "
                     f"{scale_label(results['options']['small'])} (p50 latency ratio; 1.0 = no change):")
        for name, rows in results["ratios"]["scale"].items():
            lines.append("  " + name + ": " + ", ".join(
                f"{e} c={c} {r['p50_ratio']:.2f}x" for e, cells in rows.items() for c, r in cells.items()))
    if results["imports"]:
        lines.append("")
        lines.append("Import (oml-server import-contacts): " + ", ".join(
            f"{k}: {v['rows']:,} rows in {v['seconds']:.1f} s ({v['rows'] / v['seconds']:,.0f} rows/s)"
            for k, v in results["imports"].items()))
    for name, mem in results["memory"].items():
        lines.append(f"Memory ({name}): RSS {mem['rss_kib_start'] / 1024:.1f} MiB after start, "
                     f"{mem['rss_kib_end'] / 1024:.1f} MiB after {mem['samples'][-1]['requests']:,} "
                     f"dispositionOptions requests ({mem['growth_ratio']:.2f}x; "
                     f"{mem['growth_after_first_slice_kib'] / 1024:+.1f} MiB after the first slice)")
    for backend, rows in results.get("round_trips", {}).items():
        lines.append("")
        lines.append(f"Round trips to {backend} per request (counted on the wire, "
                     "bench/pg_wire.py; BEGIN/COMMIT/ROLLBACK included):")
        for endpoint, row in rows.items():
            lines.append(f"  {endpoint:24} {row['trips']:5.2f}  (BEGIN {row['begin']:.2f}, "
                         f"COMMIT {row['commit']:.2f}, ROLLBACK {row['rollback']:.2f})")
    lines.append("")
    lines.append("Targets:")
    for check in results["targets"]:
        lines.append(f"  [{'met' if check['met'] else 'MISSED'}] {check['setup']}: "
                     f"{check['target']}: {check['value']}")
    return "\n".join(lines)


def plot(results, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing (pip install -e '.[bench]'): no plot")
        return None
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for ax, endpoint in zip(axes, ("new_contact", "dispositionOptions")):
        floor = results["floor"]
        xs = [int(c) for c in floor]
        ax.plot(xs, [floor[str(c)]["p50_ms"] for c in xs], "k--", marker="o", label="HTTP floor")
        for name, setup in results["setups"].items():
            cells = setup["endpoints"].get(endpoint, {})
            cs = sorted(int(c) for c in cells)
            if len(cs) < 3:
                continue
            ax.plot(cs, [cells[str(c)]["p50_ms"] for c in cs], marker="o", label=name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("concurrent clients (keep-alive)")
        ax.set_ylabel("median latency (ms)")
        ax.set_title(f"{PATHS[endpoint]}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Median latency against concurrency (wrk, median of "
                 f"{results['options']['repeats']} runs, {results['machine']['cpus']} CPUs)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


# ------------------------------------------------------------------------------ main

def scale_label(n):
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, one run per figure")
    parser.add_argument("--backends", default=None, help="sqlite,postgresql (default: both when reachable)")
    parser.add_argument("--servers", default="gevent,gunicorn")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--duration", type=int, default=None, help="seconds per wrk run")
    parser.add_argument("--small", type=int, default=None, help="contacts of the small scale")
    parser.add_argument("--large", type=int, default=None, help="contacts of the large scale (0: skip)")
    parser.add_argument("--large-backends", default="sqlite",
                        help="backends measured at the large scale too (PostgreSQL's "
                        "million-row import alone takes minutes: add it with sqlite,postgresql)")
    parser.add_argument("--endpoints", default=",".join(ENDPOINTS),
                        help="hot paths to measure (default: all)")
    parser.add_argument("--concurrency", default=None,
                        help="client counts (default 1,10,50,100,200; --quick 1,10,50,200)")
    parser.add_argument("--memory-requests", type=int, default=None)
    parser.add_argument("--skip-memory", action="store_true", help="no memory run")
    parser.add_argument("--memory-seconds", type=int, default=None,
                        help="upper bound on the memory run's duration")
    parser.add_argument("--out", default=os.path.join(RESULTS, "api.json"))
    parser.add_argument("--from-json", metavar="PATH",
                        help="measure nothing: print the table of a results file again")
    opts = parser.parse_args()
    if opts.from_json:
        with open(opts.from_json) as handle:
            results = json.load(handle)
        results["targets"] = targets(results)
        print(table(results))
        return
    # SIGTERM unwinds like Ctrl-C, so every server is stopped and every database dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    quick = opts.quick
    opts.repeats = opts.repeats or (1 if quick else 3)
    opts.duration = opts.duration or (1 if quick else 2)
    opts.small = opts.small or 1000
    opts.large = opts.large if opts.large is not None else (20_000 if quick else 1_000_000)
    opts.memory_requests = opts.memory_requests or (10_000 if quick else 100_000)
    opts.memory_seconds = opts.memory_seconds or (30 if quick else 400)
    opts.concurrency = ([int(c) for c in opts.concurrency.split(",")] if opts.concurrency
                        else [1, 10, 50, 200] if quick else [1, 10, 50, 100, 200])
    opts.endpoints = [e for e in opts.endpoints.split(",") if e]
    unknown = set(opts.endpoints) - set(ENDPOINTS)
    if unknown:
        parser.error(f"unknown endpoints {sorted(unknown)}; known: {', '.join(ENDPOINTS)}")
    backends = (opts.backends.split(",") if opts.backends
                else ["sqlite"] + (["postgresql"] if pg_reachable() else []))
    servers = opts.servers.split(",")
    ensure_wrk()
    os.makedirs(os.path.dirname(opts.out), exist_ok=True)
    started = time.monotonic()

    results = {"command": "python " + " ".join(["bench/api_bench.py"] + sys.argv[1:]),
               "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
                           "platform": platform.platform()},
               "options": {"large_backends": opts.large_backends, "repeats": opts.repeats, "duration_s": opts.duration,
                           "concurrency": opts.concurrency, "small": opts.small, "large": opts.large,
                           "memory_requests": opts.memory_requests},
               "paths": PATHS, "floor": {}, "setups": {}, "imports": {}, "memory": {},
               "round_trips": {}}
    with tempfile.TemporaryDirectory(prefix="oml-api-bench-") as tmpdir:
        log("floor:")
        results["floor"] = floor_figures(opts, tmpdir)
        for backend in backends:
            scales = [(opts.small, scale_label(opts.small), True)]
            if opts.large and (quick or backend in opts.large_backends.split(",")):
                scales.append((opts.large, scale_label(opts.large), False))
            for n_contacts, label, full_set in scales:
                # enough extra campaigns that every disposition request gets a fresh pair
                extra = max(1, min(400, 200_000 // n_contacts + 1))
                with throwaway_database(backend, tmpdir, f"{backend}_{label}") as db_url:
                    log(f"{backend} {n_contacts:,} contacts: provisioning and importing")
                    seconds = prepare(db_url, tmpdir, n_contacts, extra)
                    if n_contacts >= opts.large:
                        results["imports"][backend] = {"rows": n_contacts,
                                                       "seconds": round(seconds, 2)}
                    low, high, count = contact_id_range(db_url)
                    assert count == n_contacts and high - low + 1 == n_contacts, (low, high, count)
                    cursors = {endpoint: Cursor() for endpoint in INDEXED}
                    updates = seed_updates(db_url, tmpdir, low, extra)
                    if backend == "postgresql" and full_set:
                        log(f"  round trips ({backend}):")
                        results["round_trips"][backend] = round_trips(
                            opts, db_url, tmpdir, low, n_contacts, cursors, updates)
                    for kind in (servers if full_set else ["gevent"]):
                        name = f"{kind}/{backend}/{label}"
                        log(f"  {name}:")
                        setup = measure_server(opts, kind, db_url, tmpdir, full_set, low,
                                               n_contacts, cursors, updates)
                        setup["scale"] = "small" if full_set else "large"
                        setup["contacts_at_start"] = n_contacts
                        setup["contacts_at_end"] = contact_id_range(db_url)[2]
                        results["setups"][name] = setup
                    if full_set and backend == backends[0] and not opts.skip_memory:
                        log(f"  memory ({backend}):")
                        results["memory"][f"gevent/{backend}"] = memory_run(opts, db_url, tmpdir)
    results["ratios"] = ratios(results)
    results["targets"] = targets(results)
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    with open(opts.out, "w") as handle:
        json.dump(results, handle, indent=2)
    png = plot(results, os.path.join(os.path.dirname(opts.out), "api_latency.png"))
    print(table(results))
    print(f"\nwritten: {opts.out}" + (f", {png}" if png else "") +
          f" ({results['elapsed_s']:.0f} s)")


if __name__ == "__main__":
    main()
