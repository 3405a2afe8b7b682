"""POST /api/v1/login `--rate` times a second (a real password check each) until SIGTERM, then
print "<sent> sent, <answered> answered".

calls_bench.py runs it as a process of its own beside 20 steady calls (issue 8, item 5): a real
deployment's logins come from browsers elsewhere, not from the process that times the calls. In
that process the login requests' own client work (requests, JSON, sockets: a few ms each, 20 a
second) shared one gevent hub with the call driver and the ARI event watcher whose readings are
the calls' setup times.

    .venv/bin/python bench/login_load.py http://127.0.0.1:8000 --rate 20 --username bench-login
    (password in OML_BENCH_LOGIN_PASSWORD)
"""
import argparse
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url")
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--username", required=True)
    args = ap.parse_args()
    password = os.environ["OML_BENCH_LOGIN_PASSWORD"]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    local = threading.local()
    answered, lock = [], threading.Lock()

    def login():
        http = getattr(local, "http", None)
        if http is None:
            http = local.http = requests.Session()
            http.trust_env = False
        try:
            status = http.post(args.url + "/api/v1/login", timeout=30,
                               json={"username": args.username, "password": password}).status_code
        except requests.RequestException:
            return
        with lock:
            answered.append(status)

    sent = 0
    print("ready", flush=True)
    # A login takes ~0.1-0.2 s (the hash): a few at once keep the rate.
    with ThreadPoolExecutor(max_workers=16) as pool:
        next_at = time.monotonic()
        while not stop.is_set():
            pool.submit(login)
            sent += 1
            next_at += 1.0 / args.rate
            stop.wait(max(0.0, next_at - time.monotonic()))
    print(f"{sent} sent, {answered.count(200)} answered", flush=True)


if __name__ == "__main__":
    sys.exit(main())
