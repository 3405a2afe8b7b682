#!/usr/bin/env bash
# `make run`, after `make demo` (secrets generated once into instance/secrets.env, mode 0600,
# and reused; the database migrated; the demo data loaded): the lab Asterisk when it is
# installed, with the same ARI password, then the server in the foreground. Ctrl-C (or the
# server exiting any other way) stops the lab Asterisk it started.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-.venv/bin}"
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"
SECRETS="${SECRETS:-instance/secrets.env}"

set -a
# shellcheck disable=SC1090
. "$SECRETS"
set +a
# The engine talks to the lab on the port lab.sh starts it on (ARI_PORT, 8088 by default).
export ARI_URL="${ARI_URL:-http://127.0.0.1:${ARI_PORT:-8088}/ari}"

if command -v asterisk >/dev/null 2>&1; then
    # The lab's phones (`lab.sh phone`, SIPp) send 8 s of audio after answering, then nothing:
    # the production rtp_timeout would hang them up a minute later. Real phones never stop.
    export PHONE_RTP_TIMEOUT="${PHONE_RTP_TIMEOUT:-0}"
    trap 'bash asterisk-config/lab.sh stop' EXIT
    bash asterisk-config/lab.sh start >/dev/null
else
    echo "lab Asterisk not installed (sudo bash asterisk-config/lab.sh install): serving without calls" >&2
fi
# Not exec: this shell stays to stop the lab afterwards. Ctrl-C or a TERM to this script is
# passed to the server as TERM (it drains its requests), and the script waits for it.
"$BIN/oml-server" run --host "$HOST" --port "$PORT" &
server=$!
trap 'kill -TERM "$server" 2>/dev/null || true' INT TERM
status=0
wait "$server" || status=$?
if kill -0 "$server" 2>/dev/null; then  # the wait was cut short by the signal: let it finish
    status=0
    wait "$server" || status=$?
fi
exit "$status"
