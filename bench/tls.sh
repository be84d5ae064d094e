#!/usr/bin/env bash
# bench/tls.sh: tollgate and nginx (bench/nginx-tls.conf) terminating TLS in
# the same run, 1 worker each, pinned to PROXY_CPU, with the same certificate
# (CERT_TYPE: ecdsa, P-256, or rsa, 2048 bits; made here into $WORK/tls) and
# Kong's default TLS settings, both proxying to the bench upstream as
# bench/proxy.sh does. wrk and the upstream share LOAD_CPU. Two measures,
# each RUNS rounds of DURATION s in a rotating order, medians reported:
#   keepalive  HTTPS requests/s over CONNS kept-alive connections;
#   handshakes new TLS 1.3 connections/s: wrk sends `Connection: close`, so
#              every request is a new TCP connection and a full handshake (wrk
#              keeps no sessions: nothing resumes; the script checks TLS 1.3 is
#              what both negotiate).
# Beside each, the proxy process's CPU time per request (utime + stime over
# the requests), the figure that tells the proxies apart when the load core
# saturates. Targets of issue 12: keepalive throughput >= 1.0x nginx, new
# TLS 1.3 handshakes/s >= 0.9x nginx; printed PASS or MISS, never an error.
#
# Environment: RUNS (5), DURATION (10), CONNS (50), CERT_TYPE (ecdsa), BUILD
# (release), WORK (/tmp/tollgate-bench), PROXY_CPU, LOAD_CPU.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
CERT_TYPE="${CERT_TYPE:-ecdsa}"
TG_TLS_PORT=18141    # tollgate's ssl listener
NGX_TLS_PORT=18142   # nginx's (also in bench/nginx-tls.conf)
PROXIES="tollgate nginx"
[ -x "$BIN" ] || die "$BIN is missing: run bench/run (it builds it)"
command -v nginx >/dev/null && command -v wrk >/dev/null || install_tools

cleanup() {
  "$BIN" stop -p "$WORK/tg" >/dev/null 2>&1 || true
  stop_nginx nginx-tls
  stop_upstream
}
trap cleanup EXIT

mkdir -p "$WORK/tls"
for p in "$TG_TLS_PORT" "$NGX_TLS_PORT"; do
  curl -sk -o /dev/null --max-time 1 "https://127.0.0.1:$p/" && die "port $p is in use"
done
log "a $CERT_TYPE certificate for both"
case $CERT_TYPE in
  ecdsa) newkey=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1) ;;
  rsa) newkey=(-newkey rsa:2048) ;;
  *) die "CERT_TYPE is ecdsa or rsa" ;;
esac
openssl req -x509 "${newkey[@]}" -nodes -days 30 -subj /CN=localhost \
  -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" 2>/dev/null
openssl genpkey -genparam -algorithm DH -pkeyopt dh_param:ffdhe2048 \
  -out "$WORK/tls/dhparam.pem" 2>/dev/null

start_upstream
write_one_route "$WORK/one-route.yaml"
write_tollgate_conf "$WORK/tollgate-tls.conf" "$WORK/one-route.yaml" \
  "proxy_listen = 127.0.0.1:$TG_TLS_PORT ssl reuseport backlog=8192" \
  "ssl_cert = $WORK/tls/cert.pem" "ssl_cert_key = $WORK/tls/key.pem"
rm -rf "$WORK/tg"
taskset -c "$PROXY_CPU" "$BIN" start -c "$WORK/tollgate-tls.conf" >/dev/null
# nginx reads a certificate path relative to its configuration's directory:
# a copy of the committed config in $WORK/nginx-tls finds $WORK/tls from there
mkdir -p "$WORK/nginx-tls/logs"
cp "$ROOT/bench/nginx-tls.conf" "$WORK/nginx-tls/nginx-tls.conf"
taskset -c "$PROXY_CPU" nginx -p "$WORK/nginx-tls/" -e "$WORK/nginx-tls/logs/error.log" \
  -c "$WORK/nginx-tls/nginx-tls.conf"
declare -A PORT PID
PORT[tollgate]=$TG_TLS_PORT; PORT[nginx]=$NGX_TLS_PORT
for _ in $(seq 1 100); do
  curl -sk -o /dev/null --max-time 1 "https://127.0.0.1:$TG_TLS_PORT/" &&
    curl -sk -o /dev/null --max-time 1 "https://127.0.0.1:$NGX_TLS_PORT/" && break
  sleep 0.1
done
PID[tollgate]="$(cat "$WORK/tg/pids/tollgate.pid")"
PID[nginx]="$(nginx_worker nginx-tls)"

