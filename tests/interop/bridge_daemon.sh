#!/usr/bin/env bash
# SIPp interop of the external bridge profiles through the real daemon.
#
#   tests/interop/bridge_daemon.sh
#
# Builds dialgate, starts `dialgate serve` with dialgate-bridge.toml (one
# dial-in number routed to a b2bua profile, one to a refer profile), enables
# an organizer with conference ID 2718281 over the admin API, then:
# - b2bua: SIPp plays the meeting bridge (bridge_uas_conf.xml: Request-URI
#   user and X-Conference-ID must be the ID) while a SIPp caller
#   (info_b2bua_caller.xml) keys the ID with SIP INFO and later hangs up;
# - refer: a SIPp caller (info_refer_caller.xml) keys the ID with SIP INFO,
#   takes the REFER (Refer-To must name the ID), reports success with NOTIFY
#   sipfrag and answers the gateway's BYE; then the same with the ID keyed as
#   RFC 4733 telephone-events (rfc4733_refer_caller.xml plays a pcap that
#   dtmf_pcap.py writes);
# - reset: after `organizer reset-conference-id`, a caller keying the old ID
#   three times (info_refused_caller.xml) is never transferred and is hung
#   up on after the goodbye prompt.
# Fails unless every SIPp run exits 0 and the daemon stops cleanly on
# SIGTERM. Needs sipp (Debian: sip-tester) and python3. Ports: SIP 15260, admin 18280,
# RTP 45000-45999, SIPp 15280 (bridge) and 15290 (callers).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
config="$here/dialgate-bridge.toml"
gw=127.0.0.1:15260
admin=http://127.0.0.1:18280
conference_id=2718281
organizer=interop.organizer@example.net

command -v sipp >/dev/null || { echo "sipp not installed (apt-get install sip-tester)"; exit 2; }
command -v python3 >/dev/null || { echo "python3 not installed"; exit 2; }

cd "$root"
cargo build --quiet
dialgate="$target/debug/dialgate"

work="$(mktemp -d)"
log="$work/dialgate.log"
export DIALGATE__DIRECTORY__DATA_DIR="$work/directory"
export DIALGATE__NOTIFY__OUTBOX_DIR="$work/outbox"
daemon_pid=""
bridge_pid=""
cleanup() {
    for pid in "$bridge_pid" "$daemon_pid"; do
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
}
trap cleanup EXIT

fail() {
    echo "FAILED: $*"
    echo "--- daemon log (tail)"; tail -40 "$log" || true
    for f in "$work"/*_errors.log; do
        [ -e "$f" ] || continue
        echo "--- $(basename "$f") (head)"; head -60 "$f"
    done
    echo "bridge interop FAILED (files in $work)"
    exit 1
}

admin_cli() {
    timeout 10 "$dialgate" --admin-url "$admin" "$@" >>"$work/admin.out" 2>&1 \
        || { cat "$work/admin.out"; fail "dialgate $*"; }
}

# One SIPp caller against the gateway; fails the run unless it exits 0.
caller() {
    local scenario="$1" number="$2"
    echo "== caller $scenario -> $number"
    (cd "$work" && timeout 60 sipp -sf "$here/$scenario.xml" -s "$number" \
        -i 127.0.0.1 -p 15290 -mp 16000 -m 1 -nostdin -trace_err \
        -timeout 50s -timeout_error "$gw" >"$work/$scenario.out" 2>&1) \
        || { tail -20 "$work/$scenario.out"; fail "SIPp $scenario"; }
}

echo "starting: $dialgate serve --config $config"
"$dialgate" serve --config "$config" >"$log" 2>&1 &
daemon_pid=$!

# Wait (bounded) until the daemon answers on SIP and on the admin API.
for i in $(seq 1 100); do
    if ss -lnu 2>/dev/null | grep -q "$gw " && ss -lnt 2>/dev/null | grep -q "127.0.0.1:18280 "; then
        break
    fi
    kill -0 "$daemon_pid" 2>/dev/null || fail "daemon exited early"
    [ "$i" -lt 100 ] || fail "daemon not listening after 10 s"
    sleep 0.1
done

echo "== organizer $organizer with conference ID $conference_id"
admin_cli organizer add "$organizer" --name "Interop Organizer" --email "$organizer"
admin_cli organizer set-conference-id "$organizer" "$conference_id"

echo "== b2bua: bridge on 127.0.0.1:15280"
(cd "$work" && timeout 60 sipp -sf "$here/bridge_uas_conf.xml" -i 127.0.0.1 -p 15280 \
    -mp 16100 -m 1 -nostdin -trace_err -timeout 50s -timeout_error \
    >"$work/bridge_uas_conf.out" 2>&1) &
bridge_pid=$!
sleep 0.5
caller info_b2bua_caller 15550200
rc=0
wait "$bridge_pid" || rc=$?
bridge_pid=""
[ "$rc" -eq 0 ] || { tail -20 "$work/bridge_uas_conf.out"; fail "SIPp bridge_uas_conf (exit $rc)"; }

echo "== refer"
caller info_refer_caller 15550201

# SIPp plays pcaps through a raw socket: root or CAP_NET_RAW.
if [ "$(id -u)" -eq 0 ] || [ "${RFC4733_PCAP:-0}" = 1 ]; then
    echo "== refer, keys as RFC 4733 telephone-events (pcap)"
    python3 "$here/dtmf_pcap.py" "$work/dtmf_2718281.pcap" "${conference_id}#"
    caller rfc4733_refer_caller 15550201
else
    echo "== SKIPPED refer with RFC 4733 keys: play_pcap_audio needs root or CAP_NET_RAW (RFC4733_PCAP=1 forces it)"
fi

echo "== reset: the old ID is refused"
admin_cli organizer reset-conference-id "$organizer"
caller info_refused_caller 15550201

echo "== stopping the daemon with SIGTERM"
kill -TERM "$daemon_pid"
for _ in $(seq 1 150); do
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$daemon_pid" 2>/dev/null && fail "daemon did not stop within 15 s"
rc=0
wait "$daemon_pid" || rc=$?
daemon_pid=""
[ "$rc" -eq 0 ] || fail "daemon exited $rc"
rm -rf "$work"
echo "bridge interop OK"
