#!/usr/bin/env bash
# bench/reload_under_load.sh (issue "Core", not part of CI): while wrk drives
# traffic through tollgate and one slow streaming upload and one slow download
# stay open, the declarative file is rewritten and reloaded RELOADS (20) times,
# changing routes each time (the routes of the traffic stay). Reports wrk's
# non-2xx responses and socket errors, whether each reload took effect, whether
# both slow transfers arrived intact, and with BUILD=asan (the ASan + UBSan
# build in build-bench-asan) whether a sanitizer report was written.
# Targets: 0 non-2xx, 0 socket errors, both transfers intact, no report.
# Bounded: wrk runs LOAD_SECONDS (60) s, each transfer at most 150 s.
#
# Environment: BUILD (release | asan), RELOADS (20), LOAD_SECONDS (60),
# WRK_CONNS (2), WORK (/tmp/tollgate-bench).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RELOADS="${RELOADS:-20}"
LOAD_SECONDS="${LOAD_SECONDS:-60}"
WRK_CONNS="${WRK_CONNS:-2}"
UP_SIZE=$((20 * 1024 * 1024))      # the upload, streamed (request_buffering: false)
DOWN_SIZE=$((24 * 1024 * 1024))    # the download, streamed from tg_echo_server
# both last about 64 s at these rates; the reloads end after about 42 s
UP_RATE=320k
DOWN_RATE=384k

install_tools
[ -x "$BIN" ] && [ -x "$ECHO_BIN" ] || build_tollgate
W="$WORK/reload"
rm -rf "$W" && mkdir -p "$W"
# sanitizer reports go to files of their own (and the error log is read too)
export ASAN_OPTIONS="log_path=$W/asan:detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="log_path=$W/ubsan:print_stacktrace=1:halt_on_error=1"

PIDS=()
cleanup() {
  "$BIN" stop -p "$W/tg" >/dev/null 2>&1 || true
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  stop_upstream
}
trap cleanup EXIT

for p in "$TG_PORT" "$ECHO_PORT"; do port_free "$p"; done
start_upstream
taskset -c "$LOAD_CPU" "$ECHO_BIN" -b 127.0.0.1 "$ECHO_PORT" >"$W/echo.log" 2>&1 &
PIDS+=($!)
wait_port "$ECHO_PORT"

# gen N: the declarative file of reload N. The routes of the traffic (/load,
# /up, /down) stay; a route /changing-N and a service port change each time.
gen() {
  cat >"$W/tollgate.yaml.tmp" <<YAML
_format_version: "3.0"
services:
- name: static
  url: http://127.0.0.1:$UP_PORT
  routes:
  - name: load
    paths: [/load]
- name: echo
  url: http://127.0.0.1:$ECHO_PORT
  routes:
  - name: upload
    paths: [/up]
    request_buffering: false
  - name: download
    paths: [/down]
  - name: changing-$1
    paths: [/changing-$1]
- name: unused-$1
  url: http://127.0.0.1:$((20000 + $1))/v$1
  routes:
  - name: unused-$1
    paths: [/unused-$1]
YAML
  mv "$W/tollgate.yaml.tmp" "$W/tollgate.yaml"   # the file is never read half-written
}
gen 0
cat >"$W/tollgate.conf" <<CONF
prefix = $W/tg
database = off
declarative_config = $W/tollgate.yaml
proxy_listen = 127.0.0.1:$TG_PORT reuseport backlog=8192
admin_listen = off
status_listen = off
worker_threads = 2
proxy_access_log = off
log_level = notice
CONF
taskset -c "$PROXY_CPU" "$BIN" start -c "$W/tollgate.conf" >/dev/null
wait_port "$TG_PORT" || die "tollgate did not start ($W/tg/logs/error.log)"
status() { curl -s -o /dev/null --max-time 2 -w '%{http_code}' "http://127.0.0.1:$TG_PORT$1"; }
[ "$(status /load)" = 200 ] || die "tollgate does not proxy /load"

