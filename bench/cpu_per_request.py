"""CPU milliseconds the server spends per request on the REST hot paths.

Deterministic where wall-clock load tests are not (a shared 2-core machine): the real server
(`oml-server run --no-engine`, one gevent process) answers N requests per path from one
keep-alive client, and the figure is the server's own CPU time (utime + stime of
/proc/<pid>/stat) divided by N. Other processes on the machine do not change it much.

    .venv/bin/python bench/cpu_per_request.py                # N = 2000, SQLite and PostgreSQL
    .venv/bin/python bench/cpu_per_request.py -n 500 --backends sqlite
    .venv/bin/python bench/cpu_per_request.py --paths new_contact,disposition -n 500
    .venv/bin/python bench/cpu_per_request.py --profile out  # + py-spy flame graphs (needs root)
    .venv/bin/python bench/cpu_per_request.py --callgrind -n 200 --backends postgresql
        # instructions per request instead (the server under valgrind's callgrind; exact and
        # repeatable on a busy machine, where CPU time is not; ~50x slower)

Per backend: a throw-away database (migrated and provisioned like bench/api_bench.py: one
agent, the campaign with 5 options and duplicate phones forbidden), then per path a warm-up of
200 requests and N measured ones:

- new_contact          POST /api/v1/new_contact/ (a distinct phone and external id each)
- disposition          POST /api/v1/disposition/ (rates a contact new_contact created)
- dispositionOptions   GET /api/v1/campaign/1/dispositionOptions/
- disposition_update   PUT /api/v1/disposition/<id>/ (the dispositions disposition made, in turn)
- new_contact_disposition  POST /api/v1/new_contact/disposition/ (a new contact each)
- database_metadata    POST /api/v1/campaign/database_metadata/
- makeCall_checks      POST /api/v1/makeCall/ with a refused phone (every check, no call placed)
- login                POST /api/v1/login/ (the server's CPU: the password hash runs in the
                       helper process, whose CPU is not counted; ~0.1 s of wall time each)
- not_found            GET /api/v1/no-such-path/ (404; no database: gevent's WSGI server and Flask alone)

Every answer is checked (status code), so a benchmark of error answers cannot pass unnoticed.
"""
import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import api_bench as ab  # noqa: E402  (shares the database and server helpers)

TICKS = os.sysconf("SC_CLK_TCK")
WARMUP = 200


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / TICKS


class Client:
    def __init__(self, port, token):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def send(self, method, path, body=None, expect=200):
        data = json.dumps(body) if body is not None else None
        self.conn.request(method, path, body=data, headers=self.headers)
        resp = self.conn.getresponse()
        payload = resp.read()
        if resp.status != expect:
            raise RuntimeError(f"{method} {path}: {resp.status} {payload[:300]!r}")
        return payload


