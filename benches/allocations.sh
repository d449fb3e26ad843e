#!/usr/bin/env bash
# Heap allocations per proxied request: the public route and the JWT route (cached token, two injected
# headers), counted by a build with the `alloc-count` feature (a counting wrapper around the system
# allocator whose counters the admin /metrics reports). Each measurement sends exactly N requests over
# one keep-alive connection after a warm-up, and subtracts what the two /metrics scrapes around it
# allocate themselves (measured with no request in between):
#
#   allocations per request = (after − before − scrape cost) / N
#
#   benches/allocations.sh [--requests N] [--rounds R] [--sites] [--engine]
#
# --engine counts the engine A/B's hello proxies (benches/engine-ab on Pingora 0.8.1 and 0.9.1, built
# with the system allocator) and Gatehouse's public route the same way, under valgrind's DHAT:
# (blocks allocated by a run serving N requests − by a run serving none) / N.
#
# --sites also runs the same binary under valgrind's DHAT and prints every allocation site that fires
# at least once per public-route request, with its count per request: where the allocations come from.
# The build uses the `soak` profile (release optimisation without fat LTO): call counts do not depend on
# LTO or on the allocator underneath. Only 127.0.0.1 is used; everything started is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

N=5000 ROUNDS=3 SITES=0 ENGINE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --requests) N=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --sites) SITES=1; shift ;;
    --engine) ENGINE=1; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

. benches/common.sh
need_tools nginx curl python3
[ "$SITES$ENGINE" = 00 ] || need_tools valgrind
# $ALLOC_BIN: an alloc-count build to measure instead (e.g. a copy of an earlier commit's).
BIN=${ALLOC_BIN:-target/soak/gatehouse}
[ -n "${ALLOC_BIN:-}" ] || cargo build --quiet --profile soak -p gatehouse --bin gatehouse --features alloc-count
CLIENT=benches/tools/keepalive_client.py

