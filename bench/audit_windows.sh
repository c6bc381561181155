#!/usr/bin/env bash
# What auditing costs in throughput, measured inside one run of the delivery benchmark:
#   [PHASE=accept|both|drain] [WINDOW=2] [SETTLE=0.5] [QAQPA_BIN=…] bench/audit_windows.sh [pairs]
# One gateway (built with bench/audit-off.patch, see build_audit_switch_binary in bench/lib.sh;
# QAQPA_BIN: a binary built so before, e.g. target/audit-off/release/qaqpa, to skip the build)
# runs under the benchmark's load while auditing is switched off and on in turn, every WINDOW
# seconds, by a file the patched gateway looks for every 5 ms (QAQPA_BENCH_AUDIT_SWITCH; off
# means `Auditor::record` returns at once). Each window's throughput is counted after the
# first SETTLE seconds (the journal's 50 ms and the syslog sink's 10 ms lingers finish what the
# window before left them); consecutive off and on windows make a pair, the order swapped every
# pair. This VM's speed drifts by tens of percent over minutes, which made whole runs of each
# side (bench/audit_cost.sh) scatter ±10–20% per pair; two windows seconds apart share the
# machine's state far better.
# PHASE=accept (default): wrk -t2 -c64 posts 1 KiB documents, delivery off; throughput is
#   messages accepted (the gateway's qaqpa_messages_accepted_total, read with an operator key).
# PHASE=both: the same with delivery on (phase 3 of bench/run.sh); throughput is messages
#   accepted while the gateway delivers.
# PHASE=drain: a backlog is accepted first with auditing on (not measured), then a gateway with
#   delivery on delivers it; throughput is messages delivered (the emulator's count). The
#   backlog is sized to outlast the windows; the run fails if it did not.
# Every audit event goes over TCP to a receiver that discards it (SYSLOG=null, the default), or
# with SYSLOG=tcp to a local rsyslogd that writes every line to a file (bench/lib.sh): its CPU
# per message is then what a real receiver spends on the same events.
# Prints each pair and then the median, the mean and a 95% interval of the mean of the pairs'
# changes (on against off); then the CPU time per message with auditing off and on, by gateway
# thread, for the load tool, the emulator, the receiver and the whole machine, with the mean
# change over the pairs (bench/window_cpu.py). CPU per message scatters far less than the
# rate on this VM, and it says where auditing's cost lands.
set -euo pipefail
cd "$(dirname "$0")/.."
PAIRS=${1:-20}
PHASE=${PHASE:-accept}
WINDOW=${WINDOW:-2}
SETTLE=${SETTLE:-0.5}
case "$PHASE" in accept|both|drain) ;; *) echo "PHASE: accept, both or drain, not $PHASE" >&2; exit 2 ;; esac
awk -v w="$WINDOW" -v s="$SETTLE" 'BEGIN { exit !(w > s && s >= 0) }' ||
  { echo "WINDOW must be longer than SETTLE" >&2; exit 2; }
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release --quiet --example bench_emulator
work=$(mktemp -d); chmod 755 "$work"
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
. bench/lib.sh
if [ -n "${QAQPA_BIN:-}" ]; then
  QBIN=$QAQPA_BIN # built with the patch already (e.g. target/audit-off/release/qaqpa)
else
  build_audit_switch_binary "$work/qaqpa"
  QBIN=$work/qaqpa
fi
GW_PORT=18480; EMU_PORT=18481; SYSLOG_PORT=18614
target/release/examples/bench_emulator "127.0.0.1:$EMU_PORT" >/dev/null & EMU_PID=$!
write_routes
SYSLOG=${SYSLOG:-null}
case "$SYSLOG" in null|tcp) ;; *) echo "SYSLOG: null or tcp, not $SYSLOG" >&2; exit 2 ;; esac
start_receiver "$SYSLOG_PORT"
SQLITE=$'[store]\nkind = "sqlite"\ndata_dir = "data"'
switch=$work/audit-off # auditing is off while this file exists
export QAQPA_BENCH_AUDIT_SWITCH=$switch
measured=$(awk -v p="$PAIRS" -v w="$WINDOW" 'BEGIN { printf "%d", 2 * p * w + 0.999 }')

