#!/usr/bin/env python
"""Calls benchmark: click-to-call through the real server vs the same flow over bare ARI.

One run starts its own lab Asterisk (own ports), a SIPp "PSTN" UAS behind the trunk and one
SIPp UAS answering for every agent (both stream G.711a), a database (PostgreSQL when one
answers on 127.0.0.1:5432, else SQLite: printed and stored) provisioned with N agents, and the
real server (`oml-server run`, API + engine in one gevent process). Agents get their SIP
credentials from the API (GET /api/v1/sip/credentials/agent/, which pushes them to Asterisk)
and REGISTER them with SIPp.

For each concurrency level C, repeated --repeats times, alternately:
  engine: C agents call makeCall at a steady start rate; every call is held until all C are
          bridged (so C calls are bridged at once) plus --hold s, then hangupCall.
  bare:   bench/bare_ari_click_to_call.py's Call (same flow: agent originated into the app,
          bridge + tone:ring, contact originated into the app and added on answer) on another
          app name against the same Asterisk and the same registered agents; no HTTP, no DB.
Setup latency:
  engine: makeCall request sent (client wall clock) -> `bridged_at` of the call row, which the
          engine writes when the contact's ChannelEnteredBridge arrives (the agent is already
          in the bridge): both legs bridged. Same host, same clock. The bench reads the row from
          the database itself (BridgedWatcher), never through the server: the server's CPU
          counts only what a real client causes (makeCall, hangupCall) and the engine's work.
          `bridged_at - created_at` (server side only) is reported too.
  bare:   originate request -> both ChannelEnteredBridge events received.
Both sides detect "bridged" the same way, from their own flow's ChannelEnteredBridge events,
and the barrier that holds a run's calls until all are bridged polls nothing (each call
arrives when its own driver saw it bridged): the bare script's CPU counts only its flow (its
requests, its events, its teardown up to both ChannelDestroyed), not the bench's.
After each run: failures (must be 0), channels and bridges left in Asterisk (must be 0),
non-final call rows (must be 0); engine CPU per call (server process /proc/<pid>/stat delta
over the run / calls), Asterisk CPU per call; the server's RSS after start and after every
level (the one after >= 1,000 calls is the memory figure).

Every figure is the median over the repeats; every ratio engine/bare compares runs of the same
process at the same level. Output: a table on stdout, bench/results/calls.json,
bench/results/calls_latency.png.

    .venv/bin/python bench/calls_bench.py            # full (~5-8 min on 2 cores)
    .venv/bin/python bench/calls_bench.py --quick    # smoke (~1 min)
    .venv/bin/python bench/calls_bench.py --split --levels 1,100 --memory-calls 0  # two processes
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402
import gevent.queue  # noqa: E402
import requests  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
sys.path.insert(0, HERE)
sys.path.insert(0, REPO)

import lab as labmod  # noqa: E402
import bare_ari_click_to_call as bare  # noqa: E402
from conftest import PASSWORD, Server, free_tcp_port  # noqa: E402

RESULTS = os.path.join(HERE, "results")
PG_ADMIN_URL = os.environ.get(
    "BENCH_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


# -- measurements -----------------------------------------------------------------------------

def percentile(values, p):
    return bare.percentile(values, p) if values else None


def cpu_seconds(pid):
    """CPU time of a process: the sum of its threads' run time in /proc/<pid>/task/*/schedstat
    (nanoseconds; /proc/<pid>/stat counts 10 ms ticks, a third of one call's CPU). A thread
    that exits during a run takes its time with it; the server's threads (the password-hash
    pool, gevent's resolver) live as long as the process."""
    try:
        total = 0
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        return bare.cpu_seconds(pid)


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return None


def median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 1) if values else None


# -- database ---------------------------------------------------------------------------------

def pick_database(workdir, want):
    """(url, kind, cleanup): a throw-away PostgreSQL database when reachable, else SQLite."""
    if want in ("auto", "postgresql"):
        try:
            import sqlalchemy as sa
            admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
            name = f"oml_calls_bench_{os.getpid()}"
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name

            def drop():
                with admin.connect() as conn:
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
            return url, "postgresql", drop
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
            if want == "postgresql":
                raise
            print(f"PostgreSQL not reachable ({type(exc).__name__}): using SQLite")
    return "sqlite:///" + os.path.join(workdir, "bench.sqlite3"), "sqlite", lambda: None


def provision(database_url, agents):
    """Migrate and create `agents` agent users in one manual campaign. Returns
    (campaign_id, [(username, agent_id, ext)])."""
    from flask_migrate import upgrade

    from oml_server import create_app
    from oml_server.extensions import db
    from oml_server.models import Campaign, ContactDatabase
    from oml_server.services import users

    from oml_server import secrets_file
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "ARI_ENABLED": False,
                      "TESTING": True, "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
                      **secrets_file.generate()})
    with app.app_context():
        upgrade()
        created = [users.create_user(f"bench{i:03d}", PASSWORD, "Agente") for i in range(agents)]
        # Logged in over and over beside the calls (--logins): a production hash (scrypt).
        from werkzeug.security import generate_password_hash
        users.create_user("bench-admin", PASSWORD, "Administrador")  # --dead-crm's webhook
        login_user = users.create_user("bench-login", PASSWORD, "Supervisor")
        login_user.password_hash = generate_password_hash(
            PASSWORD, method=os.environ.get("OML_BENCH_LOGIN_HASH", "scrypt"))
        db.session.flush()
        database = ContactDatabase(name="bench", columns=["TELEFONO"], main_phone="TELEFONO",
                                   other_phones=[], external_id_column=None)
        campaign = Campaign(name="bench", type="manual", state="active", database=database,
                            allow_duplicate_phones=True)
        campaign.agents = [u.agent for u in created]
        db.session.add_all([database, campaign])
        db.session.commit()
        out = [(u.username, u.agent.id, u.agent.sip_extension) for u in created]
        campaign_id = campaign.id
        db.session.remove()
        db.engine.dispose()
    return campaign_id, out


