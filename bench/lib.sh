# bench/lib.sh: shared helpers of the benchmarks (sourced, never run).
# Everything listens on 127.0.0.1; every loop is bounded in count and time.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# BUILD: release (build-bench, Release), asan (build-bench-asan, ASan + UBSan)
# or the name of any build directory under the repository.
BUILD="${BUILD:-release}"
case "$BUILD" in
  release) BUILD_DIR=build-bench ;;
  asan) BUILD_DIR=build-bench-asan ;;
  *) BUILD_DIR="$BUILD" ;;
esac
BIN="$ROOT/$BUILD_DIR/tollgate"
ECHO_BIN="$ROOT/$BUILD_DIR/tg_echo_server"
WORK="${WORK:-/tmp/tollgate-bench}"

# The ports are also written in the committed configs (nginx-upstream.conf,
# nginx-proxy.conf, haproxy.cfg): change both together.
UP_PORT=18190      # the nginx upstream (static 200)
ECHO_PORT=18191    # tg_echo_server (reload_under_load.sh)
TG_PORT=18110      # tollgate as the proxy under test
NGX_PORT=18120     # nginx as the proxy under test
HAP_PORT=18130     # HAProxy as the proxy under test

PROXY_CPU="${PROXY_CPU:-1}"   # the proxy under test
LOAD_CPU="${LOAD_CPU:-0}"     # wrk and the upstream
DURATION="${DURATION:-10}"
RUNS="${RUNS:-5}"
CONNS="${CONNS:-50}"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

install_tools() {
  local missing=()
  command -v nginx >/dev/null || missing+=(nginx-light)
  command -v haproxy >/dev/null || missing+=(haproxy)
  command -v wrk >/dev/null || missing+=(wrk)
  command -v bc >/dev/null || missing+=(bc)
  command -v curl >/dev/null || missing+=(curl)
  command -v python3 >/dev/null || missing+=(python3)
  command -v taskset >/dev/null || missing+=(util-linux)
  command -v cmake >/dev/null || missing+=(cmake)
  if [ "${#missing[@]}" -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}: run as root to install them"
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    # Debian starts nginx and HAProxy as services after installing them: not ours
    systemctl stop nginx haproxy 2>/dev/null || service nginx stop 2>/dev/null || true
  fi
}

# build_tollgate: the build BUILD names (release or asan), the targets the
# benchmarks run.
build_tollgate() {
  local opts=(-DCMAKE_BUILD_TYPE=Release)
  [ "$BUILD" = asan ] && opts=(-DCMAKE_BUILD_TYPE=Debug -DTG_SANITIZE=ON)
  log "building $BUILD_DIR (${opts[*]})"
  cmake -S "$ROOT" -B "$ROOT/$BUILD_DIR" "${opts[@]}" >/dev/null
  cmake --build "$ROOT/$BUILD_DIR" -j"$(nproc)" --target tollgate tg_echo_server "$@" >/dev/null
}

# cpu_ticks PID: utime + stime of a process, all its threads, in clock ticks
# (the fields after the parenthesised command name, which may hold spaces).
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# core_ticks CPU: "busy total" jiffies of one core from /proc/stat
core_ticks() {
  awk -v c="cpu$1" '$1 == c {
    t = 0; for (i = 2; i <= NF; i++) t += $i
    print t - $5 - $6, t
  }' /proc/stat
}

# port_free PORT: fails when something listens on 127.0.0.1:PORT already
port_free() {
  if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/"; then
    die "port $1 is in use: stop what listens there (or an earlier run) first"
  fi
}

# wait_port PORT: until something answers HTTP on 127.0.0.1:PORT (10 s at most)
wait_port() {
  for _ in $(seq 1 100); do
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" && return 0
    sleep 0.1
  done
  echo "nothing answers on port $1" >&2
  return 1
}

# start_nginx NAME CONF CPU: nginx with prefix $WORK/NAME/ on a committed config
start_nginx() {
  mkdir -p "$WORK/$1/logs"
  taskset -c "$3" nginx -p "$WORK/$1/" -e "$WORK/$1/logs/error.log" -c "$ROOT/bench/$2"
}
stop_nginx() {
  local pidf="$WORK/$1/logs/nginx.pid"
  if [ -f "$pidf" ]; then kill "$(cat "$pidf")" 2>/dev/null || true; rm -f "$pidf"; fi
}
# nginx_worker NAME: the pid of the (one) worker process
nginx_worker() { pgrep -P "$(cat "$WORK/$1/logs/nginx.pid")" | head -1; }

start_upstream() {
  port_free "$UP_PORT"
  start_nginx upstream nginx-upstream.conf "$LOAD_CPU"
  wait_port "$UP_PORT"
}
stop_upstream() { stop_nginx upstream; }

# write_one_route FILE [EXTRA]: a declarative file routing / to the upstream;
# EXTRA (YAML lines indented for the route) is appended to the route.
write_one_route() {
  cat >"$1" <<YAML
_format_version: "3.0"
services:
- name: upstream
  url: http://127.0.0.1:$UP_PORT
  routes:
  - name: all
    paths: [/]
${2:-}
YAML
}

# write_tollgate_conf FILE DECLARATIVE [extra lines...]: the benchmarks'
# tollgate.conf (prefix $WORK/tg, 1 worker thread, logs quiet, DB-less)
write_tollgate_conf() {
  local f="$1" decl="$2"
  shift 2
  {
    echo "prefix = $WORK/tg"
    echo "database = off"
    echo "declarative_config = $decl"
    echo "proxy_listen = 127.0.0.1:$TG_PORT reuseport backlog=8192"
    echo "admin_listen = off"
    echo "status_listen = off"
    echo "worker_threads = 1"
    echo "proxy_access_log = off"
    echo "log_level = notice"
    for l in "$@"; do echo "$l"; done
  } >"$f"
}

# wrk_run PORT [PATH]: one wrk run of DURATION s with CONNS connections on
# the load core; prints "rps p99_ms requests" and keeps wrk's whole output in
# $WORK/wrk-last.txt (wrk_errors reads it). SCHEME (http) and WRK_HEADER (one
# more request header, "Name: value") apply when set.
wrk_run() {
  mkdir -p "$WORK"
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 5s --latency \
    ${WRK_HEADER:+-H "$WRK_HEADER"} "${SCHEME:-http}://127.0.0.1:$1${2:-/}" >"$WORK/wrk-last.txt"
  awk '
    /Requests\/sec/ { rps = $2 }
    /requests in/ { req = $1 }
    $1 == "99%" {
      v = $2
      if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 }
      else if (v ~ /ms$/) { sub(/ms$/, "", v) }
      else if (v ~ /m$/) { sub(/m$/, "", v); v *= 60000 }
      else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }
      p99 = v
    }
    END { print rps, p99, req }' "$WORK/wrk-last.txt"
}

# wrk_errors [FILE]: non-2xx responses plus socket errors of a wrk output
wrk_errors() {
  awk '
    /Non-2xx or 3xx responses:/ { n += $NF }
    /Socket errors:/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 }
    END { print n + 0 }' "${1:-$WORK/wrk-last.txt}"
}

# median: of the numbers on stdin, one a line
median() {
  sort -g | awk '{a[NR] = $1}
    END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}