write_config "$([ "$PHASE" = both ] && echo true || echo false)" "$SQLITE"
KEY=$($QBIN keys create --config "$work/qaqpa.toml" --client bench 2>/dev/null | sed -n 's/^token: *//p')
OPKEY=$($QBIN keys create --config "$work/qaqpa.toml" --client bench-metrics --role operator 2>/dev/null |
  sed -n 's/^token: *//p')
accepted() {
  curl -sf -H "Authorization: Bearer $OPKEY" "http://127.0.0.1:$GW_PORT/metrics" |
    awk '/^qaqpa_messages_accepted_total/ { n += $2 } END { print n + 0 }'
}
load() { # $1 = seconds of wrk, in the background
  QAQPA_API_KEY=$KEY wrk -t2 -c64 -d"${1}s" -s bench/post.lua "http://127.0.0.1:$GW_PORT" >"$work/wrk.out" 2>&1 &
  WRK_PID=$!
}

start_gateway
if [ "$PHASE" = drain ]; then
  # Enough to keep delivering through every window, accepted with auditing on, as a gateway
  # would have: as long as the windows (deliveries ran at 0.4 to 0.75 of the accept rate
  # here, so this leaves a margin) and 10 s more.
  load $((measured + 10))
  wait "$WRK_PID"; WRK_PID=""
  backlog=$(accepted)
  stop_gateway
  write_config true "$SQLITE"
  start_gateway
  count() { emulator_count; }
  what="delivered"
else
  load $((measured * 2 + 60)) # stopped after the last window; the reads add to each window
  count() { accepted; }
  what="accepted"
fi
sleep 3 # the load settles (connections opened, caches warm) before the first window

now() { date +%s.%N; }
# CPU counters of the processes at work: the gateway by thread, the load tool (accept, both),
# the emulator (both, drain), the receiver, the machine (see bench/window_cpu.py).
snap() {
  python3 bench/window_cpu.py snap gateway="$GW_PID" receiver="$RSYSLOG_PID" \
    ${WRK_PID:+wrk=$WRK_PID} emulator="$EMU_PID"
}
: >"$work/cpu"
changes=()
for i in $(seq 1 "$PAIRS"); do
  if [ $((i % 2)) -eq 1 ]; then order="off on"; else order="on off"; fi
  for side in $order; do
    if [ "$side" = off ]; then : >"$switch"; else rm -f "$switch"; fi
    sleep "$SETTLE"
    t0=$(now); c0=$(count); s0=$(snap)
    sleep "$(awk -v w="$WINDOW" -v s="$SETTLE" 'BEGIN { print w - s }')"
    t1=$(now); c1=$(count); s1=$(snap)
    echo "$side $((c1 - c0)) $s0 | $s1" >>"$work/cpu"
    r=$(awk -v a="$c0" -v b="$c1" -v s="$t0" -v e="$t1" 'BEGIN { printf "%.0f", (b - a) / (e - s) }')
    if [ "$r" -le 0 ]; then
      echo "nothing $what in a window with auditing $side: is something else on port $GW_PORT or $EMU_PORT?" >&2
      [ "$PHASE" != drain ] || echo "(or the backlog of $backlog ran out: use fewer pairs)" >&2
      exit 1
    fi
    if [ "$side" = off ]; then off=$r; else on=$r; fi
  done
  change=$(awk -v on="$on" -v off="$off" 'BEGIN { printf "%+.1f", (on / off - 1) * 100 }')
  changes+=("$change")
  echo "$(date -u +%H:%M:%S) $PHASE pair $i: off $off msg/s, on $on msg/s, $change%"
done
rm -f "$switch"
if [ "$PHASE" = drain ]; then
  left=$((backlog - $(emulator_count)))
  stop_gateway
  [ "$left" -gt 0 ] || { echo "the backlog of $backlog ran out before the last window: use fewer pairs" >&2; exit 1; }
  echo "($left of the $backlog messages of the backlog were still to deliver after the last window)"
else
  kill "$WRK_PID" 2>/dev/null || true
  stop_gateway
fi
printf '%s\n' "${changes[@]}" | summarise_changes "$PHASE ($what per second)"
python3 bench/window_cpu.py summarise "$work/cpu"
