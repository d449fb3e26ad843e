#!/usr/bin/env bash
# Instructions per proxied request over HTTP/1.1 and HTTP/2, Gatehouse next to NGINX, counted by
# valgrind's callgrind (see benches/instructions.sh for the method): each proxy runs under callgrind,
# serves one load for a fixed time on loopback and is stopped; an idle run (start-up and shutdown) is
# subtracted:
#
#   instructions per request = (Ir of the loaded run - Ir of the idle run) / requests served
#
#   benches/instructions_h2.sh [--seconds S] [--connections C] [--streams M] [--binary PATH]
#                              [--out DIR] [--only gatehouse|nginx] [--pool N] [--native]
#
# Loads, each against Gatehouse's public route and an NGINX proxy (one process, `master_process off`),
# both in front of the same NGINX upstream:
#   h1       HTTP/1.1 keep-alive, plain       wrk -t1 -cC
#   h1tls    HTTP/1.1 keep-alive over TLS     wrk -t1 -cC (TLS 1.3, ECDSA P-256, same as benches/tls.sh)
#   h2c      HTTP/2 prior knowledge, plain    h2load -cC -mM  (Gatehouse: [server] h2c = true)
#   h2tls    HTTP/2 over TLS, ALPN h2         h2load -cC -mM
# The loaded runs include the C connections' handshakes (a few million instructions in all, a few
# hundred per request at these request counts). Counts are user-space only.
#
# Also printed: the upstream connections each proxy opened during each run (distinct `$connection`
# numbers in the upstream's access log) and the most it held at once (`ss`, sampled every 0.5 s), and
# the frames of one HTTP/2 request to each proxy (`nghttp -nv`, outside valgrind): SETTINGS,
# WINDOW_UPDATE, HEADERS and DATA frames.
#
# --pool N sets Gatehouse's `upstream_keepalive_pool_size` (default 128) and NGINX's upstream
# `keepalive` (default 64, as in benches/tls.sh). --native runs the same loads without valgrind instead
# (proxy on CPU 0, load generator and upstream on CPU 1, like benches/tls.sh) and prints req/s and the
# proxy's user and system CPU microseconds per request (/proc/PID/stat): the kernel's share, which
# callgrind does not count.
#
# With --out DIR the callgrind files stay in DIR (gatehouse-h2c.out, …) for callgrind_annotate; then
# benches/tools/callgrind_buckets.py DIR/<run>.out DIR/<idle>.out REQUESTS splits a run by crate.
# Only 127.0.0.1 is used; every process started is stopped by PID on exit. Default binary: the soak
# profile (no fat LTO: absolute counts are higher than a release build's, comparisons within one run hold).
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=10 CONNS=8 STREAMS=10 BIN=target/soak/gatehouse OUT="" ONLY="" POOL="" NATIVE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECS=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --streams) STREAMS=$2; shift 2 ;;
    --binary) BIN=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --pool) POOL=$2; shift 2 ;;
    --native) NATIVE=1; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

. benches/common.sh
need_tools wrk nginx valgrind curl h2load nghttp openssl ss
if [ ! -x "$BIN" ]; then
  [ "$BIN" = target/soak/gatehouse ] || { echo "no binary at $BIN" >&2; exit 1; }
  cargo build --profile soak -p gatehouse -p gatehouse-testkit --bins
fi

W=$(mktemp -d /tmp/gatehouse-instr-h2.XXXXXX)
[ -z "$OUT" ] || mkdir -p "$OUT"
D=${OUT:-$W}
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT INT TERM

UP=$(port) GH=$(port) GHA=$(port) GT=$(port) N1=$(port) N2=$(port) NT=$(port)

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench.test \
  -addext subjectAltName=DNS:bench.test -keyout "$W/key.pem" -out "$W/cert.pem" 2>/dev/null

