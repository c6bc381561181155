#!/usr/bin/env bash
# Gateway benchmark over real sockets (see docs/BENCHMARKS.md for results and how to read them).
#   bench/run.sh [sqlite|postgres] [seconds]
# Starts the HTTP emulator and the release gateway on the chosen store, then measures:
#   1. accept: wrk POSTs 1 KiB documents to /v1/messages (each 202 only once durably committed)
#      to a gateway that only accepts ([engine] deliver = false): accept rate, p50/p99, RSS;
#   2. deliver: a gateway on the same store with delivery on drains that backlog to the
#      emulator: delivery rate from start to the last message received;
#   3. both at once: accept under full concurrent delivery, on a fresh store;
#   4. the ceiling: nginx proxy_pass to the same emulator under the same wrk load.
# Knobs: CONNS (wrk connections, 64); SYSLOG=tcp streams the audit events to a local rsyslogd
# over TCP and reports how many arrived per second; QAQPA_BIN runs that binary instead of
# building this checkout (to compare two builds on one machine in one sitting).
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=${1:-sqlite}
SECS=${2:-20}
CONNS=${CONNS:-64}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx-light || apt-get install -y -qq nginx; }
cargo build --release --quiet --example bench_emulator
if [ -z "${QAQPA_BIN:-}" ]; then cargo build --release --quiet --bin qaqpa; fi
QBIN=${QAQPA_BIN:-target/release/qaqpa}
work=$(mktemp -d); chmod 755 "$work"; trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
EMU_PORT=18081; GW_PORT=18080; NGINX_PORT=18082
target/release/examples/bench_emulator "127.0.0.1:$EMU_PORT" & EMU_PID=$!
. bench/lib.sh
write_routes
if [ "$STORE" = postgres ]; then
  STORE_CFG=$'[store]\nkind = "postgres"\npool_size = 32'
  PGDIR="$work/pg"; mkdir -p "$PGDIR"; chown postgres "$PGDIR"
  BIN=$(ls -d /usr/lib/postgresql/*/bin | tail -1)
  runuser -u postgres -- "$BIN/initdb" -D "$PGDIR/data" -A trust -U postgres >/dev/null
  runuser -u postgres -- "$BIN/pg_ctl" -D "$PGDIR/data" -o "-p 15432 -k $PGDIR -c listen_addresses=127.0.0.1 -c max_connections=200" -l "$PGDIR/log" -w start >/dev/null
  trap 'runuser -u postgres -- "$BIN/pg_ctl" -D "$PGDIR/data" -m immediate stop >/dev/null 2>&1; kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
  export QAQPA_DATABASE_URL="postgres://postgres@127.0.0.1:15432/postgres"
else
  STORE_CFG=$'[store]\nkind = "sqlite"\ndata_dir = "data"'
fi
start_receiver 18514
syslog_lines() { [ -f "$work/rsyslog/events.log" ] && wc -l < "$work/rsyslog/events.log" || echo 0; }
# CPU seconds (user + system) rsyslogd has used so far: the receiver shares the machine's two
# cores with the gateway here, which a SOC's receiver would not.
receiver_cpu() {
  [ -f "$work/rsyslog/pid" ] || { echo 0; return; }
  awk -v t="$(getconf CLK_TCK)" '{sub(/.*\) /, ""); split($0, f, " "); print (f[12] + f[13]) / t}' "/proc/$(cat "$work/rsyslog/pid")/stat"
}
receiver_share() { # $1 = CPU seconds at the start, $2 = start time, $3 = end time
  if [ "${SYSLOG:-}" = tcp ]; then
    used=$(echo "$(receiver_cpu) - $1" | bc -l)
    echo "rsyslogd used $(printf '%.2f' "$used") CPU-s in the phase: $(echo "100 * $used / (2 * ($3 - $2))" | bc -l | xargs printf '%.1f')% of the two cores"
  fi
}
# $1 = deliver (true|false), $2 = data directory name (SQLite)
config() { write_config "$1" "$(echo "$STORE_CFG" | sed "s/data_dir = \"data\"/data_dir = \"$2\"/")"; }
wait_delivered() { # $1 = how many in all; prints the end time
  while :; do got=$(emulator_count); [ "$got" -ge "$1" ] && break; sleep 0.1; done
  date +%s.%N
}
requests() { grep -o '[0-9]* requests in' "$1" | grep -o '^[0-9]*'; }

config false data
KEY=$($QBIN keys create --config "$work/qaqpa.toml" --client bench | sed -n 's/^token: *//p')
start_gateway
echo "== 1. accept only: wrk -t2 -c$CONNS -d${SECS}s POST /v1/messages (1 KiB, durable), store=$STORE, delivery off"
QAQPA_API_KEY=$KEY wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s bench/post.lua "http://127.0.0.1:$GW_PORT" | tee "$work/accept.txt"
echo "peak RSS of the accepting gateway: $(grep VmHWM /proc/$GW_PID/status)"
stop_gateway
backlog=$(requests "$work/accept.txt")

echo "== 2. deliver: a gateway with delivery on drains the $backlog accepted messages"
config true data
before=$(emulator_count)
rcpu=$(receiver_cpu)
start=$(date +%s.%N)
start_gateway
end=$(wait_delivered $((before + backlog)))
receiver_share "$rcpu" "$start" "$end"
echo "delivered $backlog messages in $(echo "$end - $start" | bc -l | xargs printf '%.2f') s: $(echo "$backlog / ($end - $start)" | bc -l | xargs printf '%.0f') msg/s"
echo "peak RSS of the delivering gateway: $(grep VmHWM /proc/$GW_PID/status)"
stop_gateway

lines_before=$(syslog_lines)
echo "== 3. both at once: accept while delivering, fresh store"
config true data2
KEY=$($QBIN keys create --config "$work/qaqpa.toml" --client bench | sed -n 's/^token: *//p')
before=$(emulator_count)
start_gateway
rcpu=$(receiver_cpu)
start=$(date +%s.%N)
QAQPA_API_KEY=$KEY wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s bench/post.lua "http://127.0.0.1:$GW_PORT" | tee "$work/both.txt"
total=$(requests "$work/both.txt")
end=$(wait_delivered $((before + total)))
receiver_share "$rcpu" "$start" "$end"
echo "delivered $total messages; end-to-end $(echo "$total / ($end - $start)" | bc -l | xargs printf '%.0f') msg/s from first submit to last delivery"
echo "peak RSS of the gateway: $(grep VmHWM /proc/$GW_PID/status)"
if [ "${SYSLOG:-}" = tcp ]; then
  # Wait until the receiver's file stops growing, then count what arrived during phase 3.
  prev=-1; while :; do cur=$(syslog_lines); [ "$cur" = "$prev" ] && break; prev=$cur; sleep 1; done
  syslog_end=$(date +%s.%N)
  got=$((cur - lines_before))
  echo "syslog: $got audit events reached rsyslogd over TCP during phase 3: $(echo "$got / ($end - $start)" | bc -l | xargs printf '%.0f') events/s over the phase ($(echo "$got / $total" | bc -l | xargs printf '%.1f') per message)"
fi
stop_gateway
echo "== baseline: nginx proxy_pass to the same emulator"
cat > "$work/nginx.conf" <<N
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 1024; }
http {
  access_log off;
  upstream emu { server 127.0.0.1:$EMU_PORT; keepalive 64; }
  server { listen 127.0.0.1:$NGINX_PORT; location / { proxy_pass http://emu; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
N
nginx -c "$work/nginx.conf"
wrk -t2 -c64 -d"${SECS}s" --latency -s bench/proxy.lua "http://127.0.0.1:$NGINX_PORT" | tee "$work/nginx.txt"
nginx -c "$work/nginx.conf" -s stop