log "checking both answer alike, with the same certificate, over TLS 1.3"
for name in $PROXIES; do
  port="${PORT[$name]}"
  body="$(curl -sk "https://127.0.0.1:$port/")"
  [ "$body" = "hello from the upstream" ] || die "$name does not proxy over TLS ($body)"
  out="$(echo | openssl s_client -connect "127.0.0.1:$port" 2>/dev/null)"
  proto="$(grep -o 'New, TLSv1\.[23]' <<<"$out" | head -1)"
  fp="$(openssl x509 -noout -fingerprint -sha256 <<<"$out" | cut -d= -f2)"
  [ "$proto" = "New, TLSv1.3" ] || die "$name negotiated '$proto', not TLS 1.3"
  [ "$fp" = "$(openssl x509 -noout -fingerprint -sha256 -in "$WORK/tls/cert.pem" | cut -d= -f2)" ] ||
    die "$name serves another certificate"
  printf '%-9s answers over %s with the %s certificate\n' "$name" "${proto#New, }" "$CERT_TYPE"
done

hz="$(getconf CLK_TCK)"
med() { tr ' ' '\n' <<<"$1" | grep . | median; }
# measure LABEL: RUNS rotated rounds; fills RPS_<proxy> / CPU_<proxy> medians
declare -A RES_RPS RES_CPU RES_ERR
measure() {
  local label="$1"
  declare -A rps_l cpu_l
  local name order
  read -r -a order <<<"$PROXIES"
  log "$label: warm-up, then $RUNS rounds of ${DURATION} s per proxy, $CONNS connections"
  for name in $PROXIES; do DURATION=2 wrk_run "${PORT[$name]}" >/dev/null; rps_l[$name]=""; cpu_l[$name]=""; RES_ERR[$label-$name]=0; done
  for run in $(seq 1 "$RUNS"); do
    for name in "${order[@]}"; do
      local pid="${PID[$name]}" t0 t1 rps p99 req errs cpu
      t0="$(cpu_ticks "$pid")"
      read -r rps p99 req < <(wrk_run "${PORT[$name]}")
      t1="$(cpu_ticks "$pid")"
      errs="$(wrk_errors)"
      cpu="$(echo "($t1 - $t0) * 1000000 / $hz / $req" | bc -l)"
      RES_ERR[$label-$name]=$((RES_ERR[$label-$name] + errs))
      printf 'run %d %-10s %-9s %9.0f req/s  p99 %7.2f ms  %7.2f us CPU/req  %3.0f%% of its core  errors %s\n' \
        "$run" "$label" "$name" "$rps" "$p99" "$cpu" \
        "$(echo "($t1 - $t0) * 100 / $hz / $DURATION" | bc -l)" "$errs"
      rps_l[$name]+="$rps "; cpu_l[$name]+="$cpu "
    done
    order=("${order[@]:1}" "${order[0]}")
  done
  for name in $PROXIES; do
    RES_RPS[$label-$name]="$(med "${rps_l[$name]}")"
    RES_CPU[$label-$name]="$(med "${cpu_l[$name]}")"
  done
}

SCHEME=https measure keepalive
SCHEME=https WRK_HEADER="Connection: close" measure handshakes

verdict() { if [ "$(echo "$1" | bc -l)" -eq 1 ]; then echo PASS; else echo MISS; fi; }
echo
printf 'median of %d runs of %d s, %d connections, %s certificate\n' "$RUNS" "$DURATION" \
  "$CONNS" "$CERT_TYPE"
printf '%-10s %-9s %10s %11s %7s\n' measure proxy "req/s" "CPU us/req" errors
for label in keepalive handshakes; do
  for name in $PROXIES; do
    printf '%-10s %-9s %10.0f %11.2f %7s\n' "$label" "$name" "${RES_RPS[$label-$name]}" \
      "${RES_CPU[$label-$name]}" "${RES_ERR[$label-$name]}"
  done
done
echo
r_ka="$(echo "${RES_RPS[keepalive-tollgate]} / ${RES_RPS[keepalive-nginx]}" | bc -l)"
r_hs="$(echo "${RES_RPS[handshakes-tollgate]} / ${RES_RPS[handshakes-nginx]}" | bc -l)"
c_ka="$(echo "${RES_CPU[keepalive-tollgate]} / ${RES_CPU[keepalive-nginx]}" | bc -l)"
c_hs="$(echo "${RES_CPU[handshakes-tollgate]} / ${RES_CPU[handshakes-nginx]}" | bc -l)"
printf 'tollgate/nginx keepalive HTTPS throughput %.3f (target >= 1.0: %s), CPU/req %.3f\n' \
  "$r_ka" "$(verdict "$r_ka >= 1.0")" "$c_ka"
printf 'tollgate/nginx new TLS 1.3 handshakes/s   %.3f (target >= 0.9: %s), CPU/handshake %.3f\n' \
  "$r_hs" "$(verdict "$r_hs >= 0.9")" "$c_hs"