def ended_wrongly(database_url, call_ids):
    """Calls hung up by hangupCall must end as (ended, hangup_requested)."""
    import sqlalchemy as sa
    if not call_ids:
        return []
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, state, reason FROM calls WHERE id IN :ids")
                                .bindparams(sa.bindparam("ids", expanding=True)),
                                {"ids": list(call_ids)}).all()
    finally:
        engine.dispose()
    return [f"call {r[0]} ended as {r[1]}/{r[2]}" for r in rows
            if (r[1], r[2]) != ("ended", "hangup_requested")]


def live_rows(database_url):
    import sqlalchemy as sa
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg2://", 1))
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(
                "SELECT count(*) FROM calls WHERE state NOT IN ('ended', 'failed')")).scalar()
    finally:
        engine.dispose()


# -- split deployment -------------------------------------------------------------------------

class SplitServer(Server):
    """Two processes: `oml-server engine` (events, flows) and `oml-server run --no-engine`.
    `pids` are both; CPU and RSS figures add them up."""

    def start(self):
        self._engine_log = open(os.path.join(os.path.dirname(self.log_path), "engine.log"), "a")
        self.engine_proc = subprocess.Popen(
            [os.path.join(REPO, ".venv", "bin", "oml-server"), "engine"], env=self.env, cwd=REPO,
            stdin=subprocess.DEVNULL, stdout=self._engine_log, stderr=subprocess.STDOUT)
        labmod.wait_until(lambda: "connected to ARI" in open(self._engine_log.name).read(), 20,
                          "engine connected", interval=0.05)
        self._log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [os.path.join(REPO, ".venv", "bin", "oml-server"), "run", "--no-engine",
             "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT)
        labmod.wait_until(self._healthy, 20, "API worker healthy", interval=0.05)
        gevent.sleep(1)  # the engine's after-connect work (push, reconcile, presence)
        return self

    def _healthy(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"API worker exited ({self.proc.returncode}):\n{self.log()}")
        try:
            return self.http.get(self.url + "/api/v1/health/", timeout=1).json()["ari"] == "ok"
        except (requests.RequestException, ValueError, KeyError):
            return False

    @property
    def pids(self):
        return [self.proc.pid, self.engine_proc.pid]

    def stop(self):
        super().stop()
        proc = getattr(self, "engine_proc", None)
        if proc is not None and proc.poll() is None:
            proc.send_signal(2)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if getattr(self, "_engine_log", None) is not None:
            self._engine_log.close()


def production_settings(env, agents):
    """The server as deployed, not as the integration suite runs it: that suite's sweep, worker
    idle limit and CRM retry base are aggressive on purpose (a CRM retry base of 0.3 s made the
    delivery sender poll five times a second, where production's 2 s base polls once: about
    4 ms of an idle server's CPU a second, charged to every call). The per-agent makeCall limit
    (10 a minute) guards against a runaway CRM; the benches place more than that on purpose."""
    for name in ("CRM_RETRY_BASE_SECONDS", "CRM_RETRY_MAX_SECONDS"):
        env.pop(name, None)
    env.update(ENGINE_SWEEP_SECONDS="30", ENGINE_IDLE_SECONDS="600",
               AGENT_ANSWER_TIMEOUT="15", CONTACT_ANSWER_TIMEOUT="15", TRANSFER_TIMEOUT="15",
               ARI_POOL_SIZE=str(agents + 20), MAKECALL_MAX_PER_WINDOW="1000000")


def server_pids(server):
    return getattr(server, "pids", None) or [server.proc.pid]


def server_cpu(server):
    return sum(cpu_seconds(pid) for pid in server_pids(server))


def py_spy(server, out, rate, *more):
    """py-spy's command line sampling the server (its last process) into `out`, raw stacks."""
    return [os.path.join(REPO, ".venv", "bin", "py-spy"), "record", "--pid",
            str(server_pids(server)[-1]), "--format", "raw", "--rate", rate, "--nonblocking",
            *more, "-o", out]


def server_rss(server):
    return sum(rss_mb(pid) for pid in server_pids(server))


# -- the two drivers --------------------------------------------------------------------------

class Barrier:
    """Holds every call of a run until `n` of them are bridged (or failed), then lets them all
    go on: each call `arrive`s once its own driver saw it bridged. Nothing is polled: the bare
    script arrives when its own events say so, the engine's calls when the database says so
    (`BridgedWatcher`, a reader in this process, outside the server under test)."""

    def __init__(self, n):
        self.n, self.arrived = n, 0
        self.event = gevent.event.Event()

    def arrive(self):
        self.arrived += 1
        if self.arrived >= self.n:
            self.event.set()

    def wait(self, timeout):
        self.event.wait(timeout)


class BridgedWatcher:
    """Tells each engine call when its row says bridged (or final) by reading the calls table
    directly, one SELECT for every pending call every `interval` s: the server under test does
    no work for the bench (a client's GET /calls/<id> cost it ~7 ms of CPU per call). The
    latency comes from the row's bridged_at (written by the engine when the contact's
    ChannelEnteredBridge arrives), not from when this reads it."""

    def __init__(self, database_url, interval=0.02):
        import sqlalchemy as sa
        self.engine = sa.create_engine(
            database_url.replace("postgresql://", "postgresql+psycopg2://", 1))
        self.query = sa.text("SELECT id, state, created_at, bridged_at FROM calls "
                             "WHERE id IN :ids").bindparams(sa.bindparam("ids", expanding=True))
        self.pending = {}  # call id -> AsyncResult
        self.interval = interval
        self.work = gevent.event.Event()  # no wake-ups while nothing is pending (bare runs)
        self.poller = gevent.spawn(self._poll)

    def wait(self, call_id, timeout):
        """(state, created_at, bridged_at) once bridged or final, or None after `timeout`."""
        result = self.pending[call_id] = gevent.event.AsyncResult()
        self.work.set()
        try:
            return result.get(timeout=timeout)
        except gevent.Timeout:
            return None
        finally:
            self.pending.pop(call_id, None)

    def _poll(self):
        while True:
            self.work.wait()
            gevent.sleep(self.interval)
            if not self.pending:
                self.work.clear()
                continue
            with self.engine.connect() as conn:
                rows = conn.execute(self.query, {"ids": list(self.pending)}).all()
            for call_id, state, created_at, bridged_at in rows:
                if state in ("bridged", "ended", "failed") and call_id in self.pending:
                    self.pending[call_id].set((state, _aware(created_at), _aware(bridged_at)))

    def stop(self):
        self.poller.kill(block=False)
        self.engine.dispose()


def _aware(moment):
    from datetime import timezone
    if moment is None or isinstance(moment, datetime):
        return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return _aware(datetime.fromisoformat(moment))


class EngineAgent:
    def __init__(self, server, username, agent_id, ext, campaign_id):
        self.server, self.username, self.agent_id, self.ext = server, username, agent_id, ext
        self.campaign_id = campaign_id
        self.http = requests.Session()
        self.http.trust_env = False
        self.token = server.token(username)
        self.headers = {"Authorization": f"Bearer {self.token}"}

    def credentials(self):
        r = self.http.get(self.server.url + "/api/v1/sip/credentials/agent/",
                          headers=self.headers, timeout=10)
        body = r.json()
        assert body.get("status") == "OK", body
        return self.ext, body["sip_user"], body["sip_password"]

    def call(self, number, barrier, watcher, hold, result):
        """One click-to-call; appends to result['ms'|'server_ms'|'failures']. What the server
        sees is what a real client causes: makeCall, then hangupCall."""
        sent = time.time()
        try:
            r = self.http.post(self.server.url + "/api/v1/makeCall/", headers=self.headers,
                               json={"idCampaign": self.campaign_id, "idAgent": self.agent_id,
                                     "phone": number}, timeout=30)
            body = r.json()
        except (requests.RequestException, ValueError) as exc:
            result["failures"].append(f"{self.username}: makeCall {exc}")
            barrier.arrive()
            return
        if body.get("status") != "OK":
            result["failures"].append(f"{self.username}: makeCall {body}")
            barrier.arrive()
            return
        call_id = body["callId"]
        seen = watcher.wait(call_id, 60)
        barrier.arrive()
        if seen is None or seen[0] != "bridged":
            result["failures"].append(f"{self.username}: not bridged: {seen}")
        else:
            _state, created_at, bridged_at = seen
            result["ms"].append((bridged_at.timestamp() - sent) * 1000)
            result["server_ms"].append((bridged_at - created_at).total_seconds() * 1000)
        barrier.wait(60)  # every call of the run bridged at once
        gevent.sleep(hold)
        try:
            r = self.http.post(self.server.url + "/api/v1/hangupCall/", headers=self.headers,
                               timeout=30)
            if r.json() != {"status": "OK"}:
                result["failures"].append(f"{self.username}: hangupCall {r.text}")
            result["call_ids"].append(call_id)
        except (requests.RequestException, ValueError) as exc:
            result["failures"].append(f"{self.username}: hangupCall {exc}")


def run_engine(ctx, level, calls, rate, hold):
    """`calls` makeCalls by the first `level` agents at `rate`/s; returns the run's figures."""
    agents = ctx["agents"][:level]
    result = {"ms": [], "server_ms": [], "failures": [], "call_ids": []}
    lab = ctx["lab"]
    barrier = Barrier(min(level, calls)) if level > 1 else None
    watcher = ctx["watcher"]
    free = gevent.queue.Queue()
    for a in agents:
        free.put(a)
    server, ast_pid = ctx["server"], ctx["asterisk_pid"]
    cpu0, ast0, wall0 = server_cpu(server), cpu_seconds(ast_pid), time.monotonic()
    greenlets = []

    def one(i):
        agent = free.get()
        try:
            agent.call(f"555{ctx['seq']:04d}{i:04d}", barrier or Barrier(1), watcher, hold,
                       result)
        finally:
            free.put(agent)

    for i in range(calls):
        greenlets.append(gevent.spawn(one, i))
        if rate:  # 0: a burst, every request sent at the same moment
            gevent.sleep(1.0 / rate)
    gevent.joinall(greenlets)
    left = wait_empty(lab)
    cpu, ast_cpu = server_cpu(server) - cpu0, cpu_seconds(ast_pid) - ast0
    wall = time.monotonic() - wall0
    ctx["seq"] += 1
    ctx["engine_calls"] += calls
    result["failures"] += ended_wrongly(ctx["database_url"], result["call_ids"])
    res = summarize(result["ms"], result["failures"], calls, cpu, ast_cpu, wall, left,
                    server_ms=result["server_ms"], live_rows=live_rows(ctx["database_url"]))
    # The same less what the idle server spends in that time (its polls: deliveries, after-call
    # work, heartbeat), which the bare script has no counterpart of. The headline stays gross.
    res["cpu_ms_per_call_net"] = round(
        max(0.0, cpu - ctx.get("idle_cpu_per_s", 0.0) * wall) * 1000 / max(1, calls), 2)
    return res


def run_bare(ctx, level, calls, rate, hold):
    """The same flow over bare ARI (another app name, same Asterisk, same agents)."""
    exts = [a.ext for a in ctx["agents"][:level]]
    dispatcher, ari = ctx["bare_dispatcher"], ctx["bare_ari"]
    free = gevent.queue.Queue()
    for e in exts:
        free.put(e)
    latencies, failures = [], []
    barrier = Barrier(min(level, calls)) if level > 1 else None
    me = os.getpid()
    cpu0, ast0, wall0 = cpu_seconds(me), cpu_seconds(ctx["asterisk_pid"]), time.monotonic()

    def one(i):
        ext = free.get()
        call = bare.Call(ari, dispatcher, ext, f"556{ctx['seq']:04d}{i:04d}", "ringtone", 15)
        try:
            try:
                latencies.append(call.setup() * 1000)
            finally:
                if barrier is not None:
                    barrier.arrive()
            if barrier is not None:
                barrier.wait(60)
            gevent.sleep(hold)
        except (bare.CallFailed, bare.AriError) as exc:
            failures.append(f"{ext}: {exc}")
        finally:
            failures.extend(f"{ext}: {p}" for p in call.teardown())
            free.put(ext)

    greenlets = []
    for i in range(calls):
        greenlets.append(gevent.spawn(one, i))
        if rate:
            gevent.sleep(1.0 / rate)
    gevent.joinall(greenlets)
    cpu = cpu_seconds(me) - cpu0
    ast_cpu = cpu_seconds(ctx["asterisk_pid"]) - ast0
    wall = time.monotonic() - wall0
    ctx["seq"] += 1
    left = wait_empty(ctx["lab"])
    return summarize(latencies, failures, calls, cpu, ast_cpu, wall, left)


def wait_empty(lab, timeout=10.0):
    try:
        labmod.wait_until(lambda: not lab.ari.channels() and not lab.ari.bridges(), timeout,
                          "leftovers", interval=0.1)
    except TimeoutError:
        pass
    return lab.leftovers()


def summarize(ms, failures, calls, cpu, ast_cpu, wall, left, server_ms=None, live_rows=None):
    out = {"calls": calls, "ok": len(ms), "failures": len(failures),
           "failure_samples": failures[:5],
           "p50_ms": round(percentile(ms, 50), 1) if ms else None,
           "p95_ms": round(percentile(ms, 95), 1) if ms else None,
           "max_ms": round(max(ms), 1) if ms else None,
           "cpu_ms_per_call": round(cpu * 1000 / max(1, calls), 2),
           "asterisk_cpu_ms_per_call": round(ast_cpu * 1000 / max(1, calls), 2),
           "wall_s": round(wall, 2),
           "leftover_channels": len(left["channels"]), "leftover_bridges": len(left["bridges"])}
    if server_ms is not None:
        out["server_p50_ms"] = round(percentile(server_ms, 50), 1) if server_ms else None
        out["server_p95_ms"] = round(percentile(server_ms, 95), 1) if server_ms else None
    if live_rows is not None:
        out["non_final_rows"] = live_rows
    return out


# -- main -------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke: levels 1,5,10, one repeat")
    ap.add_argument("--levels", default=None, help="comma-separated concurrency levels")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--rate", type=float, default=20.0, help="call starts per second")
    ap.add_argument("--hold", type=float, default=None, help="s held after all C are bridged")
    ap.add_argument("--single-calls", type=int, default=None,
                    help="calls per repeat at level 1 (one at a time)")
    ap.add_argument("--memory-calls", type=int, default=None,
                    help="engine calls before the final RSS reading (topped up at level 100)")
    ap.add_argument("--profile", default=None, metavar="FILE",
                    help="py-spy the server during the engine runs (collapsed stacks to FILE)")
    ap.add_argument("--idle-profile", default=None, metavar="FILE",
                    help="py-spy the idle server for 20 s after the warm-up (collapsed stacks)")
    ap.add_argument("--database", choices=("auto", "postgresql", "sqlite"), default="auto")
    ap.add_argument("--split", action="store_true",
                    help="split deployment: `oml-server engine` + one API worker (two "
                         "processes; CPU and RSS are their sum)")
    ap.add_argument("--bursts", default=None,
                    help="comma-separated burst sizes: N makeCalls sent at the same moment")
    ap.add_argument("--logins", type=float, default=20.0,
                    help="logins per second beside 20 steady calls (0: skip that section)")
    ap.add_argument("--dead-crm", action="store_true",
                    help="20 steady calls without and with a webhook on every event to a dead "
                         "CRM (issue 11: ratio <= 1.1); paired rounds, the order alternating")
    ap.add_argument("--dead-crm-mode", choices=("refused", "silent"), default="refused",
                    help="refused: nobody listens; silent: connections are accepted by the "
                         "kernel and never answered (every request waits CRM_TIMEOUT_SECONDS)")
    ap.add_argument("--out", default=RESULTS)
    args = ap.parse_args()
    levels = [int(x) for x in (args.levels or ("1,5,10" if args.quick else "1,50,100,200"))
              .split(",")]
    repeats = args.repeats or (1 if args.quick else 3)
    hold = args.hold if args.hold is not None else (0.5 if args.quick else 2.0)
    single = args.single_calls or (5 if args.quick else 10)
    memory_calls = args.memory_calls if args.memory_calls is not None else (
        0 if args.quick else 1000)
    bursts = [int(x) for x in (args.bursts or ("20" if args.quick else "20,100")).split(",")
              if x and int(x) > 0]  # --bursts 0: none

    missing = labmod.missing_programs()
    if missing:
        print(f"lab not installed ({', '.join(missing)}): asterisk-config/lab.sh install")
        return 2
    workdir = tempfile.mkdtemp(prefix="oml-calls-bench-")
    n_agents = max(levels + bursts + [20])
    env = os.environ  # OML_LAB_*_PORT when set (engineers sharing a machine), else free ports
    lab = labmod.Lab(ari_port=int(env.get("OML_LAB_ARI_PORT") or free_tcp_port()),
                     sip_port=int(env.get("OML_LAB_SIP_PORT") or labmod.free_udp_port()),
                     trunk_port=int(env.get("OML_LAB_TRUNK_PORT") or labmod.free_udp_port()),
                     app=f"oml-bench-{os.getpid()}",
                     rtp_start=40000, rtp_end=49999)
    database_url, db_kind, drop_db = pick_database(workdir, args.database)
    print(f"database: {db_kind}")
    trunk = phone = server = None
    bare_stream = None
    try:
        lab.start()
        trunk = labmod.SippPeer("trunk_uas.xml", port=lab.trunk_port).start()
        phone = labmod.SippPeer("agent_answer.xml").start()
        t = time.monotonic()
        campaign_id, agents = provision(database_url, n_agents)
        server = (SplitServer if args.split else Server)(lab, database_url, workdir)
        production_settings(server.env, agents=n_agents)
        server.start()
        engine_agents = [EngineAgent(server, u, aid, ext, campaign_id) for u, aid, ext in agents]
        creds = [a.credentials() for a in engine_agents]  # the API pushes them to Asterisk
        lab.register(creds, phone.port, parallel=20)
        for a in engine_agents:
            lab.wait_endpoint_state(a.ext, "online", timeout=10)
        print(f"{n_agents} agents provisioned, credentials from the API, registered "
              f"({time.monotonic() - t:.1f} s)")
        asterisk_pid = int(open(os.path.join(lab.dir, "asterisk.pid")).read())
        bare_app = lab.app + "-bare"
        bare_ari = labmod.AriClient(lab.ari_url, lab.user, lab.password, bare_app,
                                    pool_size=n_agents + 4)
        bare_stream = labmod.AriEventStream(lab.ari_url, lab.user, lab.password,
                                            bare_app).connect()
        dispatcher = bare.Dispatcher(bare_stream)
        reader = gevent.spawn(dispatcher.run)
        ctx = {"agents": engine_agents, "server": server, "lab": lab, "asterisk_pid": asterisk_pid,
               "database_url": database_url, "bare_ari": bare_ari, "bare_dispatcher": dispatcher,
               "seq": 0, "engine_calls": 0, "watcher": BridgedWatcher(database_url)}

        # Warm-up (not measured): imports, pools, first JIT-less paths of both drivers.
        run_engine(ctx, min(5, n_agents), min(5, n_agents), args.rate, 0.2)
        run_bare(ctx, min(5, n_agents), min(5, n_agents), args.rate, 0.2)
        ctx["engine_calls"] = 0
        gevent.sleep(1)
        idle0, t0 = server_cpu(server), time.monotonic()
        gevent.sleep(5)
        ctx["idle_cpu_per_s"] = (server_cpu(server) - idle0) / (time.monotonic() - t0)
        print(f"idle server: {ctx['idle_cpu_per_s'] * 1000:.1f} ms of CPU per second", flush=True)
        if args.idle_profile:
            subprocess.run(py_spy(server, args.idle_profile, "500", "--duration", "20"),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        rss_start = server_rss(server)
        memory = [{"engine_calls": 0, "rss_mb": round(rss_start, 1)}]

        profiler = None
        if args.profile:
            profiler = subprocess.Popen(
                py_spy(server, args.profile, os.environ.get("OML_BENCH_PROFILE_RATE", "200")),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            gevent.sleep(1)
        runs = {}
        for level in levels:
            calls = single if level == 1 else level
            rate = 3.0 if level == 1 else args.rate
            for r in range(repeats):
                for driver, fn in (("engine", run_engine), ("bare", run_bare)):
                    res = fn(ctx, level, calls, rate, hold if level > 1 else 0.3)
                    runs.setdefault(level, {}).setdefault(driver, []).append(res)
                    print(f"C={level:<4} {driver:6} run {r + 1}: p50 {res['p50_ms']} ms "
                          f"p95 {res['p95_ms']} ms, {res['failures']} failed, leftovers "
                          f"{res['leftover_channels']}/{res['leftover_bridges']}, cpu "
                          f"{res['cpu_ms_per_call']} ms/call"
                          + (f" (net of idle {res['cpu_ms_per_call_net']})"
                             if "cpu_ms_per_call_net" in res else "")
                          + (f", non-final rows {res['non_final_rows']}"
                             if "non_final_rows" in res else ""), flush=True)
                    for f in res["failure_samples"]:
                        print("   ", f)
            memory.append({"engine_calls": ctx["engine_calls"],
                           "rss_mb": round(server_rss(server), 1)})
        burst_runs = {}
        for size in bursts:
            for r in range(repeats):
                for driver, fn in (("engine", run_engine), ("bare", run_bare)):
                    res = fn(ctx, size, size, 0, hold)
                    burst_runs.setdefault(size, {}).setdefault(driver, []).append(res)
                    print(f"burst {size:<4} {driver:6} run {r + 1}: p50 {res['p50_ms']} ms "
                          f"p95 {res['p95_ms']} ms max {res['max_ms']} ms, {res['failures']} "
                          f"failed, cpu {res['cpu_ms_per_call']} ms/call"
                          + (f" (net of idle {res['cpu_ms_per_call_net']})"
                             if "cpu_ms_per_call_net" in res else ""), flush=True)
        login_runs = {}
        if args.logins:
            for r in range(repeats):
                # Which goes first alternates: a fixed order puts the machine's drift in the ratio.
                for beside in ((False, True) if r % 2 == 0 else (True, False)):
                    stop = login_load(server, args.logins) if beside else None
                    res = run_engine(ctx, 20, 20, args.rate, hold)
                    done = stop() if stop is not None else 0
                    login_runs.setdefault(beside, []).append(res)
                    print(f"20 calls {'with' if beside else 'without'} {args.logins:g} logins/s "
                          f"run {r + 1}: p50 {res['p50_ms']} ms p95 {res['p95_ms']} ms"
                          + (f" (logins: {done})" if beside else ""), flush=True)
        dead_crm_runs = {}
        if args.dead_crm:
            admin = requests.Session()
            admin.trust_env = False
            admin.headers["Authorization"] = f"Bearer {server.token('bench-admin')}"
            silent = None
            if args.dead_crm_mode == "silent":   # listens, never accepts: requests time out
                silent = socket.socket()
                silent.bind(("127.0.0.1", 0))
                silent.listen(1024)
            for r in range(repeats):
                # Alternate which goes first: a machine shared with other work drifts, and a
                # fixed order would put the drift into the ratio.
                for dead in ((False, True) if r % 2 == 0 else (True, False)):
                    hook = None
                    if dead:  # every event of every call goes to a dead CRM
                        port = silent.getsockname()[1] if silent else free_tcp_port()
                        hook = admin.post(server.url + "/api/v1/webhooks/", timeout=10, json={
                            "url": f"http://127.0.0.1:{port}/oml", "events": "*"})
                        assert hook.status_code == 201, hook.text
                    res = run_engine(ctx, 20, 20, args.rate, hold)
                    if hook is not None:
                        admin.delete(f"{server.url}/api/v1/webhooks/{_hook_id(hook)}/", timeout=10)
                    dead_crm_runs.setdefault(dead, []).append(res)
                    print(f"20 calls {'with' if dead else 'without'} a dead CRM run {r + 1}: "
                          f"p50 {res['p50_ms']} ms p95 {res['p95_ms']} ms, server cpu "
                          f"{res['cpu_ms_per_call']} ms/call, {res['failures']} failed", flush=True)
                with_, without = dead_crm_runs[True][-1], dead_crm_runs[False][-1]
                print(f"  pair {r + 1}: p95 ratio {with_['p95_ms'] / without['p95_ms']:.2f}x, "
                      f"cpu/call ratio {with_['cpu_ms_per_call'] / without['cpu_ms_per_call']:.2f}x",
                      flush=True)
            if silent is not None:
                silent.close()
        while ctx["engine_calls"] < memory_calls:
            level = min(100, n_agents)
            run_engine(ctx, level, level, args.rate, 0.2)
            memory.append({"engine_calls": ctx["engine_calls"],
                           "rss_mb": round(server_rss(server), 1)})
        rss_end = server_rss(server)
        if profiler is not None:
            profiler.send_signal(2)  # SIGINT: py-spy writes its file and exits
            profiler.wait(timeout=30)

        table = []
        for level in levels:
            row = {"concurrency": level}
            for driver in ("engine", "bare"):
                rs = runs[level][driver]
                row[driver] = {k: median([x[k] for x in rs]) for k in
                               ("p50_ms", "p95_ms", "max_ms", "cpu_ms_per_call",
                                "asterisk_cpu_ms_per_call")}
                row[driver]["failures"] = sum(x["failures"] for x in rs)
                row[driver]["leftovers"] = sum(x["leftover_channels"] + x["leftover_bridges"]
                                               for x in rs)
                if driver == "engine":
                    row[driver]["cpu_ms_per_call_net"] = median(
                        [x["cpu_ms_per_call_net"] for x in rs])
                    row[driver]["server_p50_ms"] = median([x["server_p50_ms"] for x in rs])
                    row[driver]["server_p95_ms"] = median([x["server_p95_ms"] for x in rs])
                    row[driver]["non_final_rows"] = max(x["non_final_rows"] for x in rs)
            # Ratio per repeat (same process, same level, back to back), then the median.
            row["ratio_p50"] = median_ratio(runs[level], "p50_ms")
            row["ratio_p95"] = median_ratio(runs[level], "p95_ms")
            table.append(row)

        burst_table = []
        for size in bursts:
            row = {"burst": size}
            for driver in ("engine", "bare"):
                rs = burst_runs[size][driver]
                row[driver] = {k: median([x[k] for x in rs]) for k in
                               ("p50_ms", "p95_ms", "max_ms", "cpu_ms_per_call")}
                row[driver]["failures"] = sum(x["failures"] for x in rs)
            row["engine"]["cpu_ms_per_call_net"] = median(
                [x["cpu_ms_per_call_net"] for x in burst_runs[size]["engine"]])
            row["ratio_p95"] = median_ratio(burst_runs[size], "p95_ms")
            row["ratio_cpu"] = median_ratio(burst_runs[size], "cpu_ms_per_call")
            burst_table.append(row)
        logins = None
        if login_runs:
            logins = {"rate": args.logins,
                      "without_p95_ms": median([x["p95_ms"] for x in login_runs[False]]),
                      "with_p95_ms": median([x["p95_ms"] for x in login_runs[True]]),
                      "ratio_p95": round(statistics.median(
                          w["p95_ms"] / o["p95_ms"] for w, o in
                          zip(login_runs[True], login_runs[False]) if o["p95_ms"]), 2)}
        dead_crm = None
        if dead_crm_runs:
            pairs = list(zip(dead_crm_runs[True], dead_crm_runs[False]))
            dead_crm = {"mode": args.dead_crm_mode,
                        "without_p95_ms": median([x["p95_ms"] for x in dead_crm_runs[False]]),
                        "with_p95_ms": median([x["p95_ms"] for x in dead_crm_runs[True]]),
                        "pair_ratios_p95": [round(w["p95_ms"] / o["p95_ms"], 2)
                                            for w, o in pairs if o["p95_ms"]],
                        "ratio_p95": round(statistics.median(
                            w["p95_ms"] / o["p95_ms"] for w, o in pairs if o["p95_ms"]), 2),
                        "ratio_cpu": round(statistics.median(
                            w["cpu_ms_per_call"] / o["cpu_ms_per_call"] for w, o in pairs
                            if o["cpu_ms_per_call"]), 2)}
        report = {"database": db_kind, "bursts": burst_table,
                  "idle_cpu_ms_per_s": round(ctx["idle_cpu_per_s"] * 1000, 2), "logins_beside": logins,
                  "dead_crm": dead_crm, "deployment": "split" if args.split else "one process",
                  "levels": levels, "repeats": repeats, "rate": args.rate,
                  "hold_s": hold, "single_calls": single, "quick": args.quick,
                  "flow": "agent originated; bridge + tone:ring; contact originated into the "
                          "app and added on answer",
                  "measure": {"engine": "makeCall sent (client wall clock) -> bridged_at",
                              "bare": "originate sent -> both ChannelEnteredBridge"},
                  "table": table, "runs": {str(k): v for k, v in runs.items()},
                  "memory": {"rss_after_start_mb": round(rss_start, 1),
                             "rss_end_mb": round(rss_end, 1),
                             "engine_calls": ctx["engine_calls"], "samples": memory},
                  "target": target_verdict(table)}
        os.makedirs(args.out, exist_ok=True)
        name = ("calls_quick" if args.quick else "calls") + ("_split" if args.split else "")
        with open(os.path.join(args.out, f"{name}.json"), "w") as f:
            json.dump(report, f, indent=2)
        print_table(report)
        print_bursts(report)
        plot(report, os.path.join(args.out, f"{name}_latency.png"))
        reader.kill()
        ctx["watcher"].stop()
        ok = all(r["engine"]["failures"] == 0 and r["engine"]["leftovers"] == 0
                 and r["engine"]["non_final_rows"] == 0 for r in table)
        return 0 if ok else 1
    finally:
        if bare_stream is not None:
            bare_stream.close()
        if server is not None:
            server.stop()
        for peer in (phone, trunk):
            if peer is not None:
                peer.stop()
        lab.stop()
        drop_db()


def median_ratio(level_runs, key):
    ratios = [e[key] / b[key] for e, b in zip(level_runs["engine"], level_runs["bare"])
              if e[key] and b[key]]
    return round(statistics.median(ratios), 2) if ratios else None


def target_verdict(table):
    row = next((r for r in table if r["concurrency"] == 100), None)
    if row is None:
        return {"checked": False}
    met = (row["ratio_p50"] is not None and row["ratio_p50"] <= 1.25
           and row["engine"]["failures"] == 0 and row["engine"]["leftovers"] == 0)
    return {"checked": True, "ratio_p50_at_100": row["ratio_p50"],
            "ratio_p95_at_100": row["ratio_p95"], "met": met}


def print_table(report):
    print()
    print(f"Click-to-call setup ({report['deployment']}, database {report['database']}, "
          f"{report['repeats']} repeats, "
          f"median of each figure; ratio = engine / bare ARI in the same repeat)")
    head = ("C", "engine p50", "p95", "bare p50", "p95", "ratio p50", "ratio p95",
            "engine CPU/call", "bare CPU/call", "Asterisk CPU/call", "failed", "left", "rows")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in report["table"]:
        e, b = r["engine"], r["bare"]
        print(f"| {r['concurrency']} | {e['p50_ms']} ms | {e['p95_ms']} ms | {b['p50_ms']} ms | "
              f"{b['p95_ms']} ms | {r['ratio_p50']}x | {r['ratio_p95']}x | "
              f"{e['cpu_ms_per_call']} ms (net {e['cpu_ms_per_call_net']}) | "
              f"{b['cpu_ms_per_call']} ms | {e['asterisk_cpu_ms_per_call']} ms | {e['failures']}/{b['failures']} | "
              f"{e['leftovers']}/{b['leftovers']} | {e['non_final_rows']} |")
    m = report["memory"]
    print(f"Idle server: {report['idle_cpu_ms_per_s']} ms of CPU per second (net = the run's "
          f"server CPU less that rate x the run's wall time)")
    print(f"Server RSS: {m['rss_after_start_mb']} MB after start, {m['rss_end_mb']} MB after "
          f"{m['engine_calls']} calls; samples " +
          ", ".join(f"{s['engine_calls']}:{s['rss_mb']}" for s in m["samples"]))
    print(f"Target (engine within 1.25x of bare ARI at 100, 0 failures, 0 leftovers): "
          f"{report['target']}")


def _hook_id(answer):
    body = answer.json()
    return body.get("id") or (body.get("webhook") or {}).get("id")


def login_load(server, rate):
    """Start `rate` logins a second (a real scrypt check each) in a process of their own
    (bench/login_load.py says why); returns the function that stops them and answers what they
    did."""
    proc = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "login_load.py"), server.url, "--rate", str(rate),
         "--username", "bench-login"], stdout=subprocess.PIPE, text=True,
        env=dict(os.environ, OML_BENCH_LOGIN_PASSWORD=PASSWORD))
    proc.stdout.readline()  # "ready": the calls start once the logins do

    def stop():
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
        return out.strip()
    return stop


