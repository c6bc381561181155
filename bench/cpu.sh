#!/usr/bin/env bash
# CPU per accepted message, by thread, to compare two builds on a noisy machine:
#   QAQPA_BIN=<binary> bench/cpu.sh [seconds]
# Runs the accept phase of bench/run.sh (wrk -t2 -c64, 1 KiB documents, delivery off, SQLite)
# and prints the accept rate and, per thread name, the CPU time (user + system, from
# /proc/<pid>/task/*/stat) it spent per accepted message, plus wrk's own CPU per request.
# Rates move with the machine's load; CPU per message moves much less, so run two builds
# alternately a few times and compare these figures (see docs/BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time; }
if [ -z "${QAQPA_BIN:-}" ]; then cargo build --release --quiet --bin qaqpa; fi
QBIN=${QAQPA_BIN:-target/release/qaqpa}
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
GW_PORT=18480
cat > "$work/routes.toml" <<R
[[route]]
name = "bench"
adapter = "http"
kinds = ["http.post"]
[route.settings]
url = "http://127.0.0.1:9/deliver"
R
cat > "$work/qaqpa.toml" <<C
listen = "127.0.0.1:$GW_PORT"
routes = "routes.toml"
[store]
kind = "sqlite"
data_dir = "data"
[api]
rate_per_key = 1000000.0
rate_burst = 1000000
[engine]
deliver = false
[log]
filter = "warn"
C
export QAQPA_WEBHOOK_SECRET="bench secret bench secret bench secret"
KEY=$($QBIN keys create --config "$work/qaqpa.toml" --client bench | sed -n 's/^token: *//p')
$QBIN serve --config "$work/qaqpa.toml" & GW_PID=$!
until curl -sf "http://127.0.0.1:$GW_PORT/readyz" >/dev/null; do sleep 0.1; done
# CPU ticks per thread name, summed over the threads of that name.
ticks() {
  cat /proc/$GW_PID/task/*/stat 2>/dev/null | awk '{
    name = substr($0, index($0, "(") + 1); name = substr(name, 1, index(name, ")") - 1); gsub(/ /, "_", name)
    rest = substr($0, index($0, ") ") + 2); split(rest, f, " "); t[name] += f[12] + f[13]
  } END { for (n in t) print n, t[n] }' | sort
}
ticks > "$work/before"
out=$(QAQPA_API_KEY=$KEY /usr/bin/time -f "wrkcpu %U %S" wrk -t2 -c64 -d"${SECS}s" -s bench/post.lua "http://127.0.0.1:$GW_PORT" 2>&1)
ticks > "$work/after"
n=$(echo "$out" | awk '/requests in/ {print $1}')
hz=$(getconf CLK_TCK)
echo "accepted $n in ${SECS}s: $(echo "$out" | awk '/Requests\/sec/ {print $2}') msg/s"
join -a2 -e0 -o 0,1.2,2.2 "$work/before" "$work/after" |
  awk -v n="$n" -v hz="$hz" '{ us = ($3 - $2) * 1e6 / hz / n; total += us; printf "  %-18s %6.1f µs/msg\n", $1, us } END { printf "  %-18s %6.1f µs/msg\n", "gateway total", total }'
echo "$out" | awk -v n="$n" '/wrkcpu/ { printf "  %-18s %6.1f µs/req\n", "wrk (load tool)", ($2 + $3) * 1e6 / n }'
