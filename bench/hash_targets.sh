#!/usr/bin/env bash
# bench/hash_targets.sh: consistent-hashing over 100 targets against one target.
#
# One tollgate (1 worker, PROXY_CPU) with two upstreams, both
# consistent-hashing on the header X-Key: `one` with a single target, `hundred`
# with 100 (ports 18300-18399 of one nginx answering a static 200, generated
# below from bench/nginx-upstream.conf's settings, on LOAD_CPU). wrk sends a
# different X-Key on each request (bench/hash_targets.lua), so the 100-target
# run spreads over every target and its keepalive connections. RUNS rounds
# alternate the order; the median requests/s and CPU time per request of
# each (and of the upstream nginx, which shares the load core with wrk), and
# the ratio hundred/one against the target of issue 12 (>= 0.97x).
# A miss is printed, never an error.
#
# Environment: RUNS (5), DURATION (10), CONNS (50), BUILD (release, or a build
# directory such as `build`), WORK, PROXY_CPU, LOAD_CPU.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[ -x "$BIN" ] || die "$BIN is missing: run bench/run (it builds it) or set BUILD"
FIRST=18300
N=100

cleanup() {
  "$BIN" stop -p "$WORK/tg" >/dev/null 2>&1 || true
  stop_nginx hash-upstream
}
trap cleanup EXIT

mkdir -p "$WORK/hash-upstream/logs"
port_free "$TG_PORT"
for i in $(seq 0 $((N - 1))); do port_free $((FIRST + i)); done
{
  echo "worker_processes 1; daemon on; pid logs/nginx.pid; error_log logs/error.log;"
  echo "events { worker_connections 8192; }"
  echo "http { access_log off; default_type text/plain;"
  echo "  keepalive_requests 1000000; keepalive_timeout 75s;"
  echo "  server {"
  for i in $(seq 0 $((N - 1))); do echo "    listen 127.0.0.1:$((FIRST + i)) reuseport backlog=8192;"; done
  echo "    location / { return 200 \"hello from the upstream\n\"; }"
  echo "  }"
  echo "}"
} >"$WORK/hash-upstream.conf"
taskset -c "$LOAD_CPU" nginx -p "$WORK/hash-upstream/" -e "$WORK/hash-upstream/logs/error.log" \
  -c "$WORK/hash-upstream.conf"
wait_port "$FIRST"
wait_port $((FIRST + N - 1))

{
  echo '_format_version: "3.0"'
  echo "upstreams:"
  echo "- name: one"
  echo "  hash_on: header"
  echo "  hash_on_header: X-Key"
  echo "  targets:"
  echo "  - target: 127.0.0.1:$FIRST"
  echo "- name: hundred"
  echo "  hash_on: header"
  echo "  hash_on_header: X-Key"
  echo "  targets:"
  for i in $(seq 0 $((N - 1))); do echo "  - target: 127.0.0.1:$((FIRST + i))"; done
  echo "services:"
  for u in one hundred; do
    echo "- name: $u"
    echo "  host: $u"
    echo "  routes:"
    echo "  - name: $u"
    echo "    paths: [/$u]"
  done
} >"$WORK/hash.yaml"
write_tollgate_conf "$WORK/hash.conf" "$WORK/hash.yaml"
rm -rf "$WORK/tg"
taskset -c "$PROXY_CPU" "$BIN" start -c "$WORK/hash.conf" >/dev/null
wait_port "$TG_PORT"
PID="$(cat "$WORK/tg/pids/tollgate.pid")"
for u in one hundred; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H 'X-Key: probe' "http://127.0.0.1:$TG_PORT/$u")
  [ "$code" = 200 ] || die "/$u answers $code"
done

NGX="$(pgrep -P "$(cat "$WORK/hash-upstream/logs/nginx.pid")" | head -1)"

# run NAME: one wrk run; appends "rps cpu_us_per_request upstream_cpu_us_per_request"
# to $WORK/hash-NAME.txt
run() {
  local t0 t1 n0 n1 rps req
  t0=$(cpu_ticks "$PID")
  n0=$(cpu_ticks "$NGX")
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 5s \
    -s "$ROOT/bench/hash_targets.lua" "http://127.0.0.1:$TG_PORT/$1" >"$WORK/wrk-last.txt"
  t1=$(cpu_ticks "$PID")
  n1=$(cpu_ticks "$NGX")
  [ "$(wrk_errors)" = 0 ] || log "$1: $(wrk_errors) errors"
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk-last.txt")
  req=$(awk '/requests in/ {print $1}' "$WORK/wrk-last.txt")
  echo "$rps $(echo "($t1 - $t0) * 1000000 / $(getconf CLK_TCK) / $req" | bc -l)" \
    "$(echo "($n1 - $n0) * 1000000 / $(getconf CLK_TCK) / $req" | bc -l)" >>"$WORK/hash-$1.txt"
  log "$1: $rps req/s"
}

rm -f "$WORK/hash-one.txt" "$WORK/hash-hundred.txt"
log "warm-up"
DURATION=2 run hundred >/dev/null 2>&1; rm -f "$WORK/hash-hundred.txt"
for r in $(seq 1 "$RUNS"); do
  if [ $((r % 2)) = 1 ]; then run one; run hundred; else run hundred; run one; fi
done
one=$(awk '{print $1}' "$WORK/hash-one.txt" | median)
hundred=$(awk '{print $1}' "$WORK/hash-hundred.txt" | median)
cpu_one=$(awk '{print $2}' "$WORK/hash-one.txt" | median)
cpu_hundred=$(awk '{print $2}' "$WORK/hash-hundred.txt" | median)
up_one=$(awk '{print $3}' "$WORK/hash-one.txt" | median)
up_hundred=$(awk '{print $3}' "$WORK/hash-hundred.txt" | median)
ratio=$(echo "$hundred / $one" | bc -l)
printf 'consistent-hashing, median of %s runs of %ss, %s connections\n' "$RUNS" "$DURATION" "$CONNS"
printf '  1 target:    %10.0f req/s  tollgate %6.1f us CPU/request  (upstream nginx %5.1f)\n' \
  "$one" "$cpu_one" "$up_one"
printf '  100 targets: %10.0f req/s  tollgate %6.1f us CPU/request  (upstream nginx %5.1f)\n' \
  "$hundred" "$cpu_hundred" "$up_hundred"
printf '  CPU/request 1/100: %.3f (when the load core saturates first, this is what compares)\n' \
  "$(echo "$cpu_one / $cpu_hundred" | bc -l)"
if [ "$(echo "$ratio >= 0.97" | bc -l)" = 1 ]; then verdict=PASS; else verdict=MISS; fi
printf '  ratio 100/1: %.3f (target >= 0.97)  %s\n' "$ratio" "$verdict"
