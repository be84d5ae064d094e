# bench/lib.sh: shared helpers of the benchmarks (sourced).
# Everything listens on 127.0.0.1; every loop is bounded.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${BUILD:-build-bench}"
BIN="$ROOT/$BUILD/tollgate"
WORK="${WORK:-/tmp/tollgate-bench}"
UP_PORT=18090      # the nginx upstream (static 200)
NGX_PORT=8020      # nginx as the proxy under test
TG_PORT=8010       # tollgate as the proxy under test
HAP_PORT=8030      # HAProxy as the proxy under test
PROXY_CPU="${PROXY_CPU:-1}"   # the proxy under test
LOAD_CPU="${LOAD_CPU:-0}"     # wrk and the upstream
DURATION="${DURATION:-10}"
RUNS="${RUNS:-5}"
CONNS="${CONNS:-50}"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

install_tools() {
  local missing=()
  command -v nginx >/dev/null || missing+=(nginx-light)
  command -v haproxy >/dev/null || missing+=(haproxy)
  command -v wrk >/dev/null || missing+=(wrk)
  command -v bc >/dev/null || missing+=(bc)
  command -v curl >/dev/null || missing+=(curl)
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  # Debian starts nginx on :80 after installing it; the benchmarks need none of it
  systemctl stop nginx 2>/dev/null || service nginx stop 2>/dev/null || true
}

build_tollgate() {
  log "building $BUILD (Release)"
  cmake -S "$ROOT" -B "$ROOT/$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$ROOT/$BUILD" -j"$(nproc)" --target tollgate tg_echo_server bench_router >/dev/null
}

# cpu_ticks PID: utime + stime of a process (and its threads), in clock ticks
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# wait_port PORT: until something answers on 127.0.0.1:PORT (10 s at most)
wait_port() {
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0
    sleep 0.1
  done
  echo "nothing answers on port $1" >&2
  return 1
}

start_upstream() {
  mkdir -p "$WORK"
  cat >"$WORK/upstream.conf" <<CONF
worker_processes 1;
daemon on;
pid $WORK/upstream.pid;
error_log $WORK/upstream.err;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$UP_PORT reuseport backlog=8192;
    location / { return 200 "hello from the upstream\n"; }
  }
}
CONF
  taskset -c "$LOAD_CPU" nginx -c "$WORK/upstream.conf"
  wait_port "$UP_PORT"
}

stop_upstream() { [ -f "$WORK/upstream.pid" ] && kill "$(cat "$WORK/upstream.pid")" 2>/dev/null || true; }

# write_tollgate_conf FILE DECLARATIVE [extra lines...]
write_tollgate_conf() {
  local f="$1" decl="$2"
  shift 2
  {
    echo "prefix = $WORK/tg"
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

# wrk_run PORT [PATH]: prints "rps p99_ms requests"
wrk_run() {
  local out
  out="$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$1${2:-/}")"
  echo "$out" | grep -qE "Non-2xx|Socket errors" && echo "$out" | grep -E "Non-2xx|Socket errors" >&2
  local rps p99 req
  rps="$(echo "$out" | awk '/Requests\/sec/ {print $2}')"
  p99="$(echo "$out" | awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}')"
  req="$(echo "$out" | awk '/requests in/ {print $1}')"
  echo "$rps $p99 $req"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
