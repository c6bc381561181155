#!/usr/bin/env bash
# CPU per message, by thread, to compare builds on a noisy machine:
#   QAQPA_BIN=<binary> [PHASE=accept|drain] [SYSLOG=tcp|null] bench/cpu.sh [seconds]
# accept (default): the accept phase of bench/run.sh (wrk -t2 -c64, 1 KiB documents, delivery
#   off, SQLite) for `seconds`; CPU per accepted message.
# drain: accepts for `seconds` with delivery off, then starts a gateway with delivery on and
#   measures until the emulator has every message; CPU per delivered message.
# Prints, per thread name, the CPU time (user + system, from /proc/<pid>/task/*/stat) spent per
# message, the gateway's total, wrk's own CPU (accept) and the receiver's (SYSLOG=tcp: every
# audit event is streamed to a local rsyslogd over TCP, as in bench/run.sh; SYSLOG=null: to a
# receiver that discards it, see bench/lib.sh). Rates move with the
# machine's load; CPU per message moves much less, so run builds alternately a few times and
# compare these figures (see docs/BENCHMARKS.md).
# PERF=<file>: also records a `perf` profile (cpu-clock, DWARF call graphs, 499 Hz) of the
# gateway over the measured phase, for `perf report -i <file> --comm <thread>`.
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
target/release/examples/bench_emulator "127.0.0.1:$EMU_PORT" >/dev/null &
. bench/lib.sh
write_routes
start_receiver "$SYSLOG_PORT"
SQLITE=$'[store]\nkind = "sqlite"\ndata_dir = "data"'
# CPU ticks per thread name, summed over the threads of that name (plus the receiver's).
ticks() {
  { cat /proc/$GW_PID/task/*/stat 2>/dev/null
    if [ -n "$RSYSLOG_PID" ]; then
      sed 's/^[0-9]* ([^)]*)/0 (receiver:receiver)/' /proc/$RSYSLOG_PID/stat
    fi
  } | awk '{
    name = substr($0, index($0, "(") + 1); name = substr(name, 1, index(name, ")") - 1); gsub(/ /, "_", name)
    rest = substr($0, index($0, ") ") + 2); split(rest, f, " "); t[name] += f[12] + f[13]
  } END { for (n in t) print n, t[n] }' | sort
}
report() { # $1 = messages
  join -a2 -e0 -o 0,1.2,2.2 "$work/before" "$work/after" |
    awk -v n="$1" -v hz="$(getconf CLK_TCK)" '{
      us = ($3 - $2) * 1e6 / hz / n
      if ($1 ~ /^receiver:/) { recv = us; next }
      total += us; printf "  %-18s %6.1f µs/msg\n", $1, us
    } END { printf "  %-18s %6.1f µs/msg\n", "gateway total", total
            if (recv != "") printf "  %-18s %6.1f µs/msg\n", "receiver", recv }'
}
PERF_PID=""
start_perf() {
  [ -n "${PERF:-}" ] || return 0
  perf record -q -e cpu-clock -F 499 --call-graph dwarf,16384 -p "$GW_PID" -o "$PERF" 2>/dev/null &
  PERF_PID=$!
  sleep 0.5 # perf attaches to every thread before the measured phase starts
}
stop_perf() { [ -z "$PERF_PID" ] || { kill -INT "$PERF_PID"; wait "$PERF_PID" || true; PERF_PID=""; }; }
write_config false "$SQLITE"
KEY=$($QBIN keys create --config "$work/qaqpa.toml" --client bench | sed -n 's/^token: *//p')
start_gateway
[ "$PHASE" = drain ] || start_perf
ticks > "$work/before"
out=$(QAQPA_API_KEY=$KEY /usr/bin/time -f "wrkcpu %U %S" wrk -t2 -c64 -d"${SECS}s" -s bench/post.lua "http://127.0.0.1:$GW_PORT" 2>&1)
ticks > "$work/after"
stop_perf
n=$(echo "$out" | awk '/requests in/ {print $1}')
if [ "$PHASE" = accept ]; then
  echo "accepted $n in ${SECS}s: $(echo "$out" | awk '/Requests\/sec/ {print $2}') msg/s"
  report "$n"
  echo "$out" | awk -v n="$n" '/wrkcpu/ { printf "  %-18s %6.1f µs/req\n", "wrk (load tool)", ($2 + $3) * 1e6 / n }'
  exit 0
fi
stop_gateway
write_config true "$SQLITE"
start=$(date +%s.%N)
start_gateway
start_perf
ticks > "$work/before"
while [ "$(emulator_count)" -lt "$n" ]; do sleep 0.05; done
ticks > "$work/after"
stop_perf
end=$(date +%s.%N)
echo "delivered $n in $(echo "$end - $start" | bc -l | xargs printf '%.1f') s: $(echo "$n / ($end - $start)" | bc -l | xargs printf '%.0f') msg/s"
report "$n"
