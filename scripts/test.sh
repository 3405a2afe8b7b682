#!/usr/bin/env bash
# `make test`: the whole suite on SQLite, then again on PostgreSQL when one is reachable.
# As root it installs the lab Asterisk and SIPp first, so the integration tests run too.
# Services this script starts, it stops by PID.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
started_pg=""

if [ "$(id -u)" = 0 ] && [ -f asterisk-config/lab.sh ]; then
  bash asterisk-config/lab.sh install || echo "warning: lab install failed; integration tests will be skipped"
fi

pg_url="${DATABASE_URL:-}"
if [ -z "$pg_url" ]; then
  # A local PostgreSQL (trust auth on 127.0.0.1) is used when one answers or can be started.
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && command -v pg_ctlcluster >/dev/null 2>&1 \
     && [ "$(id -u)" = 0 ]; then
    version=$(ls /etc/postgresql 2>/dev/null | head -n1)
    if [ -n "$version" ] && pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null; then
      started_pg="/var/lib/postgresql/$version/main/postmaster.pid"
    fi
  fi
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    pg_url="postgresql://postgres@127.0.0.1:5432/postgres"
  fi
fi

stop_pg() {
  if [ -n "$started_pg" ] && [ -f "$started_pg" ]; then
    kill "$(head -n1 "$started_pg")" 2>/dev/null || true
  fi
}
trap stop_pg EXIT

status=0
echo "== test suite on SQLite =="
# The integration tests run their servers on SQLite, and one on PostgreSQL when it answers.
env -u DATABASE_URL OML_IT_PG_URL="$pg_url" $PY -m pytest -q -p no:cacheprovider "$@" || status=$?
if [ -n "$pg_url" ]; then
  echo "== test suite on PostgreSQL =="
  DATABASE_URL="$pg_url" $PY -m pytest -q -p no:cacheprovider -m "not integration" "$@" || status=$?
else
  echo "PostgreSQL not reachable: suite ran on SQLite only"
fi
exit $status
