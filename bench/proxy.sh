#!/usr/bin/env bash
# bench/proxy.sh: tollgate against nginx (bench/nginx-proxy.conf) and HAProxy
# (bench/haproxy.cfg) as reverse proxies on loopback, 1 worker each, pinned to
# one core (PROXY_CPU); wrk and the upstream (bench/nginx-upstream.conf, a
# static 200) share the other (LOAD_CPU). The upstream is measured alone first
# (headroom). Then RUNS rounds, each running every proxy for DURATION s in a
# rotating order; the median of the rounds of requests/s, p99 latency and CPU
# time per request of the proxy process (utime + stime from /proc/PID/stat
# divided by requests), its resident memory (VmRSS) after the runs, and the
# ratios tollgate/nginx against the targets of issue "Core": throughput >=
# 1.0x nginx, CPU/request <= 1.0x, p99 <= 1.2x. A miss is printed, never an
# error. Last, tollgate's resident memory with 10k routes (fixed seed).
#
# Environment: RUNS (5), DURATION (10), CONNS (50), PROXIES ("tollgate nginx
# haproxy"), BUILD (release), WORK (/tmp/tollgate-bench), PROXY_CPU, LOAD_CPU.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PROXIES="${PROXIES:-tollgate nginx haproxy}"
[ -x "$BIN" ] || die "$BIN is missing: run bench/run (it builds it)"

cleanup() {
  "$BIN" stop -p "$WORK/tg" >/dev/null 2>&1 || true
  stop_nginx nginx-proxy
  [ -f "$WORK/haproxy.pid" ] && kill "$(cat "$WORK/haproxy.pid")" 2>/dev/null || true
  rm -f "$WORK/haproxy.pid"
  stop_upstream
}
trap cleanup EXIT

mkdir -p "$WORK"
for p in "$TG_PORT" "$NGX_PORT" "$HAP_PORT"; do port_free "$p"; done
start_upstream
write_one_route "$WORK/one-route.yaml"
write_tollgate_conf "$WORK/tollgate.conf" "$WORK/one-route.yaml"

declare -A PORT PID
PORT[tollgate]=$TG_PORT; PORT[nginx]=$NGX_PORT; PORT[haproxy]=$HAP_PORT
for name in $PROXIES; do
  case $name in
    tollgate)
      rm -rf "$WORK/tg"
      taskset -c "$PROXY_CPU" "$BIN" start -c "$WORK/tollgate.conf" >/dev/null
      wait_port "$TG_PORT"
      PID[tollgate]="$(cat "$WORK/tg/pids/tollgate.pid")" ;;
    nginx)
      start_nginx nginx-proxy nginx-proxy.conf "$PROXY_CPU"
      wait_port "$NGX_PORT"
      PID[nginx]="$(nginx_worker nginx-proxy)" ;;
    haproxy)
      taskset -c "$PROXY_CPU" haproxy -D -p "$WORK/haproxy.pid" -f "$ROOT/bench/haproxy.cfg"
      wait_port "$HAP_PORT"
      PID[haproxy]="$(head -1 "$WORK/haproxy.pid")" ;;
    *) die "unknown proxy $name (PROXIES: tollgate nginx haproxy)" ;;
  esac
done

# Each proxy must answer the upstream's body with the headers tollgate adds:
# a benchmark of error pages would measure nothing.
log "checking every proxy answers alike"
for name in $PROXIES; do
  curl -s -D "$WORK/check-$name.head" -o "$WORK/check-$name.body" "http://127.0.0.1:${PORT[$name]}/"
  status="$(head -1 "$WORK/check-$name.head" | awk '{print $2}')"
  grep -qx "hello from the upstream" "$WORK/check-$name.body" && [ "$status" = 200 ] \
    || die "$name does not proxy to the upstream (status $status)"
  for h in Via X-Kong-Request-Id X-Kong-Upstream-Latency X-Kong-Proxy-Latency; do
    grep -qi "^$h:" "$WORK/check-$name.head" || echo "note: $name's answer has no $h" >&2
  done
  printf '%-9s answers 200, headers: %s\n' "$name" \
    "$(tail -n +2 "$WORK/check-$name.head" | cut -d: -f1 | grep . | tr '\n' ' ')"
