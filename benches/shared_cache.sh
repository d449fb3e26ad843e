#!/usr/bin/env bash
# Shared userinfo cache (Redis L2) benchmark on loopback: three Gatehouse replicas, one Redis, one IdP
# (gatehouse-soak-idp, which accepts any token, with an optional answer delay).
#
#   benches/shared_cache.sh [--tokens N] [--idp-delay-ms D] [--samples S]
#
# Prints:
#   1. IdP calls per token with 3 replicas: N tokens, each sent once to every replica (3N requests,
#      3 client threads), on a route with `shared_cache` and on one without; once with the fleet
#      lock (single_flight, the default) and once with `single_flight = false`, tokens sent to the
#      three replicas at the same moment (the case the lock is for).
#   2. Latency of one request, one at a time on a keep-alive connection (p50/p99, microseconds):
#      an L1 hit, an L1 miss served from Redis (the token was fetched by another replica), and an
#      L1 miss that calls the IdP — with the IdP answering at once and after --idp-delay-ms.
# Only 127.0.0.1 is used; every process started is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

TOKENS=1000 DELAY=20 SAMPLES=2000
while [ $# -gt 0 ]; do
  case "$1" in
    --tokens) TOKENS=$2; shift 2 ;;
    --idp-delay-ms) DELAY=$2; shift 2 ;;
    --samples) SAMPLES=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

. benches/common.sh
need_tools redis-server curl python3
[ -x target/release/gatehouse ] && [ -x target/release/gatehouse-soak-idp ] || cargo build --release -p gatehouse -p gatehouse-testkit --bins

W=$(mktemp -d /tmp/gatehouse-l2-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$W"; }
trap cleanup EXIT INT TERM

UP=$(port) IDP=$(port) RD=$(port)
mkdir -p "$W/up"
upstream_conf "$W/up" "$UP"
nginx -c "$W/up/nginx.conf" -p "$W/up" & pids+=($!)
redis-server --bind 127.0.0.1 --port "$RD" --save "" --appendonly no --dir "$W" --loglevel warning >/dev/null & pids+=($!)
target/release/gatehouse-soak-idp --listen "127.0.0.1:$IDP" >/dev/null 2>&1 & pids+=($!)

# start_fleet NAME EXTRA_CACHE_SETTINGS — three replicas; prints "listen admin" per line into $W/NAME.fleet.
start_fleet() {
  : > "$W/$1.fleet"
  for i in 1 2 3; do
    local p a; p=$(port); a=$(port)
    cat > "$W/$1-$i.toml" <<CONF
[server]
listen = ["127.0.0.1:$p"]
admin_listen = "127.0.0.1:$a"
threads = 1
[upstreams.up]
peers = ["127.0.0.1:$UP"]
[caches.l2]
kind = "redis"
url = "redis://127.0.0.1:$RD/0"
key_prefix = "$1:"
$2
[connectors.shared]
kind = "oidc_userinfo"
default_endpoint = "http://127.0.0.1:$IDP/userinfo"
shared_cache = "l2"
[connectors.local]
kind = "oidc_userinfo"
default_endpoint = "http://127.0.0.1:$IDP/userinfo"
[[routes]]
name = "s"
path_prefix = "/s"
upstream = "up"
connectors = ["shared"]
[[routes]]
name = "l"
path_prefix = "/l"
upstream = "up"
connectors = ["local"]
CONF
    RUST_LOG=warn target/release/gatehouse run --config "$W/$1-$i.toml" 2>"$W/$1-$i.log" & pids+=($!)
    echo "$p $a" >> "$W/$1.fleet"
  done
  while read -r p a; do
    for _ in $(seq 1 200); do curl -sf -o /dev/null "http://127.0.0.1:$a/readyz" && break; sleep 0.05; done
  done < "$W/$1.fleet"
}

start_fleet lock ""
start_fleet nolock "single_flight = false"

python3 - "$W" "$TOKENS" "$DELAY" "$SAMPLES" "$IDP" <<'PY'
import sys, http.client, threading, time, statistics, urllib.request, re
W, N, DELAY, SAMPLES, IDP = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
def fleet(name):
    return [tuple(int(x) for x in l.split()) for l in open(f"{W}/{name}.fleet")]
def calls(f, connector):
    total = 0.0
    for _, admin in f:
        text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics").read().decode()
        for m in re.finditer(r'^gatehouse_userinfo_requests_total\{([^}]*)\} (\S+)$', text, re.M):
            if f'connector="{connector}"' in m.group(1) and 'result="ok"' in m.group(1):
                total += float(m.group(2))
    return total
def delay(ms):
    req = urllib.request.Request(f"http://127.0.0.1:{IDP}/_control/userinfo?delay_ms={ms}&status=0", method="POST")
    urllib.request.urlopen(req).read()
class Client:
    def __init__(self, port): self.c = http.client.HTTPConnection("127.0.0.1", port)
    def get(self, path, token):
        self.c.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        r = self.c.getresponse(); r.read()
        assert r.status == 200, (path, token, r.status)
def spread(f, path, prefix, barrier):
    # Every token once to each replica, the three replicas at the same moment per token.
    def run(port):
        c = Client(port)
        for i in range(N):
            if barrier: barrier.wait()
            c.get(path, f"{prefix}-{i}")
    ts = [threading.Thread(target=run, args=(p,)) for p, _ in f]
    [t.start() for t in ts]; [t.join() for t in ts]

print(f"\n1. IdP calls per token, 3 replicas, {N} tokens each sent to all three at the same moment (IdP delay {DELAY} ms)")
delay(DELAY)
rows = []
for name, label in (("lock", "shared cache, fleet lock (default)"), ("nolock", "shared cache, single_flight = false")):
    f = fleet(name)
    b0, l0 = calls(f, "shared"), calls(f, "local")
    spread(f, "/s", f"{name}-s", threading.Barrier(3))
    rows.append((label, (calls(f, "shared") - b0) / N))
    if name == "lock":
        spread(f, "/l", f"{name}-l", threading.Barrier(3))
        rows.append(("no shared cache", (calls(f, "local") - l0) / N))
for label, v in rows:
    print(f"  {label:<40}{v:>6.2f} IdP calls per token")

print(f"\n2. one request at a time, keep-alive (p50 / p99 microseconds, {SAMPLES} samples each)")
f = fleet("lock")
a, b = Client(f[0][0]), Client(f[1][0])
def timed(client, path, tokens):
    out = []
    for t in tokens:
        s = time.perf_counter(); client.get(path, t); out.append((time.perf_counter() - s) * 1e6)
    out.sort()
    return out[len(out) // 2], out[int(len(out) * 0.99) - 1]
for d in (0, DELAY):
    delay(d)
    warm = [f"lat-{d}-{i}" for i in range(SAMPLES)]
    for t in warm: a.get("/s", t)                  # replica 0 asks the IdP and fills Redis
    time.sleep(0.2)
    l1 = timed(a, "/s", warm)                      # replica 0 again: L1 hits
    l2 = timed(b, "/s", warm)                      # replica 1: L1 misses served from Redis
    idp = timed(b, "/l", [f"idp-{d}-{i}" for i in range(SAMPLES)])  # misses that call the IdP
    print(f"  IdP answering after {d} ms")
    for label, (p50, p99) in (("L1 hit", l1), ("L1 miss, L2 (Redis) hit", l2), ("L1 miss, IdP call", idp)):
        print(f"    {label:<30}{p50:>9.0f}{p99:>9.0f}")
delay(0)
PY
