#!/usr/bin/env bash
# bench/proxy.sh: tollgate against nginx and HAProxy as reverse proxies on
# loopback, 1 worker each, pinned to one core (PROXY_CPU); wrk and the nginx
# upstream share the other (LOAD_CPU). Prints the median of RUNS runs of
# requests/s, p99 latency and CPU time per request of the proxy process, its
# resident memory, and the ratios tollgate/nginx. Then resident memory with
# 10k routes. Targets (issue "Core"): throughput >= 1.0x nginx, CPU/request
# <= 1.0x, p99 <= 1.2x. A miss is printed, never an error.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

subst() {
  sed -e "s|@WORK@|$WORK|g" -e "s|@UP_PORT@|$UP_PORT|g" -e "s|@NGX_PORT@|$NGX_PORT|g" \
      -e "s|@HAP_PORT@|$HAP_PORT|g" "$1"
}

cleanup() {
  "$BIN" stop -p "$WORK/tg" >/dev/null 2>&1 || true
  [ -f "$WORK/nginx-proxy.pid" ] && kill "$(cat "$WORK/nginx-proxy.pid")" 2>/dev/null || true
  [ -f "$WORK/haproxy.pid" ] && kill "$(cat "$WORK/haproxy.pid")" 2>/dev/null || true
  stop_upstream
}
trap cleanup EXIT

mkdir -p "$WORK"
start_upstream
subst "$ROOT/bench/nginx-proxy.conf.in" >"$WORK/nginx-proxy.conf"
subst "$ROOT/bench/haproxy.cfg.in" >"$WORK/haproxy.cfg"
cat >"$WORK/one-route.yaml" <<YAML
_format_version: "3.0"
services:
- name: upstream
  url: http://127.0.0.1:$UP_PORT
  routes:
  - name: all
    paths: [/]
YAML
write_tollgate_conf "$WORK/tollgate.conf" "$WORK/one-route.yaml"
taskset -c "$PROXY_CPU" nginx -c "$WORK/nginx-proxy.conf"
taskset -c "$PROXY_CPU" haproxy -f "$WORK/haproxy.cfg"
taskset -c "$PROXY_CPU" "$BIN" start -c "$WORK/tollgate.conf" >/dev/null
wait_port "$NGX_PORT"; wait_port "$HAP_PORT"; wait_port "$TG_PORT"

ngx_pid="$(pgrep -P "$(cat "$WORK/nginx-proxy.pid")" | head -1)"
hap_pid="$(cat "$WORK/haproxy.pid")"
tg_pid="$(cat "$WORK/tg/pids/tollgate.pid")"

log "upstream alone (headroom)"
read -r up_rps up_p99 _ < <(wrk_run "$UP_PORT")
echo "upstream direct: $up_rps req/s, p99 $up_p99 ms"

declare -A RPS P99 CPU
for name in tollgate nginx haproxy; do RPS[$name]=""; P99[$name]=""; CPU[$name]=""; done
log "warm-up"
for port in "$TG_PORT" "$NGX_PORT" "$HAP_PORT"; do DURATION=2 wrk_run "$port" >/dev/null; done
for run in $(seq 1 "$RUNS"); do
  for name in tollgate nginx haproxy; do
    case $name in
      tollgate) port=$TG_PORT pid=$tg_pid ;;
      nginx) port=$NGX_PORT pid=$ngx_pid ;;
      haproxy) port=$HAP_PORT pid=$hap_pid ;;
    esac
    t0="$(cpu_ticks "$pid")"
    read -r rps p99 req < <(wrk_run "$port")
    t1="$(cpu_ticks "$pid")"
    cpu="$(echo "($t1 - $t0) * 1000000 / $(getconf CLK_TCK) / $req" | bc -l)"
    printf 'run %d %-8s %10.0f req/s  p99 %6.2f ms  %6.2f us CPU/req\n' "$run" "$name" "$rps" "$p99" "$cpu"
    RPS[$name]+="$rps "; P99[$name]+="$p99 "; CPU[$name]+="$cpu "
  done
done

med() { tr ' ' '\n' <<<"$1" | grep . | median; }
echo
printf '%-9s %12s %10s %14s %10s\n' proxy "req/s" "p99 ms" "CPU us/req" "RSS KiB"
for name in tollgate nginx haproxy; do
  case $name in tollgate) pid=$tg_pid ;; nginx) pid=$ngx_pid ;; haproxy) pid=$hap_pid ;; esac
  printf '%-9s %12.0f %10.2f %14.2f %10s\n' "$name" "$(med "${RPS[$name]}")" \
    "$(med "${P99[$name]}")" "$(med "${CPU[$name]}")" "$(rss_kb "$pid")"
done
r_rps="$(echo "$(med "${RPS[tollgate]}") / $(med "${RPS[nginx]}")" | bc -l)"
r_cpu="$(echo "$(med "${CPU[tollgate]}") / $(med "${CPU[nginx]}")" | bc -l)"
r_p99="$(echo "$(med "${P99[tollgate]}") / $(med "${P99[nginx]}")" | bc -l)"
verdict() { if [ "$(echo "$1" | bc -l)" -eq 1 ]; then echo PASS; else echo MISS; fi; }
echo
printf 'tollgate/nginx throughput %.3f (target >= 1.0: %s)\n' "$r_rps" "$(verdict "$r_rps >= 1.0")"
printf 'tollgate/nginx CPU/req    %.3f (target <= 1.0: %s)\n' "$r_cpu" "$(verdict "$r_cpu <= 1.0")"
printf 'tollgate/nginx p99        %.3f (target <= 1.2: %s)\n' "$r_p99" "$(verdict "$r_p99 <= 1.2")"

log "resident memory with 10k routes"
"$BIN" stop -p "$WORK/tg" >/dev/null
python3 - "$WORK/routes-10k.yaml" "$UP_PORT" <<'PY'
import random, sys
random.seed(42)
path, port = sys.argv[1], sys.argv[2]
with open(path, "w") as f:
    f.write('_format_version: "3.0"\nservices:\n')
    for s in range(100):
        f.write(f"- name: svc-{s}\n  url: http://127.0.0.1:{port}\n  routes:\n")
        for r in range(100):
            i = s * 100 + r
            f.write(f"  - name: r-{i}\n    paths: [/api/v{random.randint(1, 9)}/res-{i}]\n")
            if random.random() < 0.5:
                f.write(f"    hosts: [svc-{s}.example.com]\n")
PY
write_tollgate_conf "$WORK/tollgate-10k.conf" "$WORK/routes-10k.yaml"
taskset -c "$PROXY_CPU" "$BIN" start -c "$WORK/tollgate-10k.conf" >/dev/null
wait_port "$TG_PORT" || true
tg_pid="$(cat "$WORK/tg/pids/tollgate.pid")"
DURATION=3 wrk_run "$TG_PORT" /api/v1/res-1 >/dev/null || true
echo "tollgate RSS with 10k routes: $(rss_kb "$tg_pid") KiB"