def run_backend(backend, opts, tmpdir):
    results = {}
    with ab.throwaway_database(backend, tmpdir, "cpu") as db_url:
        ab.cli(db_url, "db", "upgrade")
        yaml_path = os.path.join(tmpdir, "provision.yaml")
        with open(yaml_path, "w") as handle:
            handle.write(ab.provisioning_yaml(0))
        ab.cli(db_url, "provision", yaml_path)
        with ab.running_server("gevent", db_url, tmpdir,
                               wrapper=CALLGRIND if opts.callgrind else None,
                               timeout=600 if opts.callgrind else 60) as (proc, port):
            client = Client(port, ab.login(port))
            contact_ids = []
            counter = iter(range(10**9))

            def new_contact():
                i = next(counter)
                body = {"idCampaign": ab.CAMPAIGN_ID, "TELEFONO": f"9{i:013d}",
                        "NOMBRE": "Bench Contact", "CELULAR": "", "id_ext": f"api-{i}"}
                contact_ids.append(json.loads(client.send("POST", "/api/v1/new_contact/", body))["id"])

            rated = iter(range(10**9))

            def disposition():
                body = {"idContact": contact_ids[next(rated)], "idDispositionOption": 1,
                        "comments": "bench", "callid": "1234.5"}
                client.send("POST", "/api/v1/disposition/", body, expect=201)

            def options():
                client.send("GET", f"/api/v1/campaign/{ab.CAMPAIGN_ID}/dispositionOptions/")

            disposition_ids = []

            def rate_for_update():
                contact = contact_ids[next(rated)]
                body = {"idContact": contact, "idDispositionOption": 1, "comments": "bench",
                        "callid": "1234.5"}
                disposition_ids.append((json.loads(client.send(
                    "POST", "/api/v1/disposition/", body, expect=201))["id"], contact))

            updated = iter(range(10**9))

            def disposition_update():
                k = next(updated)
                ident, contact = disposition_ids[k % len(disposition_ids)]
                body = {"idContact": contact, "idDispositionOption": 2 + k % 2,
                        "comments": f"update {k}", "callid": None}
                client.send("PUT", f"/api/v1/disposition/{ident}/", body)

            def new_contact_disposition():
                i = next(counter)
                body = {"idDispositionOption": 1, "phone": f"8{i:013d}",
                        "idExternalContact": f"ncd-{i}", "NOMBRE": "Bench", "comments": "bench",
                        "callid": f"n{i}"}
                client.send("POST", "/api/v1/new_contact/disposition/", body, expect=201)

            def database_metadata():
                client.send("POST", "/api/v1/campaign/database_metadata/",
                            {"idCampaign": ab.CAMPAIGN_ID})

            def login():   # the server's part: the hash is the helper process's CPU
                client.send("POST", "/api/v1/login/", {"username": ab.AGENT[0],
                                                       "password": ab.AGENT[1]})

            def not_found():   # the floor: gevent's WSGI server, Flask, no database
                client.send("GET", "/api/v1/no-such-path/", expect=404)

            def make_call_checks():
                # Every check's reads run and the phone is refused: no call is placed.
                client.send("POST", "/api/v1/makeCall/", {
                    "phone": "not-a-phone", "idCampaign": ab.CAMPAIGN_ID, "idAgent": 1,
                    "idContact": contact_ids[0]})

            # new_contact runs first: it creates the contacts disposition rates, one each.
            paths = [("new_contact", new_contact), ("disposition", disposition),
                     ("dispositionOptions", options), ("disposition_update", disposition_update),
                     ("new_contact_disposition", new_contact_disposition),
                     ("database_metadata", database_metadata),
                     ("makeCall_checks", make_call_checks), ("login", login),
                     ("not_found", not_found)]
            chosen = opts.paths.split(",") if opts.paths else [name for name, _ in paths]
            for _ in range(min(400, opts.n) if {"disposition_update", "makeCall_checks"} & set(chosen) else 0):
                new_contact()        # the dispositions PUT replaces, in turn
                rate_for_update()
            meter = Callgrind(proc.pid) if opts.callgrind else None
            unit = "instructions/request" if meter else "CPU ms/request"
            for name, fn in paths:
                if name not in chosen:   # (disposition rates new_contact's contacts)
                    continue
                for _ in range(opts.warmup):
                    fn()
                samples = []
                for _ in range(opts.repeats):
                    before = meter.mark() if meter else cpu_seconds(proc.pid)
                    for _ in range(opts.n):
                        fn()
                    if meter:
                        samples.append(meter.mark() / opts.n)
                    else:
                        samples.append((cpu_seconds(proc.pid) - before) * 1000 / opts.n)
                samples.sort()
                results[name] = round(samples[len(samples) // 2], 0 if meter else 3)
                print(f"  {backend:10} {name:24} {results[name]:,} {unit} "
                      f"(runs: {', '.join(f'{s:,.3f}' for s in samples)})", flush=True)
            if opts.profile:
                profile(proc.pid, opts, [(n, fn) for n, fn in paths if n in chosen], backend)
    return results


CALLGRIND = ["valgrind", "--tool=callgrind", "--collect-atstart=yes", "--dump-instr=no",
             "--callgrind-out-file=/tmp/oml-cpu-callgrind.%p"]


class Callgrind:
    """The instructions the server executed since the last mark: `callgrind_control -d` dumps
    the counters (and zeroes them) into a new file whose `totals:` line is the count."""

    def __init__(self, pid):
        self.pid = pid
        self.mark()

    def mark(self):
        import glob
        before = set(glob.glob(f"/tmp/oml-cpu-callgrind.{self.pid}*"))
        subprocess.run(["callgrind_control", "-d", str(self.pid)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        new = sorted(set(glob.glob(f"/tmp/oml-cpu-callgrind.{self.pid}*")) - before,
                     key=os.path.getmtime)
        total = 0
        for path in new:
            with open(path) as handle:
                for line in handle:
                    if line.startswith(("totals:", "summary:")):
                        total = max(total, int(line.split()[1]))
            os.remove(path)
        return total


def profile(pid, opts, paths, backend):
    """py-spy profile of each path: a flame graph (.svg) and the collapsed stacks (.txt, one
    line per stack and its sample count). `--gil`: only the samples where the server holds
    the GIL, so the profile is its CPU, not its waits for PostgreSQL or the next request. Attaching needs ptrace rights (root here)."""
    spy_bin = os.path.join(ab.BIN, "py-spy")
    spy_bin = spy_bin if os.path.exists(spy_bin) else "py-spy"
    for name, fn in paths:
        for fmt, ext in (("flamegraph", "svg"), ("raw", "txt")):
            out = os.path.join(opts.profile, f"{backend}-{name}.{ext}")
            spy = subprocess.Popen([spy_bin, "record", "-p", str(pid), "-o", out, "-r", "500",
                                    "-f", fmt, "--nonblocking", "--gil"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.5)
            for _ in range(opts.n):
                fn()
            spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            spy.wait()
            print(f"  profile: {out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="requests per path and run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per path (median kept)")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--warmup", type=int, default=WARMUP, help="requests before measuring")
    parser.add_argument("--paths", default="", help="only these hot paths (e.g. new_contact)")
    parser.add_argument("--profile", help="directory for py-spy flame graphs")
    parser.add_argument("--callgrind", action="store_true",
                        help="count the server's instructions per request (valgrind)")
    opts = parser.parse_args()
    if opts.callgrind:
        # Under valgrind a request takes ~50x longer, so the delivery greenlets' polls (every
        # 0.2 s, whatever the load) would count ~50x more per request than they cost: off.
        os.environ["DELIVERY_POLL_SECONDS"] = "3600"
    if opts.profile:
        os.makedirs(opts.profile, exist_ok=True)
    all_results = {}
    with tempfile.TemporaryDirectory(prefix="oml-cpu-") as tmpdir:
        for backend in opts.backends.split(","):
            if backend == "postgresql" and not ab.pg_reachable():
                print("  postgresql: not reachable, skipped")
                continue
            all_results[backend] = run_backend(backend, opts, tmpdir)
    print(json.dumps(all_results))


if __name__ == "__main__":
    main()
