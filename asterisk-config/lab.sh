#!/usr/bin/env bash
# Lab Asterisk for OMniLeads-compatible server development and integration tests.
#
#   lab.sh install        install Asterisk 16 (Debian 11 packages) and SIPp on Debian 12
#   lab.sh start [DIR]    render etc/ templates into a private DIR and start Asterisk there
#   lab.sh run [DIR]      same, but exec Asterisk in the foreground (containers)
#   lab.sh stop [DIR]     stop that private Asterisk ("core stop now", then by PID)
#   lab.sh status [DIR]   say whether it runs and whether ARI answers
#   lab.sh cli [DIR] CMD  run one CLI command against the private instance
#   lab.sh phone EXT      an agent's SIPp phone: credentials from the running server (the demo
#                         lab's user for EXT, or --username U --password P), registers, answers
#                         with audio until Ctrl-C (lab/phone.py; OML_API, default :8000)
#
# Environment (defaults): LAB_DIR=/tmp/oml-lab ARI_PORT=8088 SIP_PORT=5070 TRUNK_PORT=5090
#   ARI_USER=oml ARI_PASSWORD=oml-lab-secret ARI_APP=omnileads RTP_START=30000 RTP_END=39999
#
# Why a private instance: the tests need a known, quiet Asterisk (42 modules, loopback only,
# fresh astdb every start) that never touches /etc/asterisk or a system service.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TEMPLATES="$HERE/etc"

: "${LAB_DIR:=/tmp/oml-lab}"
: "${ARI_PORT:=8088}"
: "${SIP_PORT:=5070}"
: "${TRUNK_PORT:=5090}"
: "${ARI_USER:=oml}"
: "${ARI_PASSWORD:=oml-lab-secret}"
: "${ARI_APP:=omnileads}"
: "${RTP_START:=30000}"
: "${RTP_END:=39999}"
: "${START_TIMEOUT:=20}"

log() { echo "lab.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# ---------------------------------------------------------------------------------------------
# install
# ---------------------------------------------------------------------------------------------

# Print "URI SUITE" pairs of the system's Debian apt sources (deb822 and one-line formats).
system_debian_sources() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk '
            function flush() { if (uris != "" && suites != "" && types ~ /(^| )deb( |$)/) {
                    n = split(uris, u, " "); m = split(suites, s, " ");
                    for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) print u[i], s[j] }
                uris = ""; suites = ""; types = "" }
            /^[ \t]*$/ { flush(); next }
            /^[ \t]*#/ { next }
            tolower($1) == "uris:"   { $1 = ""; uris = $0 }
            tolower($1) == "suites:" { $1 = ""; suites = $0 }
            tolower($1) == "types:"  { $1 = ""; types = $0 " " }
            END { flush() }
        ' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } print $i, $(i+1) }' "$f"
    done
}

cmd_install() {
    if command -v asterisk >/dev/null 2>&1 && command -v sipp >/dev/null 2>&1; then
        log "asterisk and sipp already installed: nothing to do"
        stop_system_asterisk
        return 0
    fi
    [ "$(id -u)" = 0 ] || die "install needs root"

    local main_uri="" sec_uri="" uri suite
    while read -r uri suite; do
        case "$suite" in
            bookworm)          [ -n "$main_uri" ] || main_uri="$uri" ;;
            bookworm-security) [ -n "$sec_uri" ] || sec_uri="$uri" ;;
        esac
    done < <(system_debian_sources)
    [ -n "$main_uri" ] || die "no Debian 'bookworm' suite found in the apt sources"
    if [ -z "$sec_uri" ]; then
        # Conventional layout: the security archive sits beside the main one.
        sec_uri="${main_uri%/debian}/debian-security"
        [ "$sec_uri" != "$main_uri/debian-security" ] || die "cannot derive the security mirror URI"
    fi
    log "using mirrors read from the system sources: $main_uri and $sec_uri"

    local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    cat > /etc/apt/sources.list.d/oml-lab-bullseye.sources <<EOF
# Added by asterisk-config/lab.sh: Debian 11 suites for Asterisk 16 (pinned low).
Types: deb
URIs: $main_uri
Suites: bullseye
Components: main
Signed-By: $keyring

Types: deb
URIs: $sec_uri
Suites: bullseye-security
Components: main
Signed-By: $keyring
EOF
    cat > /etc/apt/preferences.d/oml-lab-bullseye <<'EOF'
