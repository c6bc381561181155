#!/usr/bin/env bash
# What auditing costs in throughput, measured the way issue 6's target reads ("auditing costs
# under 5% of the delivery benchmark's throughput"):
#   [PHASES="drain both accept"] [SECS=…] bench/audit_cost.sh [pairs]
# Builds the gateway once from the working tree with bench/audit-off.patch (see
# build_audit_switch_binary in bench/lib.sh): that binary audits as the product does, except
# when started with QAQPA_BENCH_AUDIT_OFF set, and then `Auditor::record` returns at once, so
# nothing is formatted, sent or journalled (callers still build their events). Both sides of
# every pair run that one binary, so they differ in auditing and nothing else, not in how the
# compiler laid out the code. The patch is never part of the product. Per phase it runs
# `bench/cpu.sh` with auditing off and on in turn, `pairs` times (default 10), the order
# swapped every pair so that a machine speeding up or slowing down does not favour one side.
# The two runs of a drain pair deliver the same backlog, accepted beforehand (cpu.sh's
# BACKLOG): with a backlog of its own, the side that accepts faster drains a bigger one
# (docs/BENCHMARKS.md). Every audit event goes over TCP
# to a receiver that discards it (SYSLOG=null), so the stream's cost on the gateway's side is
# counted and a receiver's is not. bench/audit_windows.sh measures the same more finely.
# Prints each pair's rates and, per phase, the median, the mean, a 95% interval of the mean
# and the range of the pairs' changes (on against off). This VM scatters ±10–20% from run to
# run: trust many pairs only.
set -euo pipefail
cd "$(dirname "$0")/.."
PAIRS=${1:-10}
PHASES=${PHASES:-drain both accept}
for p in $PHASES; do
  case "$p" in accept|drain|both) ;; *) echo "PHASES: accept, drain or both, not $p" >&2; exit 2 ;; esac
done
secs_of() { # the load's length per phase, unless SECS is set
  if [ -n "${SECS:-}" ]; then echo "$SECS"; return; fi
  case "$1" in drain) echo 3 ;; both) echo 4 ;; accept) echo 6 ;; esac
}
bins=$(mktemp -d)
trap 'rm -rf "$bins"' EXIT
cargo build --release --quiet --example bench_emulator
. bench/lib.sh
build_audit_switch_binary "$bins/qaqpa"
rate() { # $1 = phase, $2 = on|off: messages per second of one bench/cpu.sh run
  local switch=(env -u QAQPA_BENCH_AUDIT_OFF)
  [ "$2" = on ] || switch=(env QAQPA_BENCH_AUDIT_OFF=1)
  "${switch[@]}" SYSLOG=null PHASE=$1 QAQPA_BIN="$bins/qaqpa" bench/cpu.sh "$(secs_of "$1")" 2>/dev/null |
    awk '/^(accepted|delivered)/ { for (i = 1; i <= NF; i++) if ($(i + 1) ~ /^msg\/s/) { r = $i } } END { if (r == "") exit 1; print r }'
}
for phase in $PHASES; do
  changes=()
  for i in $(seq 1 "$PAIRS"); do
    if [ "$phase" = drain ]; then
      # The pair's backlog, accepted with auditing on, as a gateway would have, and not
      # measured; both sides then deliver a copy of it.
      export BACKLOG="$bins/backlog"
      rm -rf "$BACKLOG"
      SYSLOG=null PHASE=drain QAQPA_BIN="$bins/qaqpa" bench/cpu.sh "$(secs_of drain)" >/dev/null 2>&1
    fi
    if [ $((i % 2)) -eq 1 ]; then
      off=$(rate "$phase" off); on=$(rate "$phase" on)
    else
      on=$(rate "$phase" on); off=$(rate "$phase" off)
    fi
    change=$(echo "$on $off" | awk '{ printf "%+.1f", ($1 / $2 - 1) * 100 }')
    changes+=("$change")
    echo "$(date -u +%H:%M:%S) $phase pair $i: off $off msg/s, on $on msg/s, $change%"
  done
  printf '%s\n' "${changes[@]}" | summarise_changes "$phase"
done