head -c "$UP_SIZE" /dev/urandom >"$W/upload.bin"
up_adler="$(python3 -c "
import sys, zlib
print('%08x' % zlib.adler32(open(sys.argv[1], 'rb').read()))" "$W/upload.bin")"
# /bytes/N of tg_echo_server is "abc...z" repeated
down_sha="$(python3 -c "
import hashlib, string, sys
n = int(sys.argv[1]); s = (string.ascii_lowercase * (n // 26 + 1))[:n].encode()
print(hashlib.sha256(s).hexdigest())" "$DOWN_SIZE")"

log "wrk ($WRK_CONNS connections) for $LOAD_SECONDS s; an upload of $UP_SIZE bytes at $UP_RATE/s" \
  "and a download of $DOWN_SIZE bytes at $DOWN_RATE/s; $RELOADS reloads"
taskset -c "$LOAD_CPU" wrk -t1 -c"$WRK_CONNS" -d"${LOAD_SECONDS}s" --timeout 5s \
  "http://127.0.0.1:$TG_PORT/load" >"$W/wrk.txt" 2>&1 &
WRK_PID=$!; PIDS+=($WRK_PID)
curl -sS --max-time 150 --limit-rate "$UP_RATE" -H "Expect:" \
  -H "Content-Type: application/octet-stream" --data-binary @"$W/upload.bin" \
  -w '%{http_code} in %{time_total} s' -o "$W/upload.json" "http://127.0.0.1:$TG_PORT/up/anything" \
  >"$W/upload.status" 2>"$W/upload.err" &
UP_PID=$!; PIDS+=($UP_PID)
curl -sS --max-time 150 --limit-rate "$DOWN_RATE" -w '%{http_code} in %{time_total} s' \
  -o "$W/download.bin" "http://127.0.0.1:$TG_PORT/down/bytes/$DOWN_SIZE" \
  >"$W/download.status" 2>"$W/download.err" &
DOWN_PID=$!; PIDS+=($DOWN_PID)

# Reload every 2 s; after each, wait (at most 3 s) for the new route to answer
# and check the previous one is gone: the reload took effect while the slow
# transfers and wrk run on.
sleep 2
reload_refused=0; reload_effective=0; reload_log=""
for i in $(seq 1 "$RELOADS"); do
  t0="$(date +%s.%N)"
  gen "$i"
  if ! "$BIN" reload -p "$W/tg" >>"$W/reload.out" 2>&1; then
    reload_refused=$((reload_refused + 1))
  fi
  new=000
  for _ in $(seq 1 30); do
    new="$(status "/changing-$i/anything")"
    [ "$new" = 200 ] && break
    sleep 0.1
  done
  old="$(status "/changing-$((i - 1))/anything")"
  ms="$(echo "($(date +%s.%N) - $t0) * 1000" | bc -l)"
  [ "$new" = 200 ] && [ "$old" = 404 ] && reload_effective=$((reload_effective + 1))
  reload_log+="$(printf 'reload %2d: /changing-%d -> %s, /changing-%d -> %s (%.0f ms)' \
    "$i" "$i" "$new" "$((i - 1))" "$old" "$ms")"$'\n'
  sleep "$(echo "t = 2 - $ms / 1000; if (t < 0) 0 else t" | bc -l)"
done
xfers_open_after_reloads=0
kill -0 "$UP_PID" 2>/dev/null && xfers_open_after_reloads=$((xfers_open_after_reloads + 1))
kill -0 "$DOWN_PID" 2>/dev/null && xfers_open_after_reloads=$((xfers_open_after_reloads + 1))

wait "$WRK_PID" || true
up_rc=0; wait "$UP_PID" || up_rc=$?
down_rc=0; wait "$DOWN_PID" || down_rc=$?
PIDS=("${PIDS[0]}")

up_ok=no
up_what="curl exit $up_rc, status $(cat "$W/upload.status") $(head -c 200 "$W/upload.err")"
if [ "$up_rc" -eq 0 ] && python3 - "$W/upload.json" "$UP_SIZE" "$up_adler" \
     >"$W/upload.check" 2>&1 <<'PY'; then
import json, sys
j = json.load(open(sys.argv[1]))
print(f"upstream received {j['body_length']} bytes, adler32 {j['body_adler32']};", end=" ")
print(f"sent {sys.argv[2]} bytes, adler32 {sys.argv[3]}")
sys.exit(0 if j["body_length"] == int(sys.argv[2]) and j["body_adler32"] == sys.argv[3] else 1)
PY
  up_ok=yes
fi
down_got="$(stat -c %s "$W/download.bin" 2>/dev/null || echo 0)"
down_got_sha="$(sha256sum "$W/download.bin" 2>/dev/null | cut -d' ' -f1)"
down_ok=no
[ "$down_rc" -eq 0 ] && [ "$down_got" -eq "$DOWN_SIZE" ] && [ "$down_got_sha" = "$down_sha" ] \
  && down_ok=yes

# stop the node before counting sanitizer reports: leaks are reported at exit
"$BIN" stop -p "$W/tg" >/dev/null 2>&1 || true
for _ in $(seq 1 50); do [ -f "$W/tg/pids/tollgate.pid" ] || break; sleep 0.1; done
sleep 0.5
reports="$(find "$W" -maxdepth 1 \( -name 'asan*' -o -name 'ubsan*' \) | wc -l)"
san_re='ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: (Address|Undefined)'
log_reports="$(grep -cE "$san_re" "$W/tg/logs/error.log" 2>/dev/null || true)"
crit="$(grep -cE '\[(crit|alert|emerg)\]' "$W/tg/logs/error.log" 2>/dev/null || true)"

non2xx="$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$W/wrk.txt")"
non2xx="${non2xx:-0}"
sockerr="$(awk '/Socket errors:/ {gsub(/,/, ""); print $4 + $6 + $8 + $10}' "$W/wrk.txt")"
sockerr="${sockerr:-0}"

echo
printf '%s' "$reload_log"
echo
grep -E "requests in|Requests/sec|Non-2xx|Socket errors" "$W/wrk.txt" | sed 's/^ */wrk: /'
echo "reloads: $RELOADS, refused by the CLI: $reload_refused, took effect (new route 200," \
  "previous 404): $reload_effective"
echo "slow transfers still open when the reloads ended: $xfers_open_after_reloads of 2"
echo "non-2xx responses: $non2xx"
echo "socket errors: $sockerr"
echo "slow upload intact: $up_ok ($up_what; $(head -c 300 "$W/upload.check" 2>/dev/null))"
echo "slow download intact: $down_ok ($down_got of $DOWN_SIZE bytes, sha256" \
  "${down_got_sha:0:16}... expected ${down_sha:0:16}...; curl exit $down_rc," \
  "status $(cat "$W/download.status"))"
echo "sanitizer report files: $reports, reports in the error log: $log_reports (BUILD=$BUILD)"
echo "crit/alert/emerg lines in the error log: $crit"
if [ "$non2xx" = 0 ] && [ "$sockerr" = 0 ] && [ "$up_ok" = yes ] && [ "$down_ok" = yes ] \
   && [ "$reports" -eq 0 ] && [ "$log_reports" -eq 0 ] && [ "$reload_effective" -eq "$RELOADS" ] \
   && [ "$xfers_open_after_reloads" -eq 2 ]; then
  echo "RESULT: PASS"
else
  echo "RESULT: MISS"
fi
