#!/usr/bin/env bash
# Capacity benchmark: dialgate against Kamailio (stateless reference).
#
#   bench/run.sh                 # everything (about 10 minutes)
#   PARTS="ceiling" bench/run.sh # only the signalling ceiling
#   PARTS="calls" bench/run.sh   # only the full-call runs
#
# Not run in CI. Needs: cargo, python3, taskset; installs Debian's
# `kamailio` with apt-get if it is missing.
#
# 1. Signalling ceiling: `dialgate-load --mode options` and
#    `--mode invite-404` against dialgate and against Kamailio (sl module,
#    bench/kamailio.cfg), each daemon pinned to the same cores, at
#    increasing rates; each daemon's highest rate with zero failures
#    (no wrong status, no timeout), then the ratio dialgate/Kamailio.
# 2. Full calls against dialgate: calls/s with a short hold, and 1k, 2k,
#    5k concurrent calls with hold (RTP both ways); CPU and RSS of the
#    daemon from /proc, memory per call = RSS delta / concurrent calls.
#
# Every run is short (≤ 30 s). Results go to stdout and to
# bench/results/<UTC date>.txt (raw JSON lines per run as well).
#
# Environment:
#   DAEMON_CPUS   cores for the daemon under test (default: the last core)
#   LOAD_CPUS     cores for dialgate-load (default: the first core)
#   LOAD_THREADS  generator worker threads (default 1)
#   STEP_SECONDS  length of each ceiling step (default 5)
#   RATES         ceiling rates to try in order (default below)
#   DIALGATE_CMD  daemon command line (default: `dialgate serve`, else the
#                 sip_front_end example, release build)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
parts="${PARTS:-ceiling calls}"
ncpu="$(nproc)"
daemon_cpus="${DAEMON_CPUS:-$((ncpu - 1))}"
load_cpus="${LOAD_CPUS:-0}"
load_threads="${LOAD_THREADS:-1}"
step="${STEP_SECONDS:-5}"
rates="${RATES:-5000 10000 15000 20000 25000 30000 35000 40000 50000 60000 80000}"
dg_port=15070
kam_port=15080
config="$here/dialgate-bench.toml"

mkdir -p "$here/results"
stamp="$(date -u +%Y-%m-%dT%H%M%SZ)"
out="$here/results/$stamp.txt"
raw="$here/results/$stamp.jsonl"
log() { echo "$*" | tee -a "$out"; }

work="$(mktemp -d)"
daemon_pid=""
cleanup() {
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -TERM "$daemon_pid" 2>/dev/null || true
        sleep 1
        kill -KILL "$daemon_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT

# --- build and tools ---------------------------------------------------------
cd "$root"
cargo build --release --quiet --bin dialgate-load --example sip_front_end
cargo build --release --quiet --bin dialgate 2>/dev/null || true
load="$target_dir/release/dialgate-load"
if [ -z "${DIALGATE_CMD:-}" ]; then
    if "$target_dir/release/dialgate" --help 2>&1 | grep -qw serve; then
        DIALGATE_CMD="$target_dir/release/dialgate serve --config $config"
    else
        DIALGATE_CMD="$target_dir/release/examples/sip_front_end $config"
    fi
fi
if [[ " $parts " == *" ceiling "* ]] && ! command -v kamailio >/dev/null; then
    echo "installing kamailio (apt-get)"
    apt-get install -y kamailio >/dev/null
fi
# Let the generator get the 4 MiB socket buffers it asks for (best effort;
# daemons that do not ask keep the kernel default).
sysctl -qw net.core.rmem_max=8388608 net.core.wmem_max=8388608 2>/dev/null || true

log "# dialgate capacity benchmark, $stamp"
log "machine: nproc=$ncpu, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
log "commit: $(git -C "$root" rev-parse --short HEAD)"
log "daemon cores: $daemon_cpus, generator cores: $load_cpus, generator threads: $load_threads"
log "daemon: $DIALGATE_CMD"
log "kamailio: $(command -v kamailio >/dev/null && kamailio -v 2>/dev/null | head -1 || echo none)"
log "net.core.rmem_default=$(cat /proc/sys/net/core/rmem_default) rmem_max=$(cat /proc/sys/net/core/rmem_max)"
log ""

# --- helpers -----------------------------------------------------------------
wait_udp() { # port
    for _ in $(seq 1 100); do
        if ss -lnu 2>/dev/null | grep -q "127.0.0.1:$1 "; then return 0; fi
        sleep 0.1
    done
    echo "nothing listens on UDP $1"; return 1
}

start_dialgate() {
    # shellcheck disable=SC2086
    DIALGATE__DIRECTORY__DATA_DIR="$work/directory" DIALGATE__NOTIFY__OUTBOX_DIR="$work/outbox" \
        taskset -c "$daemon_cpus" $DIALGATE_CMD >"$work/dialgate.log" 2>&1 &
    daemon_pid=$!
    wait_udp "$dg_port"
}

start_kamailio() {
    local mpath
    mpath="$(dirname "$(find /usr/lib -name sl.so -path '*kamailio*' | head -1)")"
    sed -e "s/BENCH_LISTEN/127.0.0.1:$kam_port/; s/BENCH_CHILDREN/2/" \
        -e "s|^loadmodule \"sl.so\"|mpath=\"$mpath/\"\nloadmodule \"sl.so\"|" \
        "$here/kamailio.cfg" >"$work/kamailio.cfg"
    taskset -c "$daemon_cpus" kamailio -f "$work/kamailio.cfg" -DD -E -m 256 -M 16 \
        >"$work/kamailio.log" 2>&1 &
    daemon_pid=$!
    wait_udp "$kam_port"
}

stop_daemon() {
    if [ -n "$daemon_pid" ]; then
        kill -TERM "$daemon_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$daemon_pid" 2>/dev/null || true
        wait "$daemon_pid" 2>/dev/null || true
        daemon_pid=""
    fi
    sleep 1
}

jget() { # json key...
    python3 -c 'import json,sys
d=json.loads(sys.stdin.read())
for k in sys.argv[1:]: d=d[k]
print(d)' "$@"
}

proc_cpu() { # pid: utime+stime ticks of the process and its threads
    awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0
}
proc_rss_kib() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0
}

