#!/usr/bin/env bash
# `make bench`: the API, call and CRM delivery benchmarks, one after the other; each prints a
# table and writes JSON (and the first two a PNG) under bench/results/. Pass --quick for a short
# smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/pip install -q -e '.[bench]'
mkdir -p bench/results
status=0
.venv/bin/python bench/api_bench.py "$@" || status=$?
.venv/bin/python bench/calls_bench.py "$@" || status=$?
.venv/bin/python bench/crm_bench.py "$@" || status=$?
exit $status
