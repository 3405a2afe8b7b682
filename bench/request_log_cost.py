#!/usr/bin/env python3
"""CPU the per-request log line costs (oml_server/request_log.py), in text and in JSON.

    .venv/bin/python bench/request_log_cost.py [-n 50000]

Calls a trivial WSGI app N times bare and N times behind RequestLog, logging to /dev/null
through oml_server.logging_setup, and prints the difference per request.
"""
import argparse
import os
import time

from oml_server import logging_setup
from oml_server.request_log import RequestLog


def app(environ, start_response):
    start_response("200 OK", [])
    return [b"x"]


def start_response(status, headers, exc_info=None):
    pass


def seconds(wsgi, n):
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/new_contact/"}
    started = time.process_time()  # CPU of this process: other load on the box does not count
    for _ in range(n):
        wsgi(dict(environ), start_response)
    return time.process_time() - started


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=50000)
    n = parser.parse_args().n
    with open(os.devnull, "w") as devnull:
        for form in ("text", "json"):
            logging_setup.configure({"LOG_FORMAT": form}, stream=devnull)
            added = seconds(RequestLog(app), n) - seconds(app, n)
            print(f"LOG_FORMAT={form}: the request line adds {added / n * 1e6:.1f} µs of CPU per request")


if __name__ == "__main__":
    main()
