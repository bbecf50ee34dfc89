#!/usr/bin/env bash
# Dial-in run with a real softphone: baresip 1.0 against the real daemon.
#
#   tests/interop/baresip/run.sh
#
# Starts `dialgate serve` with ../dialgate-interop.toml on its own ports
# (SIP 15170 UDP+TCP, admin 18181, RTP 43000-43999, temporary data dir;
# SIP_PORT and ADMIN_PORT move them),
# enables an organizer with the CLI and reads their conference ID, then
# starts baresip headless (sine tone as microphone, null loudspeaker,
# G.711 u-law, UDP account that never registers) from the template in
# this directory (config, accounts). baresip is remote-controlled over
# its ctrl_tcp module (netstring-framed JSON): `dial` calls
# sip:15550100@127.0.0.1:15170, `sndcode` keys the conference ID and `#`
# as RFC 4733 telephone-events. Passes when
#  1. the daemon logs that this call joined the organizer's meeting, the
#     call is still up HOLD_SECONDS (default 5) later on both sides, the
#     caller heard audio (the prompts, recorded by baresip's sndfile
#     filter), the daemon sees the caller's BYE and counted the digits as
#     RFC 4733 events;
#  2. a second call keying a wrong ID three times hears "not valid" twice
#     and is then hung up by the gateway (baresip sees the BYE);
#  3. the daemon stops cleanly on SIGTERM.
# The checks read the daemon's debug log (DIALGATE_LOG_LEVEL, default debug).
#
# Needs baresip (Debian/Ubuntu: apt-get install baresip). Builds the
# daemon first unless NO_BUILD=1; DIALGATE_BIN overrides the binary.
# Every wait is bounded; a run takes about 22 s after the build.
# Exit 0 on success, 1 on failure (the files stay in the printed work
# directory, as they do with KEEP=1), 2 when baresip is missing.
set -euo pipefail
export LC_ALL=C

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
config="$root/tests/interop/dialgate-interop.toml"
modules="${BARESIP_MODULES:-/usr/lib/baresip/modules}"

# Own ports, clear of tests/interop/run.sh (15060, 18080, RTP 42000-42999).
sip_port="${SIP_PORT:-15170}"
admin_port="${ADMIN_PORT:-18181}"
rtp_min=43000 rtp_max=43999
bs_sip_port=$((sip_port + 4))    # baresip also takes the next port (SIP over TLS)
bs_ctrl_port=$((sip_port + 6))
bs_rtp_ports=44000-44999
hold_seconds="${HOLD_SECONDS:-5}"
number=15550100     # the interop config's dial-in number +1 555 0100

if ! command -v baresip >/dev/null; then
    echo "baresip is not installed. Install it with:"
    echo "    sudo apt-get install baresip        # Debian / Ubuntu"
    echo "(needs the modules g711, ausine, aubridge, sndfile, account, menu, ctrl_tcp)"
    exit 2
fi
for m in g711 ausine aubridge sndfile account menu ctrl_tcp; do
    if [ ! -f "$modules/$m.so" ]; then
        echo "baresip module $m.so not found in $modules (set BARESIP_MODULES)"
        exit 2
    fi
done

cd "$root"
if [ -n "${DIALGATE_BIN:-}" ]; then
    bin="$DIALGATE_BIN"
else
    bin="$target/debug/dialgate"
    if [ "${NO_BUILD:-0}" != 1 ]; then cargo build --quiet; fi
fi
[ -x "$bin" ] || { echo "no dialgate binary at $bin"; exit 1; }

# Another process on one of the ports would answer in our daemon's place.
for p in "$sip_port" "$bs_sip_port" "$((bs_sip_port + 1))"; do
    if ss -lnu 2>/dev/null | grep -q ":$p "; then
        echo "UDP port $p is in use (set SIP_PORT to move this run's ports)"; exit 1
    fi
done
for p in "$sip_port" "$admin_port" "$bs_sip_port" "$((bs_sip_port + 1))" "$bs_ctrl_port"; do
    if ss -lnt 2>/dev/null | grep -q ":$p "; then
        echo "TCP port $p is in use (set SIP_PORT / ADMIN_PORT to move this run's ports)"; exit 1
    fi
done

work="$(mktemp -d)"
dlog="$work/dialgate.log"
blog="$work/baresip.log"
audio="$work/audio"
mkdir -p "$audio" "$work/baresip"

export DIALGATE__SIP__LISTEN="udp:127.0.0.1:$sip_port,tcp:127.0.0.1:$sip_port"
export DIALGATE__ADMIN__LISTEN="127.0.0.1:$admin_port"
export DIALGATE__DIRECTORY__DATA_DIR="$work/directory"
export DIALGATE__NOTIFY__OUTBOX_DIR="$work/outbox"
export DIALGATE__RTP__PORT_MIN=$rtp_min
export DIALGATE__RTP__PORT_MAX=$rtp_max
# debug (or trace): the checks read the prompt and call-stats lines.
export DIALGATE__LOG__LEVEL="${DIALGATE_LOG_LEVEL:-debug}"
admin=(--admin-url "http://127.0.0.1:$admin_port")

