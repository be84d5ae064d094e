#!/usr/bin/env bash
# bench/healthcheck_kill.sh: a target dies under load and comes back (not in CI).
#
# tollgate (1 worker, pinned to PROXY_CPU) balances round-robin over three
# tg_echo_server processes (one each, so one can be killed alone) with passive
# checks (unhealthy.tcp_failures = 1) and active http checks
# (healthy.interval = 1, healthy.successes = 1, unhealthy.interval = 1,
# unhealthy.tcp_failures = 2). wrk runs for DURATION s (default 20) with CONNS
# connections on LOAD_CPU; after KILL_AT s (5) the third target is killed
# (SIGKILL), after RESTART_AT s (12) it is started again. The Admin API's
# GET /upstreams/bench/health is polled every 20 ms meanwhile.
#
# Prints: wrk's requests, the failed ones (non-2xx answers and socket errors),
# the time from the kill until the target is UNHEALTHY (eject), and from the
# restart until it is HEALTHY again (re-admit). Only the requests in flight on
# the killed target's connections may fail.
#
# Environment: DURATION, KILL_AT, RESTART_AT, CONNS (50), BUILD (release, or a
# build directory such as `build`), WORK, PROXY_CPU, LOAD_CPU.
HC_DURATION="${DURATION:-20}"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
DURATION="$HC_DURATION"
KILL_AT="${KILL_AT:-5}"
RESTART_AT="${RESTART_AT:-12}"
ADMIN_PORT=18111
T1=18211 T2=18212 T3=18213
[ -x "$BIN" ] || die "$BIN is missing: run bench/run (it builds it) or set BUILD"
command -v wrk >/dev/null || die "wrk is missing (bench/run installs it)"

declare -A EPID
POLLER=
cleanup() {
  [ -n "$POLLER" ] && kill "$POLLER" 2>/dev/null
  "$BIN" stop -p "$WORK/tg" >/dev/null 2>&1 || true
  for p in "${EPID[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

start_target() {
  taskset -c "$LOAD_CPU" "$ECHO_BIN" "$1" >/dev/null 2>&1 &
  EPID[$1]=$!
  wait_port "$1"
}

now_ms() { date +%s%3N; }

# health TARGET: HEALTHY / UNHEALTHY / ... from the Admin API
health() {
  curl -s --max-time 1 "http://127.0.0.1:$ADMIN_PORT/upstreams/bench/health" |
    python3 -c 'import json,sys
d = json.load(sys.stdin)
print(next((t["health"] for t in d["data"] if t["target"] == sys.argv[1]), "?"))' "$1" 2>/dev/null ||
    echo "?"
}

# The poller: one process (forking curl under load takes seconds) at a high
# priority (nice -15, so that the loaded cores do not delay its polls), on one
# kept-alive connection, writes "epoch_ms STATE" each time the target's state
# changes.
poll_health() {
  nice -n -15 python3 - "$ADMIN_PORT" "$1" "$WORK/hc-polls.txt" <<'PY' &
import http.client, json, sys, time
port, target, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
conn, last = None, None
while True:
    try:
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/upstreams/bench/health")
        d = json.loads(conn.getresponse().read())
        h = next((t["health"] for t in d["data"] if t["target"] == target), "?")
    except Exception:
        conn, h = None, "?"
    if h != last and h != "?":
        with open(out, "a") as f:
            f.write("%d %s\n" % (int(time.time() * 1000), h))
        last = h
    time.sleep(0.02)
PY
  POLLER=$!
}

# first_after STATE T0: ms from T0 to the first STATE the poller saw after T0
first_after() {
  awk -v s="$1" -v t0="$2" '$2 == s && $1 >= t0 { print $1 - t0; exit }' "$WORK/hc-polls.txt"
}

mkdir -p "$WORK"
rm -f "$WORK/hc-polls.txt"
for p in "$TG_PORT" "$ADMIN_PORT" "$T1" "$T2" "$T3"; do port_free "$p"; done
for p in "$T1" "$T2" "$T3"; do start_target "$p"; done
cat >"$WORK/hc.yaml" <<YAML
_format_version: "3.0"
upstreams:
- name: bench
  healthchecks:
    passive:
      unhealthy: { tcp_failures: 1 }
    active:
      type: http
      http_path: /
      healthy: { interval: 1, successes: 1 }
      unhealthy: { interval: 1, tcp_failures: 2 }
  targets:
  - target: 127.0.0.1:$T1
  - target: 127.0.0.1:$T2
  - target: 127.0.0.1:$T3
services:
- name: bench
  host: bench
  routes:
  - name: all
    paths: [/]
YAML
write_tollgate_conf "$WORK/hc.conf" "$WORK/hc.yaml"
sed -i "s|^admin_listen = off|admin_listen = 127.0.0.1:$ADMIN_PORT|" "$WORK/hc.conf"
rm -rf "$WORK/tg"
taskset -c "$PROXY_CPU" "$BIN" start -c "$WORK/hc.conf" >/dev/null
wait_port "$TG_PORT"
[ "$(health 127.0.0.1:$T3)" = HEALTHY ] || die "target 3 is not healthy at the start"

poll_health "127.0.0.1:$T3"
for _ in $(seq 1 100); do grep -q HEALTHY "$WORK/hc-polls.txt" 2>/dev/null && break; sleep 0.1; done
log "wrk ${DURATION}s, $CONNS connections; kill 127.0.0.1:$T3 at ${KILL_AT}s, restart at ${RESTART_AT}s"
taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 5s \
  "http://127.0.0.1:$TG_PORT/" >"$WORK/wrk-hc.txt" &
WRK=$!
t_start=$(now_ms)
sleep "$KILL_AT"
t_kill=$(now_ms)
kill -9 "${EPID[$T3]}"
log "killed at $(date +%T.%3N)"
unset "EPID[$T3]"
while [ $(($(now_ms) - t_start)) -lt $((RESTART_AT * 1000)) ]; do sleep 0.05; done
t_restart=$(now_ms)
start_target "$T3"
wait "$WRK"
sleep 0.2
eject=$(first_after UNHEALTHY "$t_kill")
readmit=$(first_after HEALTHY "$t_restart")

requests=$(awk '/requests in/ {print $1}' "$WORK/wrk-hc.txt")
failed=$(wrk_errors "$WORK/wrk-hc.txt")
rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk-hc.txt")
echo "requests: $requests ($rps/s), failed: $failed"
echo "eject (kill -> UNHEALTHY): ${eject:-never} ms"
echo "re-admit (restart -> HEALTHY): ${readmit:-never} ms"
grep -c "is now unhealthy\|is now healthy" "$WORK/tg/logs/error.log" >/dev/null &&
  grep "\[healthcheck\]" "$WORK/tg/logs/error.log" | sed 's/^/  log: /'