# One generator run; prints its JSON line.
load_run() {
    taskset -c "$load_cpus" "$load" --json --quiet --threads "$load_threads" "$@" \
        2>>"$work/load.err" | tee -a "$raw" | tail -1
}

# --- 1. signalling ceiling -----------------------------------------------------
declare -A best
ceiling() { # name port mode
    local name="$1" port="$2" mode="$3" pass=0 fail=0 r j ok cpu lat
    for r in $rates; do
        j="$(load_run --target "127.0.0.1:$port" --mode "$mode" --rate "$r" \
            --calls $((r * step)) --concurrency 20000 --duration "$((step + 1))s" \
            --timeout 1s || true)"
        ok="$(echo "$j" | jget zero_failures 2>/dev/null || echo False)"
        cpu="$(echo "$j" | jget generator_cpu_pct 2>/dev/null || echo 0)"
        lat="$(echo "$j" | jget latency p99_ms 2>/dev/null || echo -)"
        log "$(printf '  %-9s %-10s rate %6s/s  achieved %8.0f/s  answered %8s  timeouts %6s  p99 %7s ms  gen CPU %3.0f %%  %s' \
            "$name" "$mode" "$r" "$(echo "$j" | jget achieved_rate 2>/dev/null || echo 0)" \
            "$(echo "$j" | jget answered 2>/dev/null || echo -)" \
            "$(echo "$j" | jget timeouts 2>/dev/null || echo -)" "$lat" "$cpu" \
            "$([ "$ok" = True ] && echo pass || echo FAIL)")"
        if [ "$ok" = True ]; then pass=$r; else fail=$r; break; fi
        sleep 2
    done
    # Two bisection steps between the last pass and the first failure.
    if [ "$fail" -gt 0 ] && [ "$pass" -gt 0 ]; then
        for _ in 1 2; do
            r=$(((pass + fail) / 2))
            sleep 2
            j="$(load_run --target "127.0.0.1:$port" --mode "$mode" --rate "$r" \
                --calls $((r * step)) --concurrency 20000 --duration "$((step + 1))s" \
                --timeout 1s || true)"
            ok="$(echo "$j" | jget zero_failures 2>/dev/null || echo False)"
            log "$(printf '  %-9s %-10s rate %6s/s  (bisect)  answered %8s  timeouts %6s  gen CPU %3.0f %%  %s' \
                "$name" "$mode" "$r" "$(echo "$j" | jget answered 2>/dev/null || echo -)" \
                "$(echo "$j" | jget timeouts 2>/dev/null || echo -)" \
                "$(echo "$j" | jget generator_cpu_pct 2>/dev/null || echo 0)" \
                "$([ "$ok" = True ] && echo pass || echo FAIL)")"
            if [ "$ok" = True ]; then pass=$r; else fail=$r; fi
        done
    fi
    best["$name/$mode"]=$pass
}