daemon_pid=""
baresip_pid=""
cleanup() {
    local pid
    for pid in "$baresip_pid" "$daemon_pid"; do
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
}
trap cleanup EXIT

# Prints why, both logs' tails, and fails the run.
fail() {
    echo "FAILED: $*"
    echo "--- dialgate log (tail)"
    tail -30 "$dlog" 2>/dev/null || true
    echo "--- baresip log (tail)"
    tail -30 "$blog" 2>/dev/null || true
    echo "baresip interop FAILED (files in $work)"
    exit 1
}

# Waits up to $1 seconds (in 0.1 s steps) until the command after it succeeds.
wait_for() {
    local tries=$(($1 * 10))
    shift
    while [ "$tries" -gt 0 ]; do
        if "$@"; then return 0; fi
        sleep 0.1
        tries=$((tries - 1))
    done
    return 1
}

# One ctrl_tcp command: sends {"command":$1,"params":$2} as a netstring on
# a fresh connection and prints the JSON response (events that arrive on
# the connection first are skipped). Reads time out after 3 s.
ctrl() {
    local json="{\"command\":\"$1\",\"params\":\"${2:-}\",\"token\":\"run\"}" len body
    { exec 3<>"/dev/tcp/127.0.0.1/$bs_ctrl_port"; } 2>/dev/null || return 1
    printf '%d:%s,' "${#json}" "$json" >&3
    while IFS= read -t 3 -r -d ':' len <&3; do
        case "$len" in '' | *[!0-9]*) break ;; esac
        IFS= read -t 3 -r -N "$((len + 1))" body <&3 || break
        case "$body" in
            *'"response":true'*)
                exec 3>&-
                printf '%s\n' "${body%,}"
                return 0
                ;;
        esac
    done
    exec 3>&-
    return 1
}

call_established() { ctrl listcalls | grep -q ESTABLISHED; }
daemon_listens() {
    kill -0 "$daemon_pid" 2>/dev/null || fail "the daemon exited early"
    ss -lnup 2>/dev/null | grep "127.0.0.1:$sip_port " | grep -q "pid=$daemon_pid,"
}
baresip_ready() {
    kill -0 "$baresip_pid" 2>/dev/null || fail "baresip exited early"
    ctrl listcalls >/dev/null
}
in_log() { grep -q -- "$1" "$dlog"; }
call_joined() { grep -q "call_id=$call_id.*caller joined" "$dlog"; }
call_ended() { grep -qE "call_id=$call_id.*call ended|call ended call_id=$call_id" "$dlog"; }

echo "== starting dialgate (SIP 127.0.0.1:$sip_port, admin $admin_port, log in $dlog)"
"$bin" serve --config "$config" >"$dlog" 2>&1 &
daemon_pid=$!
wait_for 10 daemon_listens || fail "the daemon does not listen on UDP $sip_port within 10 s"

echo "== enabling organizer amos@example.com"
timeout 10 "$bin" "${admin[@]}" organizer add amos@example.com --name Amos \
    --email amos@example.com >"$work/organizer-add.out" 2>&1 \
    || fail "organizer add: $(cat "$work/organizer-add.out")"
timeout 10 "$bin" "${admin[@]}" organizer show amos@example.com --json \
    >"$work/organizer.json" 2>&1 || fail "organizer show: $(cat "$work/organizer.json")"
conference_id="$(sed -n 's/.*"conference_id": *"\([0-9]*\)".*/\1/p' "$work/organizer.json")"
[ -n "$conference_id" ] || fail "no conference_id in: $(cat "$work/organizer.json")"
echo "   conference ID $conference_id"

echo "== starting baresip (SIP 127.0.0.1:$bs_sip_port, ctrl_tcp $bs_ctrl_port, log in $blog)"
sed -e "s|@SIP_PORT@|$bs_sip_port|" -e "s|@CTRL_PORT@|$bs_ctrl_port|" \
    -e "s|@RTP_PORTS@|$bs_rtp_ports|" -e "s|@AUDIO_DIR@|$audio|" \
    -e "s|/usr/lib/baresip/modules|$modules|" \
    "$here/config" >"$work/baresip/config"
cp "$here/accounts" "$work/baresip/accounts"
# -t: baresip quits by itself should this script be killed.
baresip -f "$work/baresip" -t 85 </dev/null >"$blog" 2>&1 &
baresip_pid=$!
wait_for 10 baresip_ready || fail "baresip's ctrl_tcp does not answer within 10 s"

uri="sip:$number@127.0.0.1:$sip_port"
# Dials the gateway and sets call_id to the new call's SIP Call-ID.
dial() {
    echo "== dialing $uri"
    ctrl dial "$uri" | grep -q '"ok":true' || fail "baresip refused to dial"
    wait_for 10 call_established || fail "the call is not established within 10 s"
    call_id="$(ctrl callstat | sed -n 's/.* id=\([^\\ ]*\).*/\1/p' | head -1)"
    [ -n "$call_id" ] || fail "no call id in baresip's callstat"
    echo "   call established, Call-ID $call_id"
    wait_for 3 in_log "call_id=$call_id" || fail "the daemon did not log call $call_id"
}

