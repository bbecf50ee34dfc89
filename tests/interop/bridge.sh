#!/usr/bin/env bash
# SIPp interop of the external-bridge machinery of the user agent core.
#
#   tests/interop/bridge.sh
#
# Builds the `bridge_driver` example (the core on one UDP socket) and runs:
# - b2bua: the driver places a call to SIPp acting as the meeting bridge
#   (bridge_uas.xml: answers, waits for our BYE; bridge_uas_bye.xml:
#   answers, hangs up itself);
# - refer: SIPp calls the driver, which transfers it with REFER
#   (refer_uac.xml: 202, NOTIFY sipfrag 100 then 200, answers our BYE).
# Fails unless SIPp and the driver both succeed. Needs sipp (sip-tester).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
driver="$target/debug/examples/bridge_driver"
gw=127.0.0.1:25060
bridge_port=25080

command -v sipp >/dev/null || { echo "sipp not installed (apt-get install sip-tester)"; exit 2; }
cd "$root"
cargo build --quiet --example bridge_driver
work="$(mktemp -d)"
status=0

b2bua() {
    local scenario="$1" hold="$2"
    echo "== b2bua against $scenario"
    (cd "$work" && timeout 40 sipp -sf "$here/$scenario.xml" -p "$bridge_port" -i 127.0.0.1 \
        -m 1 -nostdin -trace_err -timeout 30s -timeout_error >"$work/$scenario.out" 2>&1) &
    local sipp_pid=$!
    sleep 0.5
    timeout 35 "$driver" b2bua "$gw" "sip:123456@127.0.0.1:$bridge_port" $hold \
        >"$work/driver-$scenario.out" 2>&1 || { echo "driver FAILED"; cat "$work/driver-$scenario.out"; status=1; }
    wait "$sipp_pid" || { echo "SIPp $scenario FAILED"; status=1; }
}

b2bua bridge_uas 1000
b2bua bridge_uas_bye ""

echo "== refer with refer_uac"
timeout 35 "$driver" refer "$gw" "sip:123456@192.0.2.50" >"$work/driver-refer.out" 2>&1 &
driver_pid=$!
sleep 0.5
(cd "$work" && timeout 40 sipp -sf "$here/refer_uac.xml" -s 15550100 -i 127.0.0.1 -p 25070 \
    -m 1 -nostdin -trace_err -timeout 30s -timeout_error "$gw" >"$work/refer.out" 2>&1) \
    || { echo "SIPp refer_uac FAILED"; status=1; }
wait "$driver_pid" || { echo "driver FAILED"; cat "$work/driver-refer.out"; status=1; }

if [ "$status" -ne 0 ]; then
    echo "logs in $work"; ls "$work"
else
    echo "all bridge interop scenarios passed"
    rm -rf "$work"
fi
exit "$status"
