#!/usr/bin/env bash
# CI smoke run of dialgate-load against the real daemon.
#
#   tests/interop/load_smoke.sh
#
# Builds dialgate and dialgate-load (debug), starts the daemon on a
# loopback port, places 10 calls at 5/s with a 1 s hold (RTP both ways),
# 3 calls that key an unknown conference ID and must be refused (the
# attendant allows one attempt here), then 200 OPTIONS and 200 INVITEs
# to an unknown number, and fails on any
# failed call or request (dialgate-load exits non-zero). Stops the daemon
# with SIGTERM. No timing assertions; bounded to well under a minute.
# DIALGATE_CMD overrides the daemon command line.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
port=15090

cd "$root"
cargo build --quiet --bin dialgate-load --example sip_front_end
cargo build --quiet --bin dialgate 2>/dev/null || true

work="$(mktemp -d)"
config="$work/dialgate-smoke.toml"
cat >"$config" <<TOML
[sip]
listen = ["udp:127.0.0.1:$port"]
shutdown_grace = "1s"

[rtp]
bind_address = "127.0.0.1"
port_min = 43000
port_max = 43199

[log]
level = "warn"

[[dial_in_numbers]]
number = "+1 555 0100"
language = "en"
label = "smoke"

[[trunks]]
name = "loopback"
sources = ["127.0.0.0/8"]

[directory]
data_dir = "$work/directory"

[notify]
outbox_dir = "$work/outbox"

[admin]
enabled = false

[ivr]
max_attempts = 1
TOML

if [ -z "${DIALGATE_CMD:-}" ]; then
    if "$target/debug/dialgate" --help 2>&1 | grep -qw serve; then
        DIALGATE_CMD="$target/debug/dialgate serve --config $config"
    else
        DIALGATE_CMD="$target/debug/examples/sip_front_end $config"
    fi
fi

daemon_pid=""
cleanup() {
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -KILL "$daemon_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "starting: $DIALGATE_CMD"
# shellcheck disable=SC2086
$DIALGATE_CMD >"$work/dialgate.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 1 100); do
    if ss -lnu 2>/dev/null | grep -q "127.0.0.1:$port "; then break; fi
    if ! kill -0 "$daemon_pid" 2>/dev/null; then
        echo "daemon exited early:"; cat "$work/dialgate.log"; exit 1
    fi
    sleep 0.1
done

load="$target/debug/dialgate-load"
status=0
echo "== 10 calls at 5/s, hold 1 s"
timeout 40 "$load" --target "127.0.0.1:$port" --calls 10 --rate 5 --concurrency 10 \
    --hold 1s --duration 10s --drain 10s --expect answered --quiet || status=1
echo "== 3 calls that send an unknown conference ID (RFC 4733) and are refused"
timeout 40 "$load" --target "127.0.0.1:$port" --calls 3 --rate 3 --concurrency 3 \
    --expect refused --dtmf rfc4733 --conference-id 7654321 --outcome-wait 15s \
    --duration 5s --drain 25s --quiet || status=1
echo "== 200 OPTIONS at 100/s"
timeout 20 "$load" --target "127.0.0.1:$port" --mode options --calls 200 --rate 100 \
    --duration 5s --quiet || status=1
echo "== 200 INVITEs to an unknown number at 100/s"
timeout 20 "$load" --target "127.0.0.1:$port" --mode invite-404 --calls 200 --rate 100 \
    --duration 5s --quiet || status=1

echo "== stopping the daemon"
kill -TERM "$daemon_pid"
for _ in $(seq 1 50); do
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$daemon_pid" 2>/dev/null; then
    echo "daemon did not stop within 5 s"; status=1
fi
if [ "$status" -ne 0 ]; then
    echo "load smoke FAILED"; tail -20 "$work/dialgate.log" || true
else
    echo "load smoke passed"
fi
exit "$status"
