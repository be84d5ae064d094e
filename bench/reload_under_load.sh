#!/usr/bin/env bash
# bench/reload_under_load.sh (issue "Core", not part of CI): while wrk drives
# traffic and one slow streaming upload and one slow download stay open, the
# declarative config is reloaded 20 times, changing routes each time.
# Reports non-2xx responses, socket errors and whether both slow transfers
# arrived intact. BUILD=build-asan runs it on the sanitizer build and checks
# that no sanitizer report was written. Targets: 0, 0, intact, no report.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RELOADS="${RELOADS:-20}"
ECHO_PORT=18091
UP_SIZE=$((12 * 1024 * 1024))
DOWN_SIZE=$((16 * 1024 * 1024))

install_tools
if [ ! -x "$BIN" ]; then build_tollgate; fi
ECHO_BIN="$ROOT/$BUILD/tg_echo_server"
rm -rf "$WORK/reload" && mkdir -p "$WORK/reload"
W="$WORK/reload"
export ASAN_OPTIONS="log_path=$W/asan:detect_leaks=1"
export UBSAN_OPTIONS="log_path=$W/ubsan:print_stacktrace=1"

cleanup() {
  "$BIN" stop -p "$W/tg" >/dev/null 2>&1 || true
  [ -n "${ECHO_PID:-}" ] && kill "$ECHO_PID" 2>/dev/null || true
  stop_upstream
}
trap cleanup EXIT

start_upstream
taskset -c "$LOAD_CPU" "$ECHO_BIN" "$ECHO_PORT" >"$W/echo.log" 2>&1 &
ECHO_PID=$!
sleep 0.3

# gen N: the declarative file of reload N (the routes the traffic uses stay)
gen() {
  cat >"$W/tollgate.yaml" <<YAML
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
YAML
}
gen 0
cat >"$W/tollgate.conf" <<CONF
prefix = $W/tg
declarative_config = $W/tollgate.yaml
proxy_listen = 127.0.0.1:$TG_PORT reuseport backlog=8192
admin_listen = off
status_listen = off
worker_threads = 2
proxy_access_log = off
CONF
"$BIN" start -c "$W/tollgate.conf" >/dev/null
wait_port "$TG_PORT" || true

head -c "$UP_SIZE" /dev/urandom >"$W/upload.bin"
up_adler="$(python3 -c "import zlib,sys; print('%08x' % zlib.adler32(open(sys.argv[1],'rb').read()))" "$W/upload.bin")"

log "wrk for 60 s, a slow upload (${UP_SIZE} bytes at 256 KB/s), a slow download (${DOWN_SIZE} bytes at 320 KB/s), $RELOADS reloads"
taskset -c "$LOAD_CPU" wrk -t1 -c20 -d60s "http://127.0.0.1:$TG_PORT/load" >"$W/wrk.txt" 2>&1 &
WRK_PID=$!
curl -s --limit-rate 256k -H "Expect:" -H "Content-Type: application/octet-stream" \
  --data-binary @"$W/upload.bin" "http://127.0.0.1:$TG_PORT/up/anything" >"$W/upload.json" &
UP_PID=$!
curl -s --limit-rate 320k "http://127.0.0.1:$TG_PORT/down/bytes/$DOWN_SIZE" -o "$W/download.bin" &
DOWN_PID=$!

reload_failures=0
for i in $(seq 1 "$RELOADS"); do
  sleep 2
  gen "$i"
  "$BIN" reload -p "$W/tg" >/dev/null 2>&1 || reload_failures=$((reload_failures + 1))
done
# the last config is served: /changing-$RELOADS answers, /changing-0 does not
sleep 1
new_status="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$TG_PORT/changing-$RELOADS/anything")"
old_status="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$TG_PORT/changing-0/anything")"

wait "$WRK_PID" || true
up_ok=no; down_ok=no
wait "$UP_PID" && python3 - "$W/upload.json" "$UP_SIZE" "$up_adler" <<'PY' && up_ok=yes
import json, sys
j = json.load(open(sys.argv[1]))
sys.exit(0 if j["body_length"] == int(sys.argv[2]) and j["body_adler32"] == sys.argv[3] else 1)
PY
wait "$DOWN_PID" && [ "$(stat -c %s "$W/download.bin")" -eq "$DOWN_SIZE" ] && down_ok=yes

# stop the node first: the leak check writes its report at exit
"$BIN" stop -p "$W/tg" >/dev/null 2>&1 || true
sleep 1
non2xx="$(awk '/Non-2xx/ {print $NF}' "$W/wrk.txt")"
sockerr="$(grep -E 'Socket errors' "$W/wrk.txt" || true)"
reports="$(find "$W" -maxdepth 1 \( -name "asan*" -o -name "ubsan*" \) | wc -l)"
echo
cat "$W/wrk.txt" | grep -E "requests in|Requests/sec|Non-2xx|Socket errors"
echo "reloads: $RELOADS (refused by the CLI: $reload_failures)"
echo "last config served: /changing-$RELOADS -> $new_status, /changing-0 -> $old_status"
echo "non-2xx responses: ${non2xx:-0}"
echo "socket errors: ${sockerr:-none}"
echo "slow upload intact: $up_ok ($(head -c 200 "$W/upload.json" | tr -d '\n' | cut -c1-80)...)"
echo "slow download intact: $down_ok"
echo "sanitizer reports: $reports (BUILD=$BUILD)"
if [ "${non2xx:-0}" = 0 ] && [ -z "$sockerr" ] && [ "$up_ok" = yes ] && [ "$down_ok" = yes ] \
   && [ "$reports" -eq 0 ] && [ "$new_status" = 200 ] && [ "$old_status" = 404 ]; then
  echo "RESULT: PASS"
else
  echo "RESULT: MISS"
fi
