#!/usr/bin/env bash
# CPU per message, by thread, to compare builds on a noisy machine:
#   QAQPA_BIN=<binary> [PHASE=accept|drain|both] [SYSLOG=tcp|null] bench/cpu.sh [seconds]
# accept (default): the accept phase of bench/run.sh (wrk -t2 -c64, 1 KiB documents, delivery
#   off, SQLite) for `seconds`; CPU per accepted message.
# drain: accepts for `seconds` with delivery off, then starts a gateway with delivery on and
#   measures until the emulator has every message; CPU per delivered message.
# both: phase 3 of bench/run.sh, accepting for `seconds` with delivery on, measured until the
#   emulator has every message; CPU per message accepted and delivered.
# Prints, per thread name, the CPU time (user + system, from /proc/<pid>/task/*/stat) spent per
# message, the gateway's total, the emulator's, the whole machine's (busy time of all CPUs
# from /proc/stat: everything running here, the load tool and other tenants included), wrk's
# own CPU (accept) and the receiver's (SYSLOG=tcp: every
# audit event is streamed to a local rsyslogd over TCP, as in bench/run.sh; SYSLOG=null: to a
# receiver that discards it, see bench/lib.sh). Rates move with the
# machine's load; CPU per message moves much less, so run builds alternately a few times and
# compare these figures (see docs/BENCHMARKS.md).
# PERF=<file>: also records a `perf` profile (cpu-clock, DWARF call graphs, 499 Hz) of the
# gateway over the measured phase, for `perf report -i <file> --comm <thread>`.
# BACKLOG=<dir> (PHASE=drain): when <dir> holds no backlog, accepts as usual, saves the data
# directory there (gateway stopped) and stops without delivering; when it holds one, delivers a
# copy of it instead of accepting, so that builds which accept at different rates are measured
# on the same messages, and none of them right after its own accepting.
# CALLGRIND=<file>: runs the measured gateway under valgrind's callgrind instead (50-100 times
# slower, so use a short phase, e.g. `bench/cpu.sh 1`) and prints the instructions it executed
# per message, in all and in the audit path's parts: a count that does not move with this
# VM's load, for comparing builds (startup and shutdown are included). Valgrind hides the CPU's
# SHA extensions, so the journal's SHA-256 runs in software there and counts ~15x what it
# costs natively. Kernel time (syscalls) is not counted at all.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
PHASE=${PHASE:-accept}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time; }
cargo build --release --quiet --example bench_emulator
if [ -z "${QAQPA_BIN:-}" ]; then cargo build --release --quiet --bin qaqpa; fi
QBIN=${QAQPA_BIN:-target/release/qaqpa}
work=$(mktemp -d); chmod 755 "$work"; trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
GW_PORT=18480; EMU_PORT=18481; SYSLOG_PORT=18614
target/release/examples/bench_emulator "127.0.0.1:$EMU_PORT" >/dev/null & EMU_PID=$!
. bench/lib.sh
write_routes
start_receiver "$SYSLOG_PORT"
SQLITE=$'[store]\nkind = "sqlite"\ndata_dir = "data"'
# CPU ticks per thread name, summed over the threads of that name (plus the receiver's).
ticks() {
  { { cat /proc/$GW_PID/task/*/stat 2>/dev/null
    if [ -n "$RSYSLOG_PID" ]; then
      sed 's/^[0-9]* ([^)]*)/0 (receiver:receiver)/' /proc/$RSYSLOG_PID/stat
    fi
    sed 's/^[0-9]* ([^)]*)/0 (emulator:emulator)/' /proc/$EMU_PID/stat
  } | awk '{
    name = substr($0, index($0, "(") + 1); name = substr(name, 1, index(name, ")") - 1); gsub(/ /, "_", name)
    rest = substr($0, index($0, ") ") + 2); split(rest, f, " "); t[name] += f[12] + f[13]
  } END { for (n in t) print n, t[n] }'
  # The whole machine's busy ticks (all CPUs, everything but idle and iowait).
  awk '/^cpu / { print "machine:busy", $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
  } | sort
}
report() { # $1 = messages
  join -a2 -e0 -o 0,1.2,2.2 "$work/before" "$work/after" |
    awk -v n="$1" -v hz="$(getconf CLK_TCK)" '{
      us = ($3 - $2) * 1e6 / hz / n
      if ($1 ~ /^receiver:/) { recv = us; next }
      if ($1 ~ /^emulator:/) { emu = us; next }
      if ($1 ~ /^machine:/) { machine = us; next }
      total += us; printf "  %-18s %6.1f µs/msg\n", $1, us
    } END { printf "  %-18s %6.1f µs/msg\n", "gateway total", total
            if (recv != "") printf "  %-18s %6.1f µs/msg\n", "receiver", recv
            printf "  %-18s %6.1f µs/msg\n", "emulator", emu
            printf "  %-18s %6.1f µs/msg\n", "machine (all)", machine }'
}
CG_WRAP="" # what the measured gateway runs under
if [ -n "${CALLGRIND:-}" ]; then
  command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; }
  CALLGRIND=$(realpath -m "$CALLGRIND")
  CG_WRAP="valgrind --tool=callgrind --callgrind-out-file=$CALLGRIND"
fi
# Instructions per message ($1 = messages) from the callgrind file, once the gateway stopped.
callgrind_report() {
  [ -n "${CALLGRIND:-}" ] || return 0
  stop_gateway
  # From a directory that holds no source: below the current one, callgrind_annotate shortens
  # the file names and splits the inlined functions' counts differently.
  (cd "$work" && callgrind_annotate --inclusive=yes --threshold=100 --auto=no "$CALLGRIND" 2>/dev/null) | awk -v n="$1" '
    function part(fn, name) {
      if ((fn != "" && index($0, fn " [") == 0) || (name in seen)) return
      seen[name] = 1; v = $1; gsub(",", "", v); printf "  %-42s %8.0f instructions/msg\n", name, v / n
    }
    /PROGRAM TOTALS/ { part("", "gateway total"); next }
    {
      part("qaqpa_audit::Auditor::record", "audit: Auditor::record (+ record text)")
      part("qaqpa_audit::sink::Task::run::{{closure}}", "audit: syslog sink task")
      part("qaqpa_audit::store::sqlite::insert_block", "audit: journal block (chain, zstd, rows)")
      part("qaqpa_audit::store::chain_digest", "audit:   of it SHA-256 chain (software here)")
      part("qaqpa_audit::event::AuditEvent::exchange", "audit: building EXCHANGE events")
    }'
}
PERF_PID=""
start_perf() {
  [ -n "${PERF:-}" ] || return 0
  perf record -q -e cpu-clock -F 499 --call-graph dwarf,16384 -p "$GW_PID" -o "$PERF" 2>/dev/null &
  PERF_PID=$!
  sleep 0.5 # perf attaches to every thread before the measured phase starts
}
stop_perf() { [ -z "$PERF_PID" ] || { kill -INT "$PERF_PID"; wait "$PERF_PID" || true; PERF_PID=""; }; }
case "$PHASE" in
  accept|drain|both) ;;
  *) echo "PHASE must be accept, drain or both, not $PHASE" >&2; exit 2 ;;
esac
# The drain's measured part: delivers the $1 messages the data directory holds.
deliver_backlog() {
  write_config true "$SQLITE"
  start=$(date +%s.%N)
  GW_WRAP=$CG_WRAP start_gateway
  start_perf
  ticks > "$work/before"
  while [ "$(emulator_count)" -lt "$1" ]; do sleep 0.05; done
  ticks > "$work/after"
  stop_perf
  end=$(date +%s.%N)
  echo "delivered $1 in $(echo "$end - $start" | bc -l | xargs printf '%.1f') s: $(echo "$1 / ($end - $start)" | bc -l | xargs printf '%.0f') msg/s"
  report "$1"
  callgrind_report "$1"
}
if [ "$PHASE" = drain ] && [ -n "${BACKLOG:-}" ] && [ -f "$BACKLOG/n" ]; then
  # The backlog an earlier run saved: the same messages to deliver, whatever this build accepts.
  # Written out first, so that the kernel's writeback of the copy does not fall into the
  # measured part.
  cp -a "$BACKLOG/data" "$work/data"
  sync
  deliver_backlog "$(cat "$BACKLOG/n")"
  exit 0
fi
write_config "$([ "$PHASE" = both ] && echo true || echo false)" "$SQLITE"
KEY=$($QBIN keys create --config "$work/qaqpa.toml" --client bench | sed -n 's/^token: *//p')
if [ "$PHASE" = drain ]; then
  start_gateway
else
  GW_WRAP=$CG_WRAP start_gateway
  start_perf
fi
start=$(date +%s.%N)
ticks > "$work/before"
out=$(QAQPA_API_KEY=$KEY /usr/bin/time -f "wrkcpu %U %S" wrk -t2 -c64 -d"${SECS}s" -s bench/post.lua "http://127.0.0.1:$GW_PORT" 2>&1)
n=$(echo "$out" | awk '/requests in/ {print $1}')
if [ "$PHASE" = both ]; then
  # Until the last accepted message is delivered: its delivery's CPU belongs to the phase.
  waited=0
  while [ "$(emulator_count)" -lt "$n" ]; do
    sleep 0.05; waited=$((waited + 1))
    [ "$waited" -lt 6000 ] || { echo "after 300 s the emulator has $(emulator_count) of $n messages" >&2; exit 1; }
  done
fi
ticks > "$work/after"
stop_perf
if [ "$PHASE" = both ]; then
  end=$(date +%s.%N)
  echo "accepted and delivered $n in $(echo "$end - $start" | bc -l | xargs printf '%.1f') s: $(echo "$n / ($end - $start)" | bc -l | xargs printf '%.0f') msg/s"
  report "$n"
  callgrind_report "$n"
  exit 0
fi
if [ "$PHASE" = accept ]; then
  echo "accepted $n in ${SECS}s: $(echo "$out" | awk '/Requests\/sec/ {print $2}') msg/s"
  report "$n"
  echo "$out" | awk -v n="$n" '/wrkcpu/ { printf "  %-18s %6.1f µs/req\n", "wrk (load tool)", ($2 + $3) * 1e6 / n }'
  callgrind_report "$n"
  exit 0
fi
stop_gateway
if [ -n "${BACKLOG:-}" ]; then
  mkdir -p "$BACKLOG"; cp -a "$work/data" "$BACKLOG/data"; echo "$n" > "$BACKLOG/n"
  echo "accepted $n and saved them in $BACKLOG; nothing delivered"
  exit 0
fi
deliver_backlog "$n"
