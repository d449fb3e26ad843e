#!/usr/bin/env bash
# Instructions per proxied request, counted by valgrind's callgrind: a noise-free complement to
# benches/load.sh (whose req/s move with whatever else the machine does). Each proxy runs under
# callgrind, serves wrk for a fixed time on loopback, and is stopped; a run that serves no request
# measures start-up and shutdown, which are subtracted:
#
#   instructions per request = (Ir of the loaded run - Ir of the idle run) / requests served
#
#   benches/instructions.sh [--seconds S] [--connections C] [--binary PATH]
#
# Measured: Gatehouse's public route and JWT route (cached token, two injected headers), and Pingap's
# plain proxy when it is installed (see benches/load.sh). Counts are user-space only: the kernel's
# share (socket reads and writes) is the same for every proxy and is not included.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=10 CONNS=8 BIN=target/release/gatehouse
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECS=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --binary) BIN=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

need=()
for t in wrk nginx valgrind curl; do command -v "$t" >/dev/null 2>&1 || need+=("$t"); done
if [ ${#need[@]} -gt 0 ]; then
  pkgs=(); for t in "${need[@]}"; do case $t in nginx) pkgs+=(nginx-light) ;; *) pkgs+=("$t") ;; esac; done
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi
[ -x "$BIN" ] || cargo build --release -p gatehouse --bin gatehouse
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/gatehouse-bench
PINGAP=${PINGAP_BIN:-$CACHE/pingap/bin/pingap}