# The upstream: benches/common.sh's, plus an access log of connection numbers (to count the
# connections the proxies open; the upstream is not measured).
mkdir -p "$W/up" "$W/ng"
cat > "$W/up/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $W/up/nginx.pid; error_log $W/up/error.log;
events { worker_connections 4096; }
http { log_format conn '\$connection \$connection_requests'; access_log $W/up/access.log conn;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP; location / { return 200 "ok\n"; } } }
CONF
PX=() LD=()
if [ "$NATIVE" = 1 ] && [ "$(nproc)" -gt 1 ]; then PX=(taskset -c 0) LD=(taskset -c "1-$(($(nproc) - 1))"); fi
"${LD[@]}" nginx -c "$W/up/nginx.conf" -p "$W/up" & pids+=($!)

gatehouse_conf "$W/gatehouse.toml" "$GH" "$GHA" "$UP" 1
sed -i 's/^threads = 1$/threads = 1\nh2c = true/' "$W/gatehouse.toml"
[ -z "$POOL" ] || sed -i "s/^h2c = true$/h2c = true\nupstream_keepalive_pool_size = $POOL/" "$W/gatehouse.toml"
cat >> "$W/gatehouse.toml" <<CONF
[[server.tls]]
listen = ["127.0.0.1:$GT"]
certificates = [{ cert_file = "$W/cert.pem", key_file = "$W/key.pem" }]
CONF

# NGINX as the proxy: one process (no master, so callgrind sees the worker), the settings of
# benches/tls.sh. NGINX 1.22 speaks only HTTP/2 on a plain `listen … http2`, so h1 and h2c get two ports.
cat > "$W/ng/nginx.conf" <<CONF
master_process off; daemon off; pid $W/ng/nginx.pid; error_log $W/ng/error.log;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 1000000;
  upstream up { server 127.0.0.1:$UP; keepalive ${POOL:-64}; }
  server { listen 127.0.0.1:$N1; listen 127.0.0.1:$N2 http2; listen 127.0.0.1:$NT ssl http2;
    ssl_certificate $W/cert.pem; ssl_certificate_key $W/key.pem; ssl_protocols TLSv1.2 TLSv1.3;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF

for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$UP/" && break; sleep 0.05; done

upstream_conns() { awk '{print $1}' "$W/up/access.log" | sort -u | wc -l; }
held_conns() { ss -Htn state established "( dport = :$UP )" 2>/dev/null | wc -l; }

# load KIND URL → prints "REQUESTS"; fails on a non-2xx answer.
load() {
  local kind=$1 url=$2 out n
  case $kind in
    h1|h1tls)
      out=$("${LD[@]}" wrk -t1 -c"$CONNS" -d"${SECS}s" "$url")
      ! grep -q "Non-2xx" <<< "$out" || { echo "non-2xx answers: $out" >&2; return 1; }
      n=$(awk '/requests in/ {print $1}' <<< "$out") ;;
    h2c|h2tls)
      out=$("${LD[@]}" h2load -t1 -c"$CONNS" -m"$STREAMS" -D"$SECS" "$url" 2>&1)
      grep -q "^status codes: [0-9]* 2xx, 0 3xx, 0 4xx, 0 5xx" <<< "$out" || { echo "non-2xx answers: $out" >&2; return 1; }
      grep -q "Application protocol: h2" <<< "$out" || { echo "not HTTP/2: $out" >&2; return 1; }
      n=$(awk '/^requests:/ {print $8}' <<< "$out") ;;
  esac
  echo "$n"
}

# measure NAME READY_URL KIND LOAD_URL -- command…   → sets N, IR, UPC (upstream connections opened), UPMAX
measure() {
  local name=$1 ready=$2 kind=$3 url=$4; shift 5
  : > "$W/up/access.log"
  valgrind --tool=callgrind --callgrind-out-file="$D/$name.out" "$@" >"$W/$name.log" 2>&1 &
  local vp=$!; pids+=("$vp")
  local ok=""
  for _ in $(seq 1 600); do curl -skf -o /dev/null "$ready" && { ok=1; break; }; sleep 0.2; done
  [ -n "$ok" ] || { echo "$name did not start under valgrind (see $W/$name.log)" >&2; exit 1; }
  : > "$W/up/access.log"
  local n=0 max=0
  if [ "$kind" != idle ]; then
    ( m=0; while :; do c=$(held_conns); [ "$c" -gt "$m" ] && m=$c && echo "$m" > "$W/held"; sleep 0.5; done ) &
    local sp=$!; pids+=("$sp"); echo 0 > "$W/held"
    n=$(load "$kind" "$url") || exit 1
    kill "$sp" 2>/dev/null || true; wait "$sp" 2>/dev/null || true
    max=$(cat "$W/held")
  fi
  local upc; upc=$(upstream_conns)
  # Valgrind serialises threads, so a signal can wait for the next scheduling point: repeat it.
  for _ in $(seq 1 40); do kill -INT "$vp" 2>/dev/null || break; sleep 1.5; done
  wait "$vp" 2>/dev/null || true
  N=$n UPC=$upc UPMAX=$max IR=$(awk '/^(summary|totals):/ {print $2; exit}' "$D/$name.out")
}

