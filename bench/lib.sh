# Shared by bench/run.sh and bench/cpu.sh (sourced, not run). Expects $work (a scratch
# directory), $EMU_PORT and $GW_PORT, and $QBIN (the gateway binary).

# routes.toml: one route for http.post to the bench emulator, limits out of the way.
write_routes() {
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
}

# When SYSLOG=tcp: starts a local rsyslogd that writes every line it gets over TCP on port $1
# to $work/rsyslog/events.log, and sets AUDIT_CFG (the [[audit.syslog]] table for the gateway)
# and RSYSLOG_PID. SYSLOG=null (bench/cpu.sh only): a receiver that reads the stream and
# throws it away (python3, 1 MiB reads), to measure the gateway's side of the stream without a
# receiver's parsing and file writes on the same two cores. Otherwise both stay empty.
AUDIT_CFG=""; RSYSLOG_PID=""
start_receiver() {
  if [ "${SYSLOG:-}" = null ]; then
    python3 -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(8)
while True:
    c, _ = s.accept()
    while c.recv(1 << 20):
        pass
    c.close()
' "$1" &
    RSYSLOG_PID=$!
    until (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; do sleep 0.1; done
    AUDIT_CFG=$'[[audit.syslog]]\nurl = "tcp://127.0.0.1:'"$1"'"'
    return 0
  fi
  [ "${SYSLOG:-}" = tcp ] || return 0
  command -v rsyslogd >/dev/null || apt-get install -y -qq rsyslog
  mkdir -p "$work/rsyslog"
  cat > "$work/rsyslog/rsyslog.conf" <<S
global(workDirectory="$work/rsyslog" maxMessageSize="64k")
template(name="raw" type="string" string="%rawmsg%\n")
module(load="imtcp" maxSessions="200")
input(type="imtcp" address="127.0.0.1" port="$1" ruleset="tcp")
ruleset(name="tcp") { action(type="omfile" file="$work/rsyslog/events.log" template="raw") }
S
  /usr/sbin/rsyslogd -n -f "$work/rsyslog/rsyslog.conf" -i "$work/rsyslog/pid" &
  RSYSLOG_PID=$!
  until (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; do sleep 0.1; done
  AUDIT_CFG=$'[[audit.syslog]]\nurl = "tcp://127.0.0.1:'"$1"'"'
}

# qaqpa.toml: $1 = deliver (true|false), $2 = the [store] table. Rate limits out of the way,
# warnings only, the audit receiver when there is one.
write_config() {
cat > "$work/qaqpa.toml" <<C
listen = "127.0.0.1:$GW_PORT"
routes = "routes.toml"
$2
[api]
rate_per_key = 1000000.0
rate_burst = 1000000
[engine]
deliver = $1
[log]
filter = "warn"
$AUDIT_CFG
C
}

export QAQPA_WEBHOOK_SECRET="bench secret bench secret bench secret"
start_gateway() {
  ${GW_WRAP:-} $QBIN serve --config "$work/qaqpa.toml" & GW_PID=$!
  until curl -sf "http://127.0.0.1:$GW_PORT/readyz" >/dev/null; do sleep 0.1; done
}
stop_gateway() { kill $GW_PID; wait $GW_PID 2>/dev/null || true; }
emulator_count() { curl -s "http://127.0.0.1:$((EMU_PORT + 10))/count"; }

# bench/audit_cost.sh and bench/audit_windows.sh: builds the gateway from the working tree with
# bench/audit-off.patch (auditing switched by QAQPA_BENCH_AUDIT_OFF or
# QAQPA_BENCH_AUDIT_SWITCH, see the patch) and copies it to $1. It is built in a git worktree at
# a fixed place, target/audit-off/src, so that dependencies are built once for all runs (cargo
# keys its artifacts by the source's path; the workspace's own crates are built again each
# time, a few minutes), into a target directory of its own (built into target/, it would leave
# the bench's binary at target/release/qaqpa). The patch is never part of the product.
build_audit_switch_binary() {
  local tree=$PWD/target/audit-off/src
  git worktree remove --force "$tree" 2>/dev/null || rm -rf "$tree"
  git worktree prune
  git worktree add --quiet --detach "$tree" HEAD
  # The working tree's uncommitted changes too, so that the binary is built from what is here.
  git diff HEAD --binary | (cd "$tree" && git apply --allow-empty)
  (cd "$tree" && git apply "$OLDPWD/bench/audit-off.patch") || {
    echo "bench/audit-off.patch no longer applies to crates/audit/src/lib.rs: update it" >&2
    git worktree remove --force "$tree"
    return 1
  }
  (cd "$tree" && CARGO_TARGET_DIR="$OLDPWD/target/audit-off" cargo build --release --quiet --bin qaqpa)
  cp target/audit-off/release/qaqpa "$1"
  git worktree remove --force "$tree"
}

# bench/audit_cost.sh and bench/audit_windows.sh: reads one change in percent per line (a
# pair's on against off) and prints, after `$1: auditing changes throughput by`, their median,
# and then their mean, a 95% interval of the mean and their range.
summarise_changes() {
  sort -g | awk -v head="$1" '
    { v[NR] = $1; s += $1; ss += $1 * $1 }
    END {
      m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      mean = s / NR; sd = (NR > 1) ? sqrt((ss - NR * mean * mean) / (NR - 1)) : 0
      half = 1.96 * sd / sqrt(NR)
      printf "%s: auditing changes throughput by %+.1f%% at the median of %d pairs;\n", head, m, NR
      printf "  mean %+.1f%%, 95%% interval of the mean %+.1f%% to %+.1f%%; pairs from %+.1f%% to %+.1f%%\n", mean, mean - half, mean + half, v[1], v[NR]
    }'
}