W=$(mktemp -d /tmp/gatehouse-instr.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$W"; }
trap cleanup EXIT INT TERM

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
UP=$(port) GH=$(port) GHA=$(port) PG=$(port)
KEY=crates/gatehouse-testkit/keys/rsa-1.pem PUB=crates/gatehouse-testkit/keys/rsa-1.pub.pem
ISS=https://idp.bench AUD=bench-api

mkdir -p "$W/up" "$W/pingap"
cat > "$W/up/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $W/up/nginx.pid; error_log $W/up/error.log;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP; location / { return 200 "ok\n"; } } }
CONF
nginx -c "$W/up/nginx.conf" -p "$W/up" & pids+=($!)

cat > "$W/gatehouse.toml" <<CONF
[server]
listen = ["127.0.0.1:$GH"]
admin_listen = "127.0.0.1:$GHA"
threads = 1
[upstreams.up]
peers = ["127.0.0.1:$UP"]
[connectors.jwt]
kind = "jwt"
public_keys = [{ kid = "k1", pem_file = "$PWD/$PUB" }]
algorithms = ["RS256"]
issuers = ["$ISS"]
audiences = ["$AUD"]
[connectors.jwt.inject_headers]
"X-User-Id" = "sub"
"X-Tenant" = "tenant"
[[routes]]
name = "public"
path_prefix = "/public"
upstream = "up"
[[routes]]
name = "jwt"
path_prefix = "/jwt"
upstream = "up"
connectors = ["jwt"]
CONF
cat > "$W/pingap/pingap.toml" <<CONF
[basic]
threads = 1
work_stealing = false
pid_file = "$W/pingap/pingap.pid"
upgrade_sock = "$W/pingap/upgrade.sock"
log_level = "warn"
[upstreams.up]
addrs = ["127.0.0.1:$UP"]
[locations.all]
upstream = "up"
[servers.s]
addr = "127.0.0.1:$PG"
locations = ["all"]
threads = 1
CONF
TOKEN=$("$BIN" token mint --key "$KEY" --kid k1 --iss "$ISS" --aud "$AUD" --sub bench --claim tenant=t1 --exp 2h)
printf 'wrk.headers["Authorization"] = "Bearer %s"\n' "$TOKEN" > "$W/bearer.lua"

for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$UP/" && break; sleep 0.05; done

# measure NAME READY_URL LOAD_URL SECONDS LUA -- command...   → prints "requests instructions"
measure() {
  local name=$1 ready=$2 url=$3 secs=$4 lua=$5; shift 6
  valgrind --tool=callgrind --callgrind-out-file="$W/$name.out" "$@" >"$W/$name.log" 2>&1 &
  local vp=$!; pids+=("$vp")
  local ok=""
  for _ in $(seq 1 600); do curl -sf -o /dev/null "$ready" && { ok=1; break; }; sleep 0.2; done
  [ -n "$ok" ] || { echo "$name did not start under valgrind (see $W/$name.log)" >&2; exit 1; }
  local n=0
  if [ "$secs" != 0 ]; then
    local args=(-t1 -c"$CONNS" -d"${secs}s"); [ -n "$lua" ] && args+=(-s "$lua")
    local out; out=$(wrk "${args[@]}" "$url")
    n=$(awk '/requests in/ {print $1}' <<< "$out")
    ! grep -q "Non-2xx" <<< "$out" || { echo "$name: non-2xx answers" >&2; exit 1; }
  fi
  # Valgrind serialises threads, so a signal can wait for the next scheduling point: repeat it.
  for _ in $(seq 1 40); do kill -INT "$vp" 2>/dev/null || break; sleep 1.5; done
  wait "$vp" 2>/dev/null || true
  echo "$n $(awk '/^(summary|totals):/ {print $2; exit}' "$W/$name.out")"
}

export RUST_LOG=warn
GH_CMD=("$BIN" run --config "$W/gatehouse.toml")
GH_READY="http://127.0.0.1:$GHA/readyz"
echo "callgrind: Gatehouse idle run…" >&2
read -r _ gh_idle < <(measure gh-idle "$GH_READY" "" 0 "" -- "${GH_CMD[@]}")
echo "callgrind: Gatehouse public route, ${SECS}s…" >&2
read -r pub_n pub_ir < <(measure gh-public "$GH_READY" "http://127.0.0.1:$GH/public" "$SECS" "" -- "${GH_CMD[@]}")
echo "callgrind: Gatehouse JWT route, ${SECS}s…" >&2
read -r jwt_n jwt_ir < <(measure gh-jwt "$GH_READY" "http://127.0.0.1:$GH/jwt" "$SECS" "$W/bearer.lua" -- "${GH_CMD[@]}")
rows=("gatehouse-public $pub_n $pub_ir $gh_idle" "gatehouse-jwt $jwt_n $jwt_ir $gh_idle")
if [ -x "$PINGAP" ]; then
  PG_CMD=("$PINGAP" -c "$W/pingap/pingap.toml")
  echo "callgrind: Pingap idle run…" >&2
  read -r _ pg_idle < <(measure pg-idle "http://127.0.0.1:$PG/" "" 0 "" -- "${PG_CMD[@]}")
  echo "callgrind: Pingap plain proxy, ${SECS}s…" >&2
  read -r pg_n pg_ir < <(measure pg-plain "http://127.0.0.1:$PG/" "http://127.0.0.1:$PG/public" "$SECS" "" -- "${PG_CMD[@]}")
  rows+=("pingap-plain $pg_n $pg_ir $pg_idle")
else
  echo "Pingap not installed ($PINGAP): run benches/load.sh once to install it" >&2
fi

printf '%s\n' "${rows[@]}" > "$W/rows"
python3 - "$W/rows" <<'PY'
import sys
print(f"\n{'target':<20}{'requests':>10}{'instructions/request':>24}")
res = {}
for line in open(sys.argv[1]):
    name, n, ir, idle = line.split()
    res[name] = (int(ir) - int(idle)) / int(n)
    print(f"{name:<20}{int(n):>10}{res[name]:>24,.0f}")
if "pingap-plain" in res:
    r = res["pingap-plain"] / res["gatehouse-public"]
    print(f"\npingap-plain / gatehouse-public instructions: {r:.2f} (above 1.0: Gatehouse does less work per request)")
print(f"JWT route, extra instructions per request (cached token): {res['gatehouse-jwt'] - res['gatehouse-public']:,.0f}")
PY
