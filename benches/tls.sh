#!/usr/bin/env bash
# TLS benchmark on loopback: Gatehouse, HAProxy and NGINX terminating TLS with the same ECDSA P-256
# certificate (TLS 1.2 and 1.3 enabled, one worker each, pinned like benches/load.sh), in front of the
# same NGINX upstream. Interleaved rounds; prints a table (median per target) and the ratios issue 12
# tracks. Run by benches/load.sh (unless --no-tls) or alone:
#
#   benches/tls.sh [--threads N] [--duration SECONDS] [--rounds R] [--connections C] [--no-pin]
#   GATEHOUSE_BIN=target/soak/gatehouse benches/tls.sh   (default: target/release/gatehouse, built when missing)
#
# Measures, per server:
#   https       keep-alive HTTPS req/s (wrk, C connections)
#   resumed     req/s with `Connection: close`: a TCP connection and TLS handshake per request; wrk
#               resumes TLS sessions, so this is the reconnect rate real clients see
#   full        full handshakes/s: h2load clients never resume (one request per new connection, in
#               batches of C concurrent connections); also the server's CPU microseconds per handshake,
#               which does not depend on how fast the load generator is
#   h2          HTTP/2 req/s over TLS (h2load, C connections × 10 streams)
# Only 127.0.0.1 is targeted; every process started is stopped by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

THREADS=1 DURATION=5 ROUNDS=3 CONNS=32 PIN=1
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) THREADS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --no-pin) PIN=0; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

. benches/common.sh
need_tools wrk nginx haproxy h2load openssl curl taskset
GATEHOUSE_BIN=${GATEHOUSE_BIN:-target/release/gatehouse}
[ -x "$GATEHOUSE_BIN" ] || cargo build --release -p gatehouse --bins

CPUS=$(nproc)
PX=() LD=()
if [ "$PIN" = 1 ] && [ "$CPUS" -gt "$THREADS" ]; then
  PX=(taskset -c "0-$((THREADS - 1))") LD=(taskset -c "$THREADS-$((CPUS - 1))")
  PLACEMENT="servers on CPU 0-$((THREADS - 1)), load generators + upstream on CPU $THREADS-$((CPUS - 1))"
else
  PLACEMENT="not pinned ($CPUS CPUs shared by everything)"
fi

