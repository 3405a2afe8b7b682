"""CPU milliseconds the server spends per request on the REST hot paths.

Deterministic where wall-clock load tests are not (a shared 2-core machine): the real server
(`oml-server run --no-engine`, one gevent process) answers N requests per path from one
keep-alive client, and the figure is the server's own CPU time (utime + stime of
/proc/<pid>/stat) divided by N. Other processes on the machine do not change it much.

    .venv/bin/python bench/cpu_per_request.py                # N = 2000, SQLite and PostgreSQL
    .venv/bin/python bench/cpu_per_request.py -n 500 --backends sqlite
    .venv/bin/python bench/cpu_per_request.py --profile out  # + py-spy flame graphs (needs root)

Per backend: a throw-away database (migrated and provisioned like bench/api_bench.py: one
agent, the campaign with 5 options and duplicate phones forbidden), then per path a warm-up of
200 requests and N measured ones:

- new_contact          POST /api/v1/new_contact/ (a distinct phone and external id each)
- disposition          POST /api/v1/disposition/ (rates a contact new_contact created)
- dispositionOptions   GET /api/v1/campaign/1/dispositionOptions/

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
        with ab.running_server("gevent", db_url, tmpdir) as (proc, port):
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

            # new_contact runs first: it creates the contacts disposition rates, one each.
            paths = [("new_contact", new_contact), ("disposition", disposition),
                     ("dispositionOptions", options)]
            for name, fn in paths:
                for _ in range(WARMUP):
                    fn()
                samples = []
                for _ in range(opts.repeats):
                    before = cpu_seconds(proc.pid)
                    for _ in range(opts.n):
                        fn()
                    samples.append((cpu_seconds(proc.pid) - before) * 1000 / opts.n)
                samples.sort()
                results[name] = round(samples[len(samples) // 2], 3)
                print(f"  {backend:10} {name:20} {results[name]:.3f} CPU ms/request "
                      f"(runs: {', '.join(f'{s:.3f}' for s in samples)})", flush=True)
            if opts.profile:
                profile(proc.pid, opts, paths, backend)
    return results


def profile(pid, opts, paths, backend):
    """py-spy profile of each path: a flame graph (.svg) and the collapsed stacks (.txt, one
    line per stack and its sample count). Attaching needs ptrace rights (root here)."""
    spy_bin = os.path.join(ab.BIN, "py-spy")
    spy_bin = spy_bin if os.path.exists(spy_bin) else "py-spy"
    for name, fn in paths:
        for fmt, ext in (("flamegraph", "svg"), ("raw", "txt")):
            out = os.path.join(opts.profile, f"{backend}-{name}.{ext}")
            spy = subprocess.Popen([spy_bin, "record", "-p", str(pid), "-o", out, "-r", "500",
                                    "-f", fmt, "--nonblocking"],
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
    parser.add_argument("--profile", help="directory for py-spy flame graphs")
    opts = parser.parse_args()
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
