#!/usr/bin/env bash
# Gateway benchmark over real sockets (see docs/BENCHMARKS.md for results and how to read them).
#   bench/run.sh [sqlite|postgres] [seconds]
# Starts the HTTP emulator and the release gateway on the chosen store, loads POST /v1/messages
# with wrk (1 KiB documents, 64 connections), waits until every accepted message is delivered,
# and prints accept rate, latency percentiles, delivery rate and peak RSS; then measures nginx
# proxy_pass to the same emulator as the ceiling.
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=${1:-sqlite}
SECS=${2:-20}
CONNS=${CONNS:-64}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx-light || apt-get install -y -qq nginx; }
cargo build --release --quiet --bin qaqpa --example bench_emulator
work=$(mktemp -d); chmod 755 "$work"; trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
EMU_PORT=18081; GW_PORT=18080; NGINX_PORT=18082
target/release/examples/bench_emulator "127.0.0.1:$EMU_PORT" & EMU_PID=$!
cat > "$work/routes.toml" <<R
[[route]]
name = "bench"
adapter = "http"
kinds = ["http.post"]
timeout_ms = 10000
[route.limits]
concurrency = 256
breaker_failures = 100000
[route.settings]
url = "http://127.0.0.1:$EMU_PORT/deliver"
R
if [ "$STORE" = postgres ]; then
  STORE_CFG=$'[store]\nkind = "postgres"\npool_size = 32'
  PGDIR="$work/pg"; mkdir -p "$PGDIR"; chown postgres "$PGDIR"
  BIN=$(ls -d /usr/lib/postgresql/*/bin | tail -1)
  runuser -u postgres -- "$BIN/initdb" -D "$PGDIR/data" -A trust -U postgres >/dev/null
  runuser -u postgres -- "$BIN/pg_ctl" -D "$PGDIR/data" -o "-p 15432 -k $PGDIR -c listen_addresses=127.0.0.1 -c max_connections=200" -l "$PGDIR/log" -w start >/dev/null
  trap 'runuser -u postgres -- "$BIN/pg_ctl" -D "$PGDIR/data" -m immediate stop >/dev/null 2>&1; kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
  export QAQPA_DATABASE_URL="postgres://postgres@127.0.0.1:15432/postgres"
else
  STORE_CFG=$'[store]\nkind = "sqlite"\ndata_dir = "data"'
fi
cat > "$work/qaqpa.toml" <<C
listen = "127.0.0.1:$GW_PORT"
routes = "routes.toml"
$STORE_CFG
[api]
rate_per_key = 1000000.0
rate_burst = 1000000
[log]
filter = "warn"
C
export QAQPA_WEBHOOK_SECRET="bench secret bench secret bench secret"
KEY=$(target/release/qaqpa keys create --config "$work/qaqpa.toml" --client bench | sed -n 's/^token: *//p')
target/release/qaqpa serve --config "$work/qaqpa.toml" & GW_PID=$!
until curl -sf "http://127.0.0.1:$GW_PORT/readyz" >/dev/null; do sleep 0.1; done
echo "== accept: wrk -t2 -c$CONNS -d${SECS}s POST /v1/messages (1 KiB, durable), store=$STORE"
start=$(date +%s.%N)
QAQPA_API_KEY=$KEY wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s bench/post.lua "http://127.0.0.1:$GW_PORT" | tee "$work/wrk.txt"
echo "== waiting for every accepted message to be delivered"
total=$(grep -o '[0-9]* requests in' "$work/wrk.txt" | grep -o '^[0-9]*')
while :; do
  got=$(curl -s "http://127.0.0.1:$((EMU_PORT + 10))/count")
  [ "$got" -ge "$total" ] && break
  sleep 0.2
done
end=$(date +%s.%N)
echo "delivered $got messages; end-to-end $(echo "$got / ($end - $start)" | bc -l | xargs printf '%.0f') msg/s from first submit to last delivery"
echo "peak RSS of the gateway: $(grep VmHWM /proc/$GW_PID/status)"
kill $GW_PID; wait $GW_PID 2>/dev/null || true
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