W=$(mktemp -d /tmp/gatehouse-alloc.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$W"; }
trap cleanup EXIT INT TERM

UP=$(port) GH=$(port) GHA=$(port)
mkdir -p "$W/up"
upstream_conf "$W/up" "$UP"
nginx -c "$W/up/nginx.conf" -p "$W/up" & pids+=($!)
gatehouse_conf "$W/gatehouse.toml" "$GH" "$GHA" "$UP" 1
TOKEN=$(GATEHOUSE_BIN=$BIN mint_token)

# start_gatehouse [command prefix...] — starts it and waits until it answers.
start_gatehouse() {
  RUST_LOG=warn "$@" "$BIN" run --config "$W/gatehouse.toml" 2>"$W/gatehouse.log" & GH_PID=$!; pids+=($GH_PID)
  for _ in $(seq 1 600); do curl -sf -o /dev/null "http://127.0.0.1:$GH/public/x" && return 0; sleep 0.1; done
  echo "Gatehouse did not start (see $W/gatehouse.log)" >&2; exit 1
}
counters() { curl -sf "http://127.0.0.1:$GHA/metrics" | awk '/^gatehouse_(allocations|allocated_bytes)_total /{printf "%s ", $2}'; }

# per_request PATH [HEADER] — median over the rounds of allocations and bytes per request.
per_request() {
  local path=$1; shift
  python3 "$CLIENT" "127.0.0.1:$GH" "$path" 1000 200 "$@"   # warm-up: pools, caches, buffers
  local r a0 b0 a1 b1 a2 b2 out=()
  for r in $(seq 1 "$ROUNDS"); do
    read -r a0 b0 <<<"$(counters)"; read -r a1 b1 <<<"$(counters)"
    python3 "$CLIENT" "127.0.0.1:$GH" "$path" "$N" 200 "$@"
    read -r a2 b2 <<<"$(counters)"
    out+=("$(python3 -c "n=$N; print(f'{(($a2-$a1)-($a1-$a0))/n:.1f} {(($b2-$b1)-($b1-$b0))/n:.0f}')")")
  done
  printf '%s\n' "${out[@]}" | sort -n | sed -n "$(((ROUNDS + 1) / 2))p"
}

start_gatehouse
echo "Allocations per proxied request (alloc-count build, $N requests × $ROUNDS rounds, median; $BIN):"
printf '%-34s %12s %16s\n' route allocations bytes
read -r pa pb <<<"$(per_request /public/hello)"; printf '%-34s %12s %16s\n' "public" "$pa" "$pb"
read -r ja jb <<<"$(per_request /jwt/hello "Authorization: Bearer $TOKEN")"; printf '%-34s %12s %16s\n' "jwt (cached token, 2 headers)" "$ja" "$jb"
python3 -c "
base = 97.2   # public route at 64d84a6, before issue 14 (docs/performance.md)
v = $pa
print(f'public route vs before issue 14 ({base}): {v / base:.2f}   target <= 0.50   ' + ('met' if v <= base / 2 else 'NOT MET'))"
kill -INT "$GH_PID"; wait "$GH_PID" 2>/dev/null || true

# stop PID — SIGINT, repeated (valgrind serialises threads), until it has exited.
stop() { for _ in $(seq 1 100); do kill -INT "$1" 2>/dev/null || return 0; sleep 0.5; done; }
# dhat_blocks FILE — blocks allocated in a DHAT run.
dhat_blocks() { python3 -c 'import json,sys; print(sum(p["tbk"] for p in json.load(open(sys.argv[1]))["pps"]))' "$1"; }
SN=2000

if [ "$ENGINE" = 1 ]; then
  (cd benches/engine-ab && CARGO_TARGET_DIR=../../target/engine-ab cargo build --quiet --locked --profile alloc --no-default-features)
  HP=$(port)
  # dhat_run NAME URL REQUESTS -- command… — one DHAT run; prints its block count.
  dhat_run() {
    local name=$1 url=$2 n=$3; shift 4
    valgrind --tool=dhat --dhat-out-file="$W/$name.json" "$@" >"$W/$name.log" 2>&1 & local vp=$!; pids+=($vp)
    for _ in $(seq 1 600); do curl -sf -o /dev/null "$url/public/ready" && break; sleep 0.1; done
    [ "$n" = 0 ] || python3 "$CLIENT" "${url#http://}" /public/hello "$n" >/dev/null
    stop "$vp"; wait "$vp" 2>/dev/null || true
    dhat_blocks "$W/$name.json"
  }
  echo
  echo "Allocations per request under DHAT (blocks of a run with $SN requests − of a run with none, / $SN):"
  for v in 0_8 0_9; do
    hello=(target/engine-ab/alloc/hello-pingora-$v "127.0.0.1:$HP" "127.0.0.1:$UP" 1)
    # The readiness probe is one request in both runs, so it cancels out.
    idle=$(dhat_run "hello-$v-idle" "http://127.0.0.1:$HP" 0 -- "${hello[@]}")
    busy=$(dhat_run "hello-$v" "http://127.0.0.1:$HP" "$SN" -- "${hello[@]}")
    printf '%-34s %12s\n' "hello proxy, Pingora ${v/_/.}" "$(python3 -c "print(f'{($busy-$idle)/$SN:.1f}')")"
  done
  gh=("$BIN" run --config "$W/gatehouse.toml")
  idle=$(RUST_LOG=warn dhat_run gh-idle "http://127.0.0.1:$GH" 0 -- "${gh[@]}")
  busy=$(RUST_LOG=warn dhat_run gh-busy "http://127.0.0.1:$GH" "$SN" -- "${gh[@]}")
  printf '%-34s %12s\n' "gatehouse public (same method)" "$(python3 -c "print(f'{($busy-$idle)/$SN:.1f}')")"
fi

[ "$SITES" = 1 ] || exit 0
# DHAT: the same binary under valgrind, exactly SN public-route requests after start-up.
start_gatehouse valgrind --tool=dhat --dhat-out-file="$W/dhat.json"
python3 "$CLIENT" "127.0.0.1:$GH" /public/hello "$SN"
stop "$GH_PID"; wait "$GH_PID" 2>/dev/null || true
echo
echo "Allocation sites firing at least once per public-route request (DHAT, $SN requests):"
python3 - "$W/dhat.json" "$SN" <<'PY'
import json, re, sys
d = json.load(open(sys.argv[1])); n = int(sys.argv[2])
# Frames of the allocator, the standard library's containers and the counting wrapper say nothing
# about who allocated: show the first frames outside them.
plumbing = re.compile(r"vg_replace_malloc|vgpreload|library/(alloc|std|core)/|stats_alloc")
rows = []
for pp in d["pps"]:
    per = pp["tbk"] / n
    if per < 0.9:
        continue
    frames = [re.sub(r"^0x[0-9A-F]+: ", "", d["ftbl"][i]) for i in pp["fs"]]
    own = [f for f in frames if not plumbing.search(f)]
    where = " <- ".join(re.sub(r"/root/.cargo/registry/src/[^/]+/", "", f) for f in own[:3])
    rows.append((per, pp["tb"] / n, where or frames[-1]))
rows.sort(key=lambda r: (-r[0], r[2]))
for per, b, where in rows:
    print(f"{per:5.1f} {b:7.0f} B  {where[:260]}")
print(f"{sum(r[0] for r in rows):5.1f} {sum(r[1] for r in rows):7.0f} B  total of these sites")
PY