export RUST_LOG=warn

# native NAME READY KIND URL -- command…  → one line: name kind requests req/s user-µs/req sys-µs/req upstream-conns
native() {
  local name=$1 ready=$2 kind=$3 url=$4; shift 5
  "${PX[@]}" "$@" >"$W/$name.log" 2>&1 &
  local p=$!; pids+=("$p")
  for _ in $(seq 1 100); do curl -skf -o /dev/null "$ready" && break; sleep 0.1; done
  local s=$SECS; SECS=1; load "$kind" "$url" >/dev/null; SECS=$s   # warm-up
  : > "$W/up/access.log"
  local u0 s0 u1 s1 n; read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$p/stat")
  n=$(load "$kind" "$url") || exit 1
  read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$p/stat")
  local upc; upc=$(upstream_conns)
  kill -INT "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true
  local hz; hz=$(getconf CLK_TCK)
  awk -v nm="$name" -v k="$kind" -v n="$n" -v d="$SECS" -v u=$((u1 - u0)) -v sy=$((s1 - s0)) -v hz="$hz" -v c="$upc" \
    'BEGIN { printf "%-10s %-6s %9d %9.0f %8.1f %8.1f %8d\n", nm, k, n, n / d, u / hz * 1e6 / n, sy / hz * 1e6 / n, c }'
}
if [ "$NATIVE" = 1 ]; then
  echo "native, ${CONNS} connections (h2: x ${STREAMS} streams), ${SECS}s, pool ${POOL:-default}; ${PX[*]:-not pinned}"
  printf '%-10s %-6s %9s %9s %8s %8s %8s\n' proxy load requests 'req/s' 'usr µs' 'sys µs' 'up conns'
  for k in h1:"http://127.0.0.1:$GH/public" h1tls:"https://127.0.0.1:$GT/public" \
           h2c:"http://127.0.0.1:$GH/public" h2tls:"https://127.0.0.1:$GT/public"; do
    [ "$ONLY" = nginx ] || native gatehouse "http://127.0.0.1:$GHA/readyz" "${k%%:*}" "${k#*:}" -- "$BIN" run --config "$W/gatehouse.toml"
  done
  for k in h1:"http://127.0.0.1:$N1/public" h1tls:"https://127.0.0.1:$NT/public" \
           h2c:"http://127.0.0.1:$N2/public" h2tls:"https://127.0.0.1:$NT/public"; do
    [ "$ONLY" = gatehouse ] || native nginx "http://127.0.0.1:$N1/" "${k%%:*}" "${k#*:}" -- nginx -c "$W/ng/nginx.conf" -p "$W/ng"
  done
  exit 0
fi

rows=()
if [ "$ONLY" != nginx ]; then
  GH_CMD=("$BIN" run --config "$W/gatehouse.toml")
  GH_READY="http://127.0.0.1:$GHA/readyz"
  log "callgrind: Gatehouse idle run"
  measure gatehouse-idle "$GH_READY" idle "" -- "${GH_CMD[@]}"; idle=$IR
  for k in h1:"http://127.0.0.1:$GH/public" h1tls:"https://127.0.0.1:$GT/public" \
           h2c:"http://127.0.0.1:$GH/public" h2tls:"https://127.0.0.1:$GT/public"; do
    log "callgrind: Gatehouse ${k%%:*}, ${SECS}s"
    measure "gatehouse-${k%%:*}" "$GH_READY" "${k%%:*}" "${k#*:}" -- "${GH_CMD[@]}"
    rows+=("gatehouse ${k%%:*} $N $IR $idle $UPC $UPMAX")
  done