W=$(mktemp -d /tmp/gatehouse-tls-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$W"; }
trap cleanup EXIT INT TERM

UP=$(port) GH=$(port) GHA=$(port) GT=$(port) HT=$(port) NT=$(port)

# One ECDSA P-256 certificate for all three.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench.test \
  -addext subjectAltName=DNS:bench.test -keyout "$W/key.pem" -out "$W/cert.pem" 2>/dev/null
cat "$W/cert.pem" "$W/key.pem" > "$W/combined.pem"

mkdir -p "$W/up" "$W/ng"
upstream_conf "$W/up" "$UP"
"${LD[@]}" nginx -c "$W/up/nginx.conf" -p "$W/up" & pids+=($!)

gatehouse_conf "$W/gatehouse.toml" "$GH" "$GHA" "$UP" "$THREADS"
cat >> "$W/gatehouse.toml" <<CONF
[[server.tls]]
listen = ["127.0.0.1:$GT"]
certificates = [{ cert_file = "$W/cert.pem", key_file = "$W/key.pem" }]
CONF
RUST_LOG=warn "${PX[@]}" "$GATEHOUSE_BIN" run --config "$W/gatehouse.toml" 2>"$W/gatehouse.log" & GH_PID=$!; pids+=($GH_PID)

cat > "$W/haproxy.cfg" <<CONF
global
  nbthread $THREADS
  maxconn 8192
  ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
backend up
  server s1 127.0.0.1:$UP
frontend tls
  bind 127.0.0.1:$HT ssl crt $W/combined.pem alpn h2,http/1.1
  default_backend up
CONF
"${PX[@]}" haproxy -f "$W/haproxy.cfg" -db >"$W/haproxy.log" 2>&1 & HA_PID=$!; pids+=($HA_PID)

# keepalive_requests: NGINX closes a keep-alive (and an HTTP/2) connection after 1000 requests by
# default, which would turn part of the keep-alive run into handshakes and stop h2load's connections.
cat > "$W/ng/nginx.conf" <<CONF
worker_processes $THREADS; daemon off; pid $W/ng/nginx.pid; error_log $W/ng/error.log;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 1000000;
  upstream up { server 127.0.0.1:$UP; keepalive 512; }
  server { listen 127.0.0.1:$NT ssl http2;
    ssl_certificate $W/cert.pem; ssl_certificate_key $W/key.pem; ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
"${PX[@]}" nginx -c "$W/ng/nginx.conf" -p "$W/ng" & NG_PID=$!; pids+=($NG_PID)

wait_https() { for _ in $(seq 1 200); do curl -skf -o /dev/null "$1" && return 0; sleep 0.05; done; echo "not answering: $1" >&2; exit 1; }
wait_https "https://127.0.0.1:$GT/public"; wait_https "https://127.0.0.1:$HT/"; wait_https "https://127.0.0.1:$NT/"
for u in "https://127.0.0.1:$GT/public" "https://127.0.0.1:$HT/" "https://127.0.0.1:$NT/"; do
  v=$(curl -sk --http2 -o /dev/null -w '%{http_version} %{http_code}' "$u"); [ "$v" = "2 200" ] || { echo "sanity: $u answered '$v' over h2" >&2; exit 1; }
done

# CPU ticks (user + system) a process has used.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

# name|url|pid
targets=(
  "gatehouse|https://127.0.0.1:$GT/public|$GH_PID"
  "haproxy|https://127.0.0.1:$HT/|$HA_PID"
  "nginx|https://127.0.0.1:$NT/|$NG_PID"
)

# NGINX's worker is a child of the master: its CPU is what serves.
ng_worker=$(pgrep -P "$NG_PID" | head -1); targets[2]="nginx|https://127.0.0.1:$NT/|${ng_worker:-$NG_PID}"

wrk_rps() { "${LD[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" "$@" | awk '/Requests\/sec/ {print $2}'; }
# full handshakes: batches of $CONNS new h2load clients (one request each, never resumed) for $DURATION s.
full() {
  local url=$1 pid=$2 n=0 t0 t1 c0 c1 end
  c0=$(ticks "$pid"); t0=$(date +%s.%N); end=$(awk -v t="$t0" -v d="$DURATION" 'BEGIN { printf "%.3f", t + d }')
  while awk -v e="$end" -v n="$(date +%s.%N)" 'BEGIN { exit !(n < e) }'; do
    local ok; ok=$("${LD[@]}" h2load --h1 -c "$CONNS" -n "$CONNS" "$url" 2>/dev/null | awk '/^requests:/ {print $8}')
    n=$((n + ${ok:-0}))
  done
  t1=$(date +%s.%N); c1=$(ticks "$pid")
  awk -v n="$n" -v t0="$t0" -v t1="$t1" -v c="$((c1 - c0))" -v hz="$HZ" 'BEGIN { printf "%.1f %.1f\n", n / (t1 - t0), (n > 0 ? c / hz * 1e6 / n : 0) }'
}
h2() { "${LD[@]}" h2load -c "$CONNS" -m 10 -D "$DURATION" "$1" 2>/dev/null | awk '/^finished in/ {gsub(",", "", $4); print $4}'; }

: > "$W/results"
for r in $(seq 1 "$ROUNDS"); do
  for t in "${targets[@]}"; do
    IFS='|' read -r name url pid <<< "$t"
    https=$(wrk_rps "$url")
    resumed=$(wrk_rps -H "Connection: close" "$url")
    read -r fullrate cpu_us <<< "$(full "$url" "$pid")"
    h2rate=$(h2 "$url")
    echo "$name $https $resumed $fullrate $cpu_us $h2rate" >> "$W/results"
    echo "round $r/$ROUNDS  $name  https ${https}  resumed ${resumed}  full ${fullrate}/s (${cpu_us} us CPU each)  h2 ${h2rate}" >&2
  done
done

python3 - "$W/results" "$THREADS" "$PLACEMENT" "$CONNS" <<'PY'
import sys, statistics, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    n, *v = line.split()
    rows[n].append([float(x) for x in v])
med = {n: [statistics.median(r[i] for r in v) for i in range(5)] for n, v in rows.items()}
print(f"\nTLS, threads={sys.argv[2]}, {sys.argv[3]}, {sys.argv[4]} connections (median of rounds)")
print(f"{'target':<12}{'https req/s':>13}{'resumed /s':>12}{'full hs/s':>11}{'CPU us/hs':>11}{'h2 req/s':>11}")
for n, (https, resumed, full, cpu, h2) in med.items():
    print(f"{n:<12}{https:>13.0f}{resumed:>12.0f}{full:>11.0f}{cpu:>11.0f}{h2:>11.0f}")
def ratio(label, a, b, i, target, inverse=False):
    if a in med and b in med and med[b][i] > 0 and med[a][i] > 0:
        v = med[b][i] / med[a][i] if inverse else med[a][i] / med[b][i]
        met = "" if not target.startswith(">=") else ("met" if v >= float(target.split()[1]) else "NOT MET")
        print(f"{label:<58}{v:>7.2f}   target {target:<9} {met}")
print("\nratios")
ratio("keep-alive HTTPS: gatehouse / haproxy", "gatehouse", "haproxy", 0, ">= 1.0")
ratio("new connections (resumed): gatehouse / nginx", "gatehouse", "nginx", 1, ">= 0.9")
ratio("full handshakes/s: gatehouse / nginx", "gatehouse", "nginx", 2, ">= 0.9")
ratio("full handshakes per server CPU-second: gatehouse / nginx", "gatehouse", "nginx", 3, ">= 0.9", inverse=True)
ratio("HTTP/2 req/s: gatehouse / haproxy", "gatehouse", "haproxy", 4, "(tracked)")
ratio("HTTP/2 req/s: gatehouse / nginx", "gatehouse", "nginx", 4, ">= 0.8")
PY
