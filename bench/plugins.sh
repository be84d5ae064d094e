#!/usr/bin/env bash
# bench/plugins.sh (issue "Plugin host"): the cost of a plugin. tollgate with
# no plugin, with a no-op `access` (bench-noop) and with one that reads a
# request header and sets one upstream (bench-headers), 1 worker each pinned
# as in proxy.sh. The three run side by side on their own ports and the runs
# alternate between them (none, no-op, headers, none, ...), so that whatever
# else the machine does falls on all three alike; the figures are medians of
# RUNS runs. Targets: no-op <= 5% throughput cost, headers <= 8%.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
VARIANTS=(none bench-noop bench-headers)
declare -A PORT PID RPS CPU
stop_all() {
  for v in "${VARIANTS[@]}"; do
    "$BIN" stop -p "$WORK/tg-$v" >/dev/null 2>&1 || true
  done
  stop_upstream
}
trap stop_all EXIT
mkdir -p "$WORK"
start_upstream

i=0
for v in "${VARIANTS[@]}"; do
  PORT[$v]=$((TG_PORT + i))
  i=$((i + 1))
  port_free "${PORT[$v]}"
  plugin_yaml=""
  [ "$v" != none ] && plugin_yaml="    plugins:
    - name: $v"
  write_one_route "$WORK/plugins-$v.yaml" "$plugin_yaml"
  write_tollgate_conf "$WORK/plugins-$v.conf" "$WORK/plugins-$v.yaml" \
    "plugins = bundled,bench-noop,bench-headers" \
    "lua_package_path = $ROOT/bench/plugins/?.lua"
  # its own prefix and port
  sed -i -e "s#^prefix = .*#prefix = $WORK/tg-$v#" \
    -e "s#^proxy_listen = .*#proxy_listen = 127.0.0.1:${PORT[$v]} reuseport backlog=8192#" \
    "$WORK/plugins-$v.conf"
  taskset -c "$PROXY_CPU" "$BIN" start -c "$WORK/plugins-$v.conf" >/dev/null
  wait_port "${PORT[$v]}"
  PID[$v]="$(cat "$WORK/tg-$v/pids/tollgate.pid")"
  DURATION=2 wrk_run "${PORT[$v]}" >/dev/null # warm-up (JIT, pools)
  RPS[$v]=""
  CPU[$v]=""
done

for run in $(seq 1 "$RUNS"); do
  for v in "${VARIANTS[@]}"; do
    t0="$(cpu_ticks "${PID[$v]}")"
    read -r rps p99 req < <(wrk_run "${PORT[$v]}")
    t1="$(cpu_ticks "${PID[$v]}")"
    cpu="$(echo "($t1 - $t0) * 1000000 / $(getconf CLK_TCK) / $req" | bc -l)"
    printf 'run %d %-14s %10.0f req/s  p99 %6.2f ms  %6.2f us CPU/req\n' "$run" "$v" "$rps" "$p99" "$cpu"
    RPS[$v]+="$rps "
    CPU[$v]+="$cpu "
  done
done

med() { tr ' ' '\n' <<<"$1" | grep . | median; }
base_rps="$(med "${RPS[none]}")"
base_cpu="$(med "${CPU[none]}")"
echo
for v in "${VARIANTS[@]}"; do
  r="$(med "${RPS[$v]}")"
  c="$(med "${CPU[$v]}")"
  printf '%-14s %10.0f req/s  %6.2f us CPU/req  throughput cost %5.1f%%  CPU cost %5.1f%%\n' \
    "$v" "$r" "$c" "$(echo "(1 - $r / $base_rps) * 100" | bc -l)" \
    "$(echo "($c / $base_cpu - 1) * 100" | bc -l)"
done
echo "targets: bench-noop throughput cost <= 5%, bench-headers <= 8%"