fi
if [ "$ONLY" != gatehouse ]; then
  NG_CMD=(nginx -c "$W/ng/nginx.conf" -p "$W/ng")
  NG_READY="http://127.0.0.1:$N1/"
  log "callgrind: NGINX idle run"
  measure nginx-idle "$NG_READY" idle "" -- "${NG_CMD[@]}"; idle=$IR
  for k in h1:"http://127.0.0.1:$N1/public" h1tls:"https://127.0.0.1:$NT/public" \
           h2c:"http://127.0.0.1:$N2/public" h2tls:"https://127.0.0.1:$NT/public"; do
    # (NGINX 1.22 offers h2 by ALPN on its `ssl http2` port; wrk offers no ALPN, so h1tls is HTTP/1.1.)
    log "callgrind: NGINX ${k%%:*}, ${SECS}s"
    measure "nginx-${k%%:*}" "$NG_READY" "${k%%:*}" "${k#*:}" -- "${NG_CMD[@]}"
    rows+=("nginx ${k%%:*} $N $IR $idle $UPC $UPMAX")
  done
fi

# The frames of one HTTP/2 request, natively (no valgrind): settings, windows, DATA frames.
frames() {
  local name=$1 url=$2
  echo "--- $name: nghttp -nv $url"
  nghttp -nv "$url" 2>&1 | grep -E 'send|recv' | grep -E 'SETTINGS|WINDOW_UPDATE|HEADERS|DATA|GOAWAY|PING' \
    | sed -E 's/^\[ *[0-9.]+\] //' || true
  nghttp -nv "$url" 2>&1 | sed -n '/recv SETTINGS frame/,/^\[/p' | grep -E '^\s+\[' | sed 's/^ */    /' || true
}
{
  if [ "$ONLY" != nginx ]; then
    RUST_LOG=warn "$BIN" run --config "$W/gatehouse.toml" 2>"$W/gh-native.log" & pids+=($!)
    for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$GHA/readyz" && break; sleep 0.1; done
    frames "gatehouse h2c" "http://127.0.0.1:$GH/public"
    frames "gatehouse h2 over TLS" "https://127.0.0.1:$GT/public"
  fi
  if [ "$ONLY" != gatehouse ]; then
    nginx -c "$W/ng/nginx.conf" -p "$W/ng" & pids+=($!)
    for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$N1/" && break; sleep 0.1; done
    frames "nginx h2c" "http://127.0.0.1:$N2/public"
    frames "nginx h2 over TLS" "https://127.0.0.1:$NT/public"
  fi
} > "$D/frames.txt"

printf '%s\n' "${rows[@]}" > "$D/rows"
python3 - "$D/rows" "$CONNS" "$STREAMS" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
print(f"\ninstructions per request, {sys.argv[2]} connections (h2: x {sys.argv[3]} streams)")
print(f"{'proxy':<11}{'load':<7}{'requests':>10}{'instr/request':>15}{'upstream conns opened':>23}{'held at once (max)':>20}")
res = {}
for proxy, kind, n, ir, idle, upc, upmax in rows:
    res[(proxy, kind)] = (int(ir) - int(idle)) / int(n)
    print(f"{proxy:<11}{kind:<7}{int(n):>10}{res[(proxy, kind)]:>15,.0f}{int(upc):>23}{int(upmax):>20}")
print()
for kind in ("h1", "h1tls", "h2c", "h2tls"):
    g, n = res.get(("gatehouse", kind)), res.get(("nginx", kind))
    if g and n:
        print(f"{kind:<7} gatehouse / nginx instructions: {g / n:.2f}")
for proxy in ("gatehouse", "nginx"):
    if (proxy, "h1") in res and (proxy, "h2c") in res:
        h1 = res[(proxy, "h1")]
        print(f"{proxy:<10} h2c - h1: {res[(proxy, 'h2c')] - h1:+,.0f}; h1tls - h1: {res.get((proxy, 'h1tls'), h1) - h1:+,.0f};"
              f" h2tls - h2c: {res.get((proxy, 'h2tls'), 0) - res[(proxy, 'h2c')]:+,.0f}")
PY
echo
cat "$D/frames.txt"
