"""No data lost under load: N clients write contacts and dispositions against the real
`oml-server run` while it is restarted gracefully once (SIGTERM → it finishes the requests in
flight → a new server starts on the same port). Every response is recorded; afterwards every
request answered with success must be in the database, and none answered otherwise (an error
status, a refused connection, a connection closed without an answer) may have left a row.

    .venv/bin/python bench/restart_under_load.py [--clients 20] [--duration 60] [--database URL]

`make restart-under-load` runs it for a minute on SQLite (and on PostgreSQL when one answers);
tests/integration/test_no_data_loss.py runs a 15-second version in `make test`.
Exit status 1 when anything was lost or phantom.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter

import requests
import urllib3

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))

import faultkit  # noqa: E402


class Client(threading.Thread):
    """One writer: alternately POST new_contact and new_contact/disposition, each with a key of
    its own (the contact's external id), until told to stop."""

    def __init__(self, index, url, token, world, stop):
        super().__init__(name=f"writer{index}", daemon=True)
        self.index, self.url, self.world, self.stop_event = index, url, world, stop
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.records = []  # (kind, key, outcome, t_start, t_end, detail)

    def run(self):
        seq = 0
        while not self.stop_event.is_set():
            seq += 1
            phone = f"351{self.index:03d}{seq:07d}"
            if seq % 2:
                key = f"c{self.index}-{seq}"
                self._send("contact", key, "/api/v1/new_contact/", 200,
                           {"idCampaign": self.world["campaign"], "TELEFONO": phone,
                            "NOMBRE": key, "id_ext": key})
            else:
                key = f"d{self.index}-{seq}"
                self._send("disposition", key, "/api/v1/new_contact/disposition/", 201,
                           {"idDispositionOption": self.world["option"], "phone": phone,
                            "idExternalContact": key, "comments": key})

    def _send(self, kind, key, path, ok_status, body):
        t0 = time.monotonic()
        try:
            r = self.http.post(self.url + path, json=body, timeout=20)
        except requests.ConnectionError as exc:
            outcome = "refused" if _refused(exc) else "no_answer"
            self.records.append((kind, key, outcome, t0, time.monotonic(), str(exc)[:200]))
            if outcome == "refused":
                time.sleep(0.01)  # the port is closed for a moment: do not spin
            return
        except requests.Timeout as exc:
            self.records.append((kind, key, "no_answer", t0, time.monotonic(), str(exc)[:200]))
            return
        t1 = time.monotonic()
        json_body = r.headers.get("Content-Type", "").startswith("application/json")
        if r.status_code == ok_status and json_body:
            outcome = "ok"
        else:
            outcome = f"http_{r.status_code}" + ("" if json_body else "_not_json")
        self.records.append((kind, key, outcome, t0, t1, r.text[:200]))


def _refused(exc) -> bool:
    """True when the TCP connection was never made (nothing can have been sent)."""
    seen = exc
    while seen is not None:
        if isinstance(seen, (urllib3.exceptions.NewConnectionError, ConnectionRefusedError)):
            return True
        reason = getattr(seen, "reason", None)
        seen = reason if reason is not None and reason is not seen else seen.__context__
    return False


def run(database_url: str, workdir: str, clients: int = 20, duration: float = 60.0,
        restart_at: float | None = None) -> dict:
    """Provision `database_url` (empty), run the load with one graceful restart, check the
    database. Returns the figures (see `format_report`)."""
    world = faultkit.provision_writers(database_url, agents=clients)
    server = faultkit.ApiServer(database_url, workdir)
    server.start()
    stop = threading.Event()
    try:
        http = requests.Session()
        http.trust_env = False
        tokens = []
        for name in world["usernames"]:
            r = http.post(server.url + "/api/v1/login",
                          json={"username": name, "password": faultkit.PASSWORD}, timeout=10)
            r.raise_for_status()
            tokens.append(r.json()["token"])
        workers = [Client(i, server.url, tokens[i], world, stop) for i in range(clients)]
        t_begin = time.monotonic()
        for w in workers:
            w.start()
        time.sleep(restart_at if restart_at is not None else duration / 3)
        t_sigterm = time.monotonic()
        old_pid = server.pid
        drain = server.terminate()
        t_exited = time.monotonic()
        boot = server.start()
        t_up = time.monotonic()
        time.sleep(max(0.0, duration - (time.monotonic() - t_begin)))
        stop.set()
        for w in workers:
            w.join(timeout=30)
        elapsed = time.monotonic() - t_begin
    finally:
        stop.set()
        server.terminate()
    records = [r for w in workers for r in w.records]
    contacts, disposed = faultkit.stored_keys(database_url)

    def stored(kind, key):
        return key in (contacts if kind == "contact" else disposed)

    outcomes = Counter(r[2] for r in records)
    lost = [r for r in records if r[2] == "ok" and not stored(r[0], r[1])]
    phantom = [r for r in records if r[2] != "ok" and (r[1] in contacts)]
    in_flight = [r for r in records if r[3] < t_sigterm < r[4]]
    return {
        "database": database_url.split(":", 1)[0].split("+")[0],
        "clients": clients, "seconds": round(elapsed, 1), "requests": len(records),
        "outcomes": dict(outcomes),
        "in_flight_at_sigterm": len(in_flight),
        "in_flight_answered_ok": sum(1 for r in in_flight if r[2] == "ok"),
        "drain_and_exit_s": round(drain, 3), "new_server_boot_s": round(boot, 3),
        "unavailable_s": round(t_up - t_sigterm, 3), "old_pid": old_pid, "new_pid": server.pid,
        "exit_to_up_s": round(t_up - t_exited, 3),
        "lost": len(lost), "phantom": len(phantom),
        "lost_examples": [r[:3] + (r[5],) for r in lost[:5]],
        "phantom_examples": [r[:3] + (r[5],) for r in phantom[:5]],
        "server_log_tail": server.log(3000) if (lost or phantom) else "",
    }


def format_report(report: dict) -> str:
    o = report["outcomes"]
    errors = sum(v for k, v in o.items() if k != "ok")
    return (f"{report['database']}: {report['clients']} clients, {report['seconds']} s, "
            f"{report['requests']} requests: {o.get('ok', 0)} ok, {errors} not ok {dict(o)}; "
            f"in flight at SIGTERM {report['in_flight_at_sigterm']} "
            f"(answered ok {report['in_flight_answered_ok']}); drain+exit "
            f"{report['drain_and_exit_s']} s, new server up in {report['new_server_boot_s']} s, "
            f"port closed {report['unavailable_s']} s; lost {report['lost']}, "
            f"phantom {report['phantom']}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="oml-restart-load-")
    failed = False
    try:
        targets = []
        if args.database in ("sqlite", "both"):
            targets.append(("sqlite", None))
        if args.database in ("postgresql", "both"):
            base = faultkit.postgres_base_url()
            if base is None:
                print("PostgreSQL not reachable: skipped")
            else:
                targets.append(("postgresql", base))
        for kind, base in targets:
            name = None
            if kind == "sqlite":
                url = "sqlite:///" + os.path.join(workdir, "load.sqlite3")
            else:
                url, name = faultkit.create_pg_database(base, "oml_restart_load")
            try:
                report = run(url, workdir, args.clients, args.duration)
            finally:
                if name:
                    faultkit.drop_pg_database(base, name)
            print(format_report(report))
            print(json.dumps({k: v for k, v in report.items() if k != "server_log_tail"}))
            if report["lost"] or report["phantom"]:
                failed = True
                print(report["server_log_tail"])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
