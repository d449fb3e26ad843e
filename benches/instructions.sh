#!/usr/bin/env bash
# Instructions per proxied request, counted by valgrind's callgrind: a noise-free complement to
# benches/load.sh (whose req/s move with whatever else the machine does). Each proxy runs under
# callgrind, serves wrk for a fixed time on loopback, and is stopped; a run that serves no request
# measures start-up and shutdown, which are subtracted:
#
#   instructions per request = (Ir of the loaded run - Ir of the idle run) / requests served
#
#   benches/instructions.sh [--seconds S] [--connections C] [--binary PATH] [--no-engine]
#
# Measured: Gatehouse's public route and JWT route (cached token, two injected headers), Pingap's
# plain proxy when it is installed (see benches/load.sh), and the engine A/B's hello proxies on Pingora
# 0.8.1 and 0.9.1 (benches/engine-ab; --no-engine skips them). Counts are user-space only: the kernel's
# share (socket reads and writes) is the same for every proxy and is not included.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=10 CONNS=8 BIN=target/release/gatehouse WITH_ENGINE=1
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECS=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --binary) BIN=$2; shift 2 ;;
    --no-engine) WITH_ENGINE=0; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

. benches/common.sh
need_tools wrk nginx valgrind curl
[ -x "$BIN" ] || cargo build --release -p gatehouse --bin gatehouse
[ "$WITH_ENGINE" = 0 ] || engine_build || { echo "the engine A/B did not build; measuring without it" >&2; WITH_ENGINE=0; }
PINGAP=${PINGAP_BIN:-$CACHE/pingap/bin/pingap}

W=$(mktemp -d /tmp/gatehouse-instr.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$W"; }
trap cleanup EXIT INT TERM

UP=$(port) GH=$(port) GHA=$(port) PG=$(port) E8=$(port) E9=$(port)

mkdir -p "$W/up" "$W/pingap"
upstream_conf "$W/up" "$UP"
nginx -c "$W/up/nginx.conf" -p "$W/up" & pids+=($!)

gatehouse_conf "$W/gatehouse.toml" "$GH" "$GHA" "$UP" 1
pingap_conf "$W/pingap" "$PG" "$UP" 1
TOKEN=$(GATEHOUSE_BIN=$BIN mint_token)
printf 'wrk.headers["Authorization"] = "Bearer %s"\n' "$TOKEN" > "$W/bearer.lua"

for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$UP/" && break; sleep 0.05; done

# measure NAME READY_URL LOAD_URL SECONDS LUA -- command...   → sets N (requests) and IR (instructions)
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
  N=$n IR=$(awk '/^(summary|totals):/ {print $2; exit}' "$W/$name.out")
}

export RUST_LOG=warn
GH_CMD=("$BIN" run --config "$W/gatehouse.toml")
GH_READY="http://127.0.0.1:$GHA/readyz"
echo "callgrind: Gatehouse idle run…" >&2
measure gh-idle "$GH_READY" "" 0 "" -- "${GH_CMD[@]}"; gh_idle=$IR
echo "callgrind: Gatehouse public route, ${SECS}s…" >&2
measure gh-public "$GH_READY" "http://127.0.0.1:$GH/public" "$SECS" "" -- "${GH_CMD[@]}"
rows=("gatehouse-public $N $IR $gh_idle")
echo "callgrind: Gatehouse JWT route, ${SECS}s…" >&2
measure gh-jwt "$GH_READY" "http://127.0.0.1:$GH/jwt" "$SECS" "$W/bearer.lua" -- "${GH_CMD[@]}"
rows+=("gatehouse-jwt $N $IR $gh_idle")
if [ -x "$PINGAP" ]; then
  PG_CMD=("$PINGAP" -c "$W/pingap/pingap.toml")
  echo "callgrind: Pingap idle run…" >&2
  measure pg-idle "http://127.0.0.1:$PG/" "" 0 "" -- "${PG_CMD[@]}"; pg_idle=$IR
  echo "callgrind: Pingap plain proxy, ${SECS}s…" >&2
  measure pg-plain "http://127.0.0.1:$PG/" "http://127.0.0.1:$PG/public" "$SECS" "" -- "${PG_CMD[@]}"
  rows+=("pingap-plain $N $IR $pg_idle")
else
  echo "Pingap not installed ($PINGAP): run benches/load.sh once to install it" >&2
fi

if [ "$WITH_ENGINE" = 1 ]; then
  for v in 0_8:$E8 0_9:$E9; do
    HELLO=("$ENGINE_DIR/hello-pingora-${v%%:*}" "127.0.0.1:${v#*:}" "127.0.0.1:$UP" 1)
    echo "callgrind: hello proxy on Pingora ${v%%:*}, idle and ${SECS}s…" >&2
    measure "hello-${v%%:*}-idle" "http://127.0.0.1:${v#*:}/" "" 0 "" -- "${HELLO[@]}"; h_idle=$IR
    measure "hello-${v%%:*}" "http://127.0.0.1:${v#*:}/" "http://127.0.0.1:${v#*:}/public" "$SECS" "" -- "${HELLO[@]}"
    rows+=("hello-pingora-${v%%:*} $N $IR $h_idle")
  done
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
if "hello-pingora-0_8" in res and "hello-pingora-0_9" in res:
    h8, h9 = res["hello-pingora-0_8"], res["hello-pingora-0_9"]
    print(f"engine A/B: Pingora 0.9.1 hello / 0.8.1 hello: {h9 / h8:.2f} ({h9 - h8:+,.0f} instructions per request)")
    print(f"Gatehouse's own instructions on the public route (gatehouse-public - hello 0.9.1): {res['gatehouse-public'] - h9:,.0f}")
    if "pingap-plain" in res:
        print(f"Pingap's own instructions (pingap-plain - hello 0.8.1): {res['pingap-plain'] - h8:,.0f}")
PY