dial

# The welcome prompt may still play: digits barge in.
sleep 1
echo "== keying $conference_id# (RFC 4733)"
ctrl sndcode "$conference_id#" | grep -q '"ok":true' || fail "baresip refused sndcode"
wait_for 15 call_joined || fail "the daemon did not route call $call_id into the meeting within 15 s"
grep "call_id=$call_id.*caller joined" "$dlog" | sed 's/^/   /'

echo "== holding the call for $hold_seconds s"
sleep "$hold_seconds"
if call_ended; then fail "the gateway ended the call after routing it"; fi
call_established || fail "baresip's call is no longer up $hold_seconds s after joining"
grep -q "Call established" "$blog" || fail "baresip did not log the established call"
if grep -qE "session closed|terminated" "$blog"; then
    fail "baresip saw the call close"
fi

# The caller heard the prompts: the received audio is not all silence.
dec=""
for f in "$audio"/*-dec.wav; do if [ -f "$f" ]; then dec="$f"; fi; done
[ -n "$dec" ] || fail "baresip recorded no received audio"
# Samples (16-bit, 8 kHz) louder than about -36 dBFS, after the WAV header.
loud="$(od -An -v -td2 -j 44 "$dec" | awk '{ for (i = 1; i <= NF; i++) if ($i > 500 || $i < -500) n++ } END { print n + 0 }')"
[ "$loud" -gt 4000 ] || fail "the caller heard (almost) nothing: $loud loud samples in $dec"
echo "   still connected; the caller heard audio ($loud loud samples = $((loud / 8)) ms)"

echo "== hanging up"
ctrl hangup >/dev/null || fail "baresip refused to hang up"
wait_for 5 call_ended || fail "the daemon did not see the caller's BYE within 5 s"
grep -m1 "call_id=$call_id.*call ended" "$dlog" | sed 's/^/   /'
# The digits came as RFC 4733 telephone-events (the call's stats line).
task_ended() { grep -q "call_id=$call_id.*call task ended" "$dlog"; }
wait_for 5 task_ended || fail "no stats line for call $call_id"
rfc4733="$(sed -n "s/.*call_id=$call_id.*call task ended.*digits_rfc4733: \([0-9]*\).*/\1/p" "$dlog" | head -1)"
[ "${rfc4733:-0}" -ge 7 ] || fail "the daemon counted ${rfc4733:-no} RFC 4733 digits for call $call_id"
echo "   the daemon received $rfc4733 digits as RFC 4733 telephone-events"

# A caller with a wrong ID hears "not valid" and may try again; after the
# third wrong entry the gateway says goodbye and hangs up (BYE).
bad_id=1234567
[ "$bad_id" != "$conference_id" ] || bad_id=7654321
prompts_heard() { grep -c "call_id=$call_id.*prompt prompt=$1" "$dlog" || true; }
attempt_failed() { grep -q "call_id=$call_id.*entry failed.*attempt=$1" "$dlog"; }
gateway_hung_up() {
    kill -0 "$baresip_pid" 2>/dev/null || fail "baresip exited early"
    grep -q "call_id=$call_id.*call ended reason=Local" "$dlog" \
        && grep -q "session closed" "$blog" && ! call_established
}
dial
for attempt in 1 2 3; do
    # Key while the welcome (first try) or the not-valid prompt plays.
    if [ "$attempt" -gt 1 ]; then
        wait_for 10 eval '[ "$(prompts_heard NotValid)" -ge $((attempt - 1)) ]' \
            || fail "no not-valid prompt after wrong entry $((attempt - 1))"
    fi
    echo "== keying wrong ID $bad_id# (try $attempt)"
    ctrl sndcode "$bad_id#" | grep -q '"ok":true' || fail "baresip refused sndcode"
    wait_for 10 attempt_failed "$attempt" || fail "the daemon did not refuse try $attempt within 10 s"
done
wait_for 20 gateway_hung_up || fail "the gateway did not hang up after 3 wrong entries within 20 s"
grep -m1 "call_id=$call_id.*call ended" "$dlog" | sed 's/^/   /'
if call_joined; then fail "a wrong ID joined a meeting"; fi

echo "== stopping baresip and the daemon"
kill -TERM "$baresip_pid" 2>/dev/null || true
wait_for 5 eval '! kill -0 "$baresip_pid" 2>/dev/null' || kill -KILL "$baresip_pid" 2>/dev/null || true
wait "$baresip_pid" 2>/dev/null || true
baresip_pid=""
kill -TERM "$daemon_pid"
wait_for 15 eval '! kill -0 "$daemon_pid" 2>/dev/null' || fail "the daemon did not stop within 15 s of SIGTERM"
rc=0
wait "$daemon_pid" || rc=$?
daemon_pid=""
[ "$rc" -eq 0 ] || fail "the daemon exited $rc"

if [ "${KEEP:-0}" = 1 ]; then echo "files kept in $work"; else rm -rf "$work"; fi
echo "baresip interop OK"