done

log "the upstream alone (headroom of the load core)"
read -r up_rps up_p99 _ < <(wrk_run "$UP_PORT")
printf 'upstream direct: %.0f req/s, p99 %.2f ms\n' "$up_rps" "$up_p99"

log "warm-up"
for name in $PROXIES; do DURATION=2 wrk_run "${PORT[$name]}" >/dev/null; done

declare -A RPS P99 CPU ERR
for name in $PROXIES; do RPS[$name]=""; P99[$name]=""; CPU[$name]=""; ERR[$name]=0; done
hz="$(getconf CLK_TCK)"
read -r -a order <<<"$PROXIES"
log "$RUNS rounds of ${DURATION} s per proxy, $CONNS connections"
for run in $(seq 1 "$RUNS"); do
  for name in "${order[@]}"; do
    pid="${PID[$name]}"
    t0="$(cpu_ticks "$pid")"
    read -r lb0 lt0 < <(core_ticks "$LOAD_CPU")
    read -r pb0 pt0 < <(core_ticks "$PROXY_CPU")
    read -r rps p99 req < <(wrk_run "${PORT[$name]}")
    t1="$(cpu_ticks "$pid")"
    read -r lb1 lt1 < <(core_ticks "$LOAD_CPU")
    read -r pb1 pt1 < <(core_ticks "$PROXY_CPU")
    errs="$(wrk_errors)"
    cpu="$(echo "($t1 - $t0) * 1000000 / $hz / $req" | bc -l)"
    ERR[$name]=$((ERR[$name] + errs))
    printf 'run %d %-9s %9.0f req/s  p99 %6.2f ms  %6.2f us CPU/req  %2.0f%% of its core' \
      "$run" "$name" "$rps" "$p99" "$cpu" "$(echo "($t1 - $t0) * 100 / $hz / $DURATION" | bc -l)"
    printf '  (load core %3.0f%% busy, proxy core %3.0f%%)  errors %s\n' \
      "$(echo "($lb1 - $lb0) * 100 / ($lt1 - $lt0)" | bc -l)" \
      "$(echo "($pb1 - $pb0) * 100 / ($pt1 - $pt0)" | bc -l)" "$errs"
    RPS[$name]+="$rps "; P99[$name]+="$p99 "; CPU[$name]+="$cpu "
  done
  order=("${order[@]:1}" "${order[0]}")    # rotate: no proxy always runs first
done

med() { tr ' ' '\n' <<<"$1" | grep . | median; }
echo
printf 'median of %d runs of %d s, %d connections; upstream alone: %.0f req/s\n' \
  "$RUNS" "$DURATION" "$CONNS" "$up_rps"
printf '%-9s %10s %8s %11s %9s %7s\n' proxy "req/s" "p99 ms" "CPU us/req" "RSS KiB" errors
for name in $PROXIES; do
  printf '%-9s %10.0f %8.2f %11.2f %9s %7s\n' "$name" "$(med "${RPS[$name]}")" \
    "$(med "${P99[$name]}")" "$(med "${CPU[$name]}")" "$(rss_kb "${PID[$name]}")" "${ERR[$name]}"
done