def print_bursts(report):
    if report.get("bursts"):
        print()
        print("Bursts: N makeCalls sent at the same moment (ratio = engine / bare, same repeat)")
        print("| N | engine p50 | p95 | max | bare p50 | p95 | ratio p95 | engine CPU/call | "
              "bare CPU/call | CPU ratio | failed |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in report["bursts"]:
            e, b = r["engine"], r["bare"]
            print(f"| {r['burst']} | {e['p50_ms']} ms | {e['p95_ms']} ms | {e['max_ms']} ms | "
                  f"{b['p50_ms']} ms | {b['p95_ms']} ms | {r['ratio_p95']}x | "
                  f"{e['cpu_ms_per_call']} ms (net {e['cpu_ms_per_call_net']}) | "
                  f"{b['cpu_ms_per_call']} ms | {r['ratio_cpu']}x | "
                  f"{e['failures']}/{b['failures']} |")
    dead = report.get("dead_crm")
    if dead:
        print(f"20 steady calls, setup p95 without / with a dead CRM webhook on every event: "
              f"{dead['without_p95_ms']} ms / {dead['with_p95_ms']} ms "
              f"(median of paired ratios {dead['ratio_p95']}x, pairs {dead['pair_ratios_p95']}; "
              f"goal <= 1.1x); server CPU per call ratio {dead['ratio_cpu']}x "
              f"({dead['mode']} CRM)")
    logins = report.get("logins_beside")
    if logins:
        print(f"20 steady calls, setup p95 without / with {logins['rate']:g} logins/s beside: "
              f"{logins['without_p95_ms']} ms / {logins['with_p95_ms']} ms "
              f"(ratio {logins['ratio_p95']}x; goal <= 1.2x)")


def plot(report, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no PNG (pip install matplotlib)")
        return
    levels = [r["concurrency"] for r in report["table"]]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for driver, style in (("engine", "o-"), ("bare", "s--")):
        for key, alpha in (("p50_ms", 1.0), ("p95_ms", 0.5)):
            ax.plot(levels, [r[driver][key] for r in report["table"]], style, alpha=alpha,
                    label=f"{'engine (makeCall)' if driver == 'engine' else 'bare ARI'} "
                          f"{key[:3]}")
    ax.set_xlabel("concurrent bridged calls")
    ax.set_ylabel("setup: request -> both legs bridged (ms)")
    ax.set_title(f"Click-to-call setup ({report['deployment']}, {report['database']}), "
                 f"median of {report['repeats']} runs")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