if [[ " $parts " == *" ceiling "* ]]; then
    log "## Signalling ceiling (${step} s per step, highest rate with zero failures)"
    for mode in options invite-404; do
        start_dialgate
        ceiling dialgate "$dg_port" "$mode"
        stop_daemon
        start_kamailio
        ceiling kamailio "$kam_port" "$mode"
        stop_daemon
    done
    log ""
    for mode in options invite-404; do
        d="${best[dialgate/$mode]}"; k="${best[kamailio/$mode]}"
        ratio="$(python3 -c "print(f'{$d/$k:.2f}' if $k else 'n/a')")"
        log "$(printf '  %-10s dialgate %6s/s  kamailio %6s/s  ratio dialgate/kamailio %s' "$mode" "$d" "$k" "$ratio")"
    done
    log ""
fi

# --- 2. full calls -------------------------------------------------------------
# One run against a fresh daemon, sampling its RSS and CPU meanwhile.
call_run() { # label, then dialgate-load arguments
    local label="$1"; shift
    start_dialgate
    local rss0 cpu0 t0 peak=0 rss j
    rss0="$(proc_rss_kib "$daemon_pid")"
    cpu0="$(proc_cpu "$daemon_pid")"
    t0="$(date +%s.%N)"
    load_run --target "127.0.0.1:$dg_port" --mode calls "$@" >"$work/call.json" &
    local lpid=$!
    while kill -0 "$lpid" 2>/dev/null; do
        rss="$(proc_rss_kib "$daemon_pid")"
        [ "$rss" -gt "$peak" ] && peak=$rss
        sleep 0.25
    done
    wait "$lpid" || true
    local cpu1 t1
    cpu1="$(proc_cpu "$daemon_pid")"
    t1="$(date +%s.%N)"
    j="$(cat "$work/call.json")"
    stop_daemon
    python3 - "$label" "$rss0" "$peak" "$cpu0" "$cpu1" "$t0" "$t1" "$j" <<'PY' | tee -a "$out"
import json, sys
label, rss0, peak, c0, c1, t0, t1, j = sys.argv[1:]
d = json.loads(j)
rss0, peak = int(rss0), int(peak)
cpu_s = (int(c1) - int(c0)) / 100.0
wall = float(t1) - float(t0)
conc = d["peak_concurrent"]
per_call = (peak - rss0) / conc if conc else 0
s = d["setup_latency"]
print(f"  {label}: attempted {d['attempted']} succeeded {d['succeeded']} failed {d['failed']} "
      f"peak concurrent {conc}, achieved {d['achieved_cps']:.0f} calls/s")
print(f"      setup p50 {s['p50_ms']:.2f} ms p99 {s['p99_ms']:.2f} ms max {s['max_ms']:.2f} ms; "
      f"RTP sent {d['rtp']['sent']} received {d['rtp']['received']} lost {d['rtp']['lost']}, "
      f"send ticks skipped by a late generator {d['rtp'].get('send_ticks_skipped', 0)}")
print(f"      daemon CPU {cpu_s:.2f} s over {wall:.1f} s ({100*cpu_s/wall:.0f} % of one core); "
      f"RSS {rss0/1024:.1f} MiB idle -> {peak/1024:.1f} MiB peak; "
      f"{per_call:.1f} KiB per concurrent call; generator CPU {d['generator_cpu_pct']:.0f} %"
      f"{'  PASS' if d['zero_failures'] else '  FAIL'}")
PY
}

if [[ " $parts " == *" calls "* ]]; then
    log "## Full calls against dialgate (--expect answered, RTP both ways)"
    for cps in 100 200 400; do
        call_run "rate $cps/s, hold 2s, 10 s" --rate "$cps" --calls $((cps * 10)) \
            --concurrency 20000 --hold 2s --duration 12s
        sleep 1
    done
    call_run "1000 concurrent" --rate 200 --calls 1000 --concurrency 1000 --hold 10s --duration 20s
    call_run "2000 concurrent" --rate 400 --calls 2000 --concurrency 2000 --hold 10s --duration 20s
    call_run "5000 concurrent" --rate 500 --calls 5000 --concurrency 5000 --hold 10s --duration 20s
fi

log ""
log "results: $out"