# Added by asterisk-config/lab.sh: take from Debian 11 only what bookworm lacks.
Package: *
Pin: release n=bullseye
Pin-Priority: 100

Package: *
Pin: release n=bullseye-security
Pin-Priority: 100
EOF

    # Keep the package from starting a system Asterisk (no-op if a policy already exists).
    local own_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    local rc=0
    {
        apt-get -o DPkg::Lock::Timeout=600 update &&
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y \
            --no-install-recommends asterisk sip-tester
    } || rc=$?
    [ "$own_policy" = 0 ] || rm -f /usr/sbin/policy-rc.d
    [ "$rc" = 0 ] || die "apt-get failed ($rc)"
    stop_system_asterisk
    log "installed: $(asterisk -V) and $(sipp -v 2>/dev/null | grep -o 'SIPp v[0-9.]*' | head -1)"
}

# Stop a system Asterisk the package may have started, only by the PID in its pidfile.
stop_system_asterisk() {
    local pf pid
    for pf in /var/run/asterisk/asterisk.pid /run/asterisk/asterisk.pid; do
        [ -f "$pf" ] || continue
        pid="$(cat "$pf" 2>/dev/null || true)"
        if [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && grep -qx asterisk "/proc/$pid/comm"; then
            log "stopping the system Asterisk (pid $pid)"
            kill "$pid" 2>/dev/null || true
            sleep 1
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
        fi
    done
    # Where update-rc.d exists, keep the init script from starting it at boot.
    if command -v update-rc.d >/dev/null 2>&1 && [ -e /etc/init.d/asterisk ]; then
        update-rc.d asterisk disable >/dev/null 2>&1 || true
    fi
}

# ---------------------------------------------------------------------------------------------
# start / stop / status
# ---------------------------------------------------------------------------------------------

module_dir() {
    local d
    for d in /usr/lib/x86_64-linux-gnu/asterisk/modules /usr/lib/*/asterisk/modules /usr/lib/asterisk/modules; do
        [ -f "$d/chan_pjsip.so" ] && { echo "$d"; return; }
    done
    die "Asterisk modules not found (run: $0 install)"
}

ari_url() { echo "http://127.0.0.1:${ARI_PORT}/ari"; }

ari_up() {
    curl -fsS -m 2 -u "${ARI_USER}:${ARI_PASSWORD}" "$(ari_url)/asterisk/info?only=status" >/dev/null 2>&1
}

# A killed Asterisk stays a zombie until its parent (init) reaps it, and some inits never do:
# a zombie is not running.
running() { kill -0 "$1" 2>/dev/null && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

pid_alive() { [ -f "$1/asterisk.pid" ] && running "$(cat "$1/asterisk.pid")"; }

render() {  # render TEMPLATE DEST
    sed -e "s|@LAB_DIR@|$DIR|g" \
        -e "s|@MODULE_DIR@|$MODDIR|g" \
        -e "s|@ARI_PORT@|$ARI_PORT|g" \
        -e "s|@SIP_PORT@|$SIP_PORT|g" \
        -e "s|@TRUNK_PORT@|$TRUNK_PORT|g" \
        -e "s|@ARI_USER@|$ARI_USER|g" \
        -e "s|@ARI_PASSWORD@|$ARI_PASSWORD|g" \
        -e "s|@ARI_APP@|$ARI_APP|g" \
        -e "s|@RTP_START@|$RTP_START|g" \
        -e "s|@RTP_END@|$RTP_END|g" \
        "$1" > "$2"
}

# Render the templates into a fresh DIR (fresh astdb: device states/contacts would persist).
prepare_dir() {
    DIR="$1"
    command -v asterisk >/dev/null 2>&1 || die "asterisk not installed (run: $0 install)"
    if pid_alive "$DIR"; then
        # One of ours, left behind (a `make run` killed hard, say): restart it rather than
        # refuse, so the new start's settings (ports, ARI password) are the ones in force.
        log "an Asterisk already runs from $DIR (pid $(cat "$DIR/asterisk.pid")): restarting it"
        cmd_stop "$DIR"
    fi
    mkdir -p "$DIR"
    DIR="$(cd "$DIR" && pwd)"
    MODDIR="$(module_dir)"
    rm -rf "$DIR/etc" "$DIR/var" "$DIR/log" "$DIR/run"
    # var/spool/recording: ARI recordings (Asterisk creates subfolders, never the base one).
    mkdir -p "$DIR/etc" "$DIR/var/lib" "$DIR/var/spool/recording" "$DIR/log" "$DIR/run"
    local t
    for t in "$TEMPLATES"/*.conf; do
        render "$t" "$DIR/etc/$(basename "$t")"
    done
    # Quick guard against the silent template trap (see docs/asterisk-lab.md).
    grep -q '^\[directories\]$' "$DIR/etc/asterisk.conf" || die "asterisk.conf needs a plain [directories]"
}

cmd_start() {
    command -v curl >/dev/null 2>&1 || die "curl is needed to wait for ARI"
    prepare_dir "${1:-$LAB_DIR}"
    local started
    started="$(date +%s.%N)"
    # Its own session: a Ctrl-C meant for whoever started it (`make run`) does not reach it;
    # `lab.sh stop` does. (setsid does not fork here: a background job is no group leader.)
    nohup setsid asterisk -C "$DIR/etc/asterisk.conf" -f -n </dev/null >"$DIR/log/console.log" 2>&1 &
    local pid=$!
    echo "$pid" > "$DIR/asterisk.pid"
    local deadline=$(( $(date +%s) + START_TIMEOUT ))
    until ari_up; do
        if ! running "$pid"; then
            tail -n 30 "$DIR/log/console.log" >&2 || true
            die "asterisk exited during startup (see $DIR/log/console.log)"
        fi
        if [ "$(date +%s)" -ge "$deadline" ]; then
            tail -n 30 "$DIR/log/console.log" >&2 || true
            die "ARI did not answer within ${START_TIMEOUT}s"
        fi
        sleep 0.05
    done
    log "asterisk pid $pid up in $(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}')s; dir $DIR"
    ari_url
}

# Foreground (containers): render, then become Asterisk so signals reach it.
cmd_run() {
    prepare_dir "${1:-$LAB_DIR}"
    echo "$$" > "$DIR/asterisk.pid"
    log "exec asterisk in the foreground; ARI $(ari_url)"
    exec asterisk -C "$DIR/etc/asterisk.conf" -f -n
}

cmd_stop() {
    DIR="${1:-$LAB_DIR}"
    [ -f "$DIR/asterisk.pid" ] || { log "not running (no $DIR/asterisk.pid)"; return 0; }
    local pid i
    pid="$(cat "$DIR/asterisk.pid")"
    if running "$pid"; then
        asterisk -C "$DIR/etc/asterisk.conf" -rx "core stop now" >/dev/null 2>&1 || true
        for i in $(seq 1 50); do running "$pid" || break; sleep 0.1; done
        if running "$pid"; then
            log "still alive, sending TERM to $pid"
            kill "$pid" 2>/dev/null || true
            for i in $(seq 1 30); do running "$pid" || break; sleep 0.1; done
            running "$pid" && kill -9 "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$DIR/asterisk.pid"
    log "stopped (pid $pid)"
}

cmd_status() {
    DIR="${1:-$LAB_DIR}"
    if pid_alive "$DIR"; then
        if ari_up; then echo "running pid $(cat "$DIR/asterisk.pid"), ARI $(ari_url) up"; return 0; fi
        echo "running pid $(cat "$DIR/asterisk.pid"), ARI $(ari_url) NOT answering"; return 1
    fi
    echo "stopped"; return 3
}

cmd_phone() {
    command -v sipp >/dev/null 2>&1 || die "sipp not installed (run: $0 install)"
    local py="$HERE/../.venv/bin/python"
    [ -x "$py" ] || die "no $py: run \`make run\` (or \`make venv\`) first"
    exec "$py" "$HERE/../lab/phone.py" --sip-port "$SIP_PORT" "$@"
}

cmd_cli() {
    DIR="${1:-$LAB_DIR}"; shift || true
    asterisk -C "$DIR/etc/asterisk.conf" -rx "$*"
}

case "${1:-}" in
    install) shift; cmd_install "$@" ;;
    start)   shift; cmd_start "$@" ;;
    run)     shift; cmd_run "$@" ;;
    stop)    shift; cmd_stop "$@" ;;
    status)  shift; cmd_status "$@" ;;
    cli)     shift; cmd_cli "$@" ;;
    phone)   shift; cmd_phone "$@" ;;
    *) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
