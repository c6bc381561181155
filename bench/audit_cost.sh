#!/usr/bin/env bash
# What auditing costs in throughput, measured the way issue 6's target reads ("auditing costs
# under 5% of the delivery benchmark's throughput"):
#   [PHASES="drain both accept"] [SECS=…] bench/audit_cost.sh [pairs]
# Builds the gateway twice from the working tree: as it is ("on"), and with
# bench/audit-off.patch applied in a temporary git worktree ("off": `Auditor::record` returns at
# once, so nothing is formatted, sent or journalled; callers still build their events). The
# patch is never part of the product. Then, per phase, runs `bench/cpu.sh` with each binary in
# turn, `pairs` times (default 10), the order swapped every pair so that a machine speeding up
# or slowing down does not favour one side. Every audit event goes over TCP to a receiver that
# discards it (SYSLOG=null), so the stream's cost on the gateway's side is counted and a
# receiver's is not.
# Prints each pair's rates and, per phase, the median of the pairs' changes (on against off) and
# their range. This VM scatters ±10–20% from run to run: trust medians of many pairs only.
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
# A fixed place, so that the next run compiles only what changed (cargo keys its artifacts by
# the source's path).
tree=$PWD/target/audit-off/src
git worktree remove --force "$tree" 2>/dev/null || rm -rf "$tree"
git worktree prune
cleanup() {
  git worktree remove --force "$tree" 2>/dev/null || true
  rm -rf "$bins"
}
trap cleanup EXIT
cargo build --release --quiet --bin qaqpa --example bench_emulator
cp target/release/qaqpa "$bins/on"
git worktree add --quiet --detach "$tree" HEAD
# The working tree's uncommitted changes too, so that both binaries come from the same source.
git diff HEAD --binary | { cd "$tree" && git apply --allow-empty; }
(cd "$tree" && git apply "$OLDPWD/bench/audit-off.patch") || {
  echo "bench/audit-off.patch no longer applies to crates/audit/src/lib.rs: update it" >&2
  exit 1
}
# A target directory of its own (target/audit-off, kept for the next run; the first run builds
# every dependency once more): built into target/, it would leave the binary that audits
# nothing at target/release/qaqpa.
(cd "$tree" && CARGO_TARGET_DIR="$OLDPWD/target/audit-off" cargo build --release --quiet --bin qaqpa)
cp target/audit-off/release/qaqpa "$bins/off"
rate() { # $1 = phase, $2 = binary: messages per second of one bench/cpu.sh run
  SYSLOG=null PHASE=$1 QAQPA_BIN=$2 bench/cpu.sh "$(secs_of "$1")" 2>/dev/null |
    awk '/^(accepted|delivered)/ { for (i = 1; i <= NF; i++) if ($(i + 1) ~ /^msg\/s/) { r = $i } } END { if (r == "") exit 1; print r }'
}
for phase in $PHASES; do
  changes=()
  for i in $(seq 1 "$PAIRS"); do
    if [ $((i % 2)) -eq 1 ]; then
      off=$(rate "$phase" "$bins/off"); on=$(rate "$phase" "$bins/on")
    else
      on=$(rate "$phase" "$bins/on"); off=$(rate "$phase" "$bins/off")
    fi
    change=$(echo "$on $off" | awk '{ printf "%+.1f", ($1 / $2 - 1) * 100 }')
    changes+=("$change")
    echo "$(date -u +%H:%M:%S) $phase pair $i: off $off msg/s, on $on msg/s, $change%"
  done
  printf '%s\n' "${changes[@]}" | sort -g | awk -v phase="$phase" '
    { v[NR] = $1 }
    END {
      m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      printf "%s: auditing changes throughput by %+.1f%% (median of %d pairs; from %+.1f%% to %+.1f%%)\n", phase, m, NR, v[1], v[NR]
    }'
done
