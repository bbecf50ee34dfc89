#!/usr/bin/env bash
# SIPp interop run against the real daemon.
#
#   tests/interop/run.sh
#
# Builds dialgate, starts `dialgate serve` with dialgate-interop.toml,
# runs the SIPp UAC scenario (50 calls, 10/s, 20 at once) over UDP and then
# over TCP, and the hold/resume scenario over UDP, and fails unless every
# call succeeds. Then stops the daemon
# with SIGTERM and checks that it exits 0. Needs sipp (Debian: sip-tester).
# DIALGATE_CMD overrides the daemon command line.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
config="$here/dialgate-interop.toml"
port=15060
calls="${CALLS:-50}"

command -v sipp >/dev/null || { echo "sipp not installed (apt-get install sip-tester)"; exit 2; }

cd "$root"
cargo build --quiet
cmd="${DIALGATE_CMD:-$target/debug/dialgate serve --config $config}"

work="$(mktemp -d)"
log="$work/dialgate.log"
# The daemon's state (directory journal, outbox) and admin API stay out of the way.
export DIALGATE__DIRECTORY__DATA_DIR="$work/directory"
export DIALGATE__NOTIFY__OUTBOX_DIR="$work/outbox"
export DIALGATE__ADMIN__LISTEN="${DIALGATE_ADMIN_LISTEN:-127.0.0.1:18080}"
daemon_pid=""
cleanup() {
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -KILL "$daemon_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT

echo "starting: $cmd"
# shellcheck disable=SC2086
$cmd >"$log" 2>&1 &
daemon_pid=$!

# Wait (bounded) until the daemon listens.
for _ in $(seq 1 100); do
    if ss -lnu 2>/dev/null | grep -q "127.0.0.1:$port "; then break; fi
    if ! kill -0 "$daemon_pid" 2>/dev/null; then
        echo "daemon exited early:"; cat "$log"; exit 1
    fi
    sleep 0.1
done

status=0
run_sipp() {
    local scenario="$1" transport="$2" count="$3"
    local out="$work/sipp-$scenario-$transport.out"
    echo "== SIPp $scenario over $transport: $count calls"
    (cd "$work" && timeout 120 sipp -sf "$here/$scenario.xml" -s 15550100 \
        -m "$count" -r 10 -l 20 -t "$transport" -p 0 -i 127.0.0.1 \
        -trace_err -timeout 60s -timeout_error -nostdin \
        "127.0.0.1:$port" >"$out" 2>&1) || {
        echo "SIPp $scenario over $transport FAILED"; status=1
        tail -40 "$out" || true
        cat "$work"/*_errors.log 2>/dev/null | head -60 || true
    }
    grep -E "Successful call|Failed call" "$out" | tail -2 || true
}
run_sipp uac_call u1 "$calls"
run_sipp uac_call t1 "$calls"
run_sipp uac_hold u1 10

echo "== stopping the daemon with SIGTERM"
kill -TERM "$daemon_pid"
rc=0
for _ in $(seq 1 150); do
    if ! kill -0 "$daemon_pid" 2>/dev/null; then break; fi
    sleep 0.1
done
if kill -0 "$daemon_pid" 2>/dev/null; then
    echo "daemon did not stop within 15 s"; status=1
else
    wait "$daemon_pid" || rc=$?
    daemon_pid=""
    if [ "$rc" -ne 0 ]; then echo "daemon exited $rc"; status=1; fi
fi
if [ "$status" -ne 0 ]; then
    echo "--- daemon log (tail)"; tail -40 "$log"
    echo "interop FAILED (files in $work)"
    exit 1
fi
rm -rf "$work"
echo "interop OK"
