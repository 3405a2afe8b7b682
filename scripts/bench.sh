#!/usr/bin/env bash
# `make bench`: the API, call, transfer and CRM delivery benchmarks, one after the other; each
# prints a table and writes JSON (and PNGs) under bench/results/. Pass --quick for a short
# smoke run. transfer_bench.py: blind transfer and hold through the server vs bare ARI (issue 9).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/pip install -q -e '.[bench]'
mkdir -p bench/results
status=0
.venv/bin/python bench/api_bench.py "$@" || status=$?
.venv/bin/python bench/calls_bench.py "$@" || status=$?
.venv/bin/python bench/transfer_bench.py $([[ " $* " == *" --quick "* ]] && echo --quick) || status=$?
.venv/bin/python bench/crm_bench.py "$@" || status=$?
exit $status
