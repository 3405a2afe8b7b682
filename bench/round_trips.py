#!/usr/bin/env python3
"""Round trips to PostgreSQL per request of each hot path, alone (api_bench.py's step 5):
one build's gevent server against a throw-away database, counted on the wire by
bench/pg_wire.py while one client sends requests.

    .venv/bin/python bench/round_trips.py                                  # this checkout
    .venv/bin/python bench/round_trips.py --bin /path/to/main/.venv/bin    # another build
    .venv/bin/python bench/round_trips.py --endpoints disposition,disposition_update
"""
import argparse
import os
import tempfile

import api_bench as B


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default=B.BIN, help="bin/ of the build's virtualenv")
    parser.add_argument("--endpoints", default=",".join(e for e in B.ENDPOINTS if e != "login"))
    opts = parser.parse_args()
    B.BIN = os.path.abspath(opts.bin)   # its oml-server migrates, provisions and serves
    run_opts = argparse.Namespace(duration=2, repeats=1, endpoints=opts.endpoints.split(","))
    with tempfile.TemporaryDirectory(prefix="oml-trips-") as tmpdir, \
            B.throwaway_database("postgresql", tmpdir, "trips") as url:
        B.prepare(url, tmpdir, 1000, 201)
        low, _high, count = B.contact_id_range(url)
        updates = B.seed_updates(url, tmpdir, low, 201)
        B.round_trips(run_opts, url, tmpdir, low, count, {e: B.Cursor() for e in B.INDEXED},
                      updates)


if __name__ == "__main__":
    main()
