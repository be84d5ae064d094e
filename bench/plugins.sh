#!/usr/bin/env bash
# bench/plugins.sh (issue "Plugin host"): the cost of a plugin. tollgate with
# no plugin, with a no-op `access` (bench-noop) and with one that reads a
# request header and sets one upstream (bench-headers), 1 worker pinned as in
# proxy.sh. Median of RUNS runs. Targets: no-op <= 5% throughput cost,
# headers <= 8%.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap '"$BIN" stop -p "$WORK/tg" >/dev/null 2>&1 || true; stop_upstream' EXIT
mkdir -p "$WORK"
start_upstream

declare -A RPS CPU
for variant in none bench-noop bench-headers; do
  plugin_yaml=""
  [ "$variant" != none ] && plugin_yaml="    plugins:
    - name: $variant"
  write_one_route "$WORK/plugins-$variant.yaml" "$plugin_yaml"
  write_tollgate_conf "$WORK/plugins-$variant.conf" "$WORK/plugins-$variant.yaml" \
    "plugins = bundled,bench-noop,bench-headers" \
    "lua_package_path = $ROOT/bench/plugins/?.lua"
  taskset -c "$PROXY_CPU" "$BIN" start -c "$WORK/plugins-$variant.conf" >/dev/null
  wait_port "$TG_PORT"
  pid="$(cat "$WORK/tg/pids/tollgate.pid")"
  DURATION=2 wrk_run "$TG_PORT" >/dev/null
  RPS[$variant]=""; CPU[$variant]=""
  for run in $(seq 1 "$RUNS"); do
    t0="$(cpu_ticks "$pid")"
    read -r rps p99 req < <(wrk_run "$TG_PORT")
    t1="$(cpu_ticks "$pid")"
    cpu="$(echo "($t1 - $t0) * 1000000 / $(getconf CLK_TCK) / $req" | bc -l)"
    printf 'run %d %-14s %10.0f req/s  p99 %6.2f ms  %6.2f us CPU/req\n' "$run" "$variant" "$rps" "$p99" "$cpu"
    RPS[$variant]+="$rps "; CPU[$variant]+="$cpu "
  done
  "$BIN" stop -p "$WORK/tg" >/dev/null
  sleep 0.5
done
med() { tr ' ' '\n' <<<"$1" | grep . | median; }
base_rps="$(med "${RPS[none]}")"; base_cpu="$(med "${CPU[none]}")"
echo
for variant in none bench-noop bench-headers; do
  r="$(med "${RPS[$variant]}")"; c="$(med "${CPU[$variant]}")"
  printf '%-14s %10.0f req/s  %6.2f us CPU/req  throughput cost %5.1f%%  CPU cost %5.1f%%\n' \
    "$variant" "$r" "$c" "$(echo "(1 - $r / $base_rps) * 100" | bc -l)" \
    "$(echo "($c / $base_cpu - 1) * 100" | bc -l)"
done
echo "targets: bench-noop throughput cost <= 5%, bench-headers <= 8%"