if [[ " $PROXIES " == *" tollgate "* && " $PROXIES " == *" nginx "* ]]; then
  r_rps="$(echo "$(med "${RPS[tollgate]}") / $(med "${RPS[nginx]}")" | bc -l)"
  r_cpu="$(echo "$(med "${CPU[tollgate]}") / $(med "${CPU[nginx]}")" | bc -l)"
  r_p99="$(echo "$(med "${P99[tollgate]}") / $(med "${P99[nginx]}")" | bc -l)"
  r_rss="$(echo "$(rss_kb "${PID[tollgate]}") / $(rss_kb "${PID[nginx]}")" | bc -l)"
  verdict() { if [ "$(echo "$1" | bc -l)" -eq 1 ]; then echo PASS; else echo MISS; fi; }
  echo
  printf 'tollgate/nginx throughput %.3f (target >= 1.0: %s)\n' "$r_rps" \
    "$(verdict "$r_rps >= 1.0")"
  printf 'tollgate/nginx CPU/req    %.3f (target <= 1.0: %s)\n' "$r_cpu" \
    "$(verdict "$r_cpu <= 1.0")"
  printf 'tollgate/nginx p99        %.3f (target <= 1.2: %s)\n' "$r_p99" \
    "$(verdict "$r_p99 <= 1.2")"
  printf 'tollgate/nginx RSS        %.3f (no target)\n' "$r_rss"
  [ "${ERR[tollgate]}" -eq 0 ] \
    || echo "tollgate: ${ERR[tollgate]} non-2xx responses or socket errors in the runs"
fi

[[ " $PROXIES " == *" tollgate "* ]] || exit 0
log "resident memory with 10k routes"
rss_1="$(rss_kb "${PID[tollgate]}")"
"$BIN" stop -p "$WORK/tg" >/dev/null
# 10k routes from a fixed seed, in 100 services: prefix paths, some with hosts
# or methods, one in ten a regex path. Prints a route with neither (to probe).
probe="$(python3 - "$WORK/routes-10k.yaml" "$UP_PORT" <<'PY'
import random, sys
rng = random.Random(20261123)
path, port = sys.argv[1], sys.argv[2]
probe = None
words = ["users", "orders", "items", "carts", "payments", "search", "files", "events"]
with open(path, "w") as f:
    f.write('_format_version: "3.0"\nservices:\n')
    for s in range(100):
        f.write(f"- name: svc-{s}\n  url: http://127.0.0.1:{port}\n  routes:\n")
        for r in range(100):
            i = s * 100 + r
            base = f"/api/v{rng.randint(1, 9)}/{rng.choice(words)}-{i}"
            f.write(f"  - name: r-{i}\n")
            if rng.random() < 0.1:
                f.write(f"    paths: ['~{base}/(?<id>\\d+)$']\n")
                continue
            f.write(f"    paths: [{base}]\n")
            extra = rng.random()
            if extra < 0.3:
                f.write(f"    hosts: [svc-{s}.example.com, '*.svc-{s}.example.org']\n")
            elif extra < 0.45:
                f.write("    methods: [GET, POST]\n")
            elif probe is None and i > 5000:
                probe = base
print(probe)
PY
)"
write_tollgate_conf "$WORK/tollgate-10k.conf" "$WORK/routes-10k.yaml"
rm -rf "$WORK/tg"
taskset -c "$PROXY_CPU" "$BIN" start -c "$WORK/tollgate-10k.conf" >/dev/null
wait_port "$TG_PORT" || die "tollgate did not start with 10k routes ($WORK/tg/logs/error.log)"
pid="$(cat "$WORK/tg/pids/tollgate.pid")"
rss_idle="$(rss_kb "$pid")"
hit="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$TG_PORT$probe/x")"
miss="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$TG_PORT/nothing/here")"
read -r rps10k p99_10k _ < <(DURATION=5 wrk_run "$TG_PORT" "$probe/x")
echo "10k routes: $probe/x -> $hit, /nothing/here -> $miss (expected 200, 404);" \
  "$(printf '%.0f' "$rps10k") req/s, p99 $(printf '%.2f' "$p99_10k") ms on $probe/x for 5 s"
echo "tollgate RSS: 1 route ${rss_1} KiB (after the runs); 10k routes ${rss_idle} KiB at" \
  "start, $(rss_kb "$pid") KiB after 5 s of load"
