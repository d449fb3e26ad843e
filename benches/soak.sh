#!/usr/bin/env bash
# Faults and soak on loopback (issue 10, item 9). Under steady wrk load on three routes at once — public,
# JWT (RS256 via a JWKS from an IdP) and oidc_userinfo — it runs, one after the other:
#   1. RELOADS reloads alternating the valid config and a broken one (file rewritten atomically, SIGHUP);
#   2. a JWKS key rotation (the IdP starts serving k2; a second wrk sends k2 tokens once one was accepted);
#   3. the JWKS endpoint down (connection refused) for FAULT_SECONDS, then back;
#   4. the userinfo IdP slow (2 s, above the connector's 1 s timeout), down (connection refused), then
#      answering 500, FAULT_SECONDS each.
# The load keeps running until SOAK_SECONDS after it started, then everything is stopped (trap) and a table
# plus a JSON summary (target/soak-report/summary.json) are written. Exit status 1 when a check fails:
# a panic in the Gatehouse log, a non-2xx outside what the design allows (503 on the userinfo route for
# uncached tokens while that IdP fails; nothing else), a wrk socket error, or reload counters off.
#
#   SOAK_SECONDS=300 FAULT_SECONDS=20 RELOADS=100 THREADS=2 benches/soak.sh      (defaults shown)
#   GATEHOUSE_BIN=… SOAK_IDP_BIN=…   use these binaries instead of building `--profile soak`
#
# Only 127.0.0.1 is used; every process started is stopped by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

SOAK_SECONDS=${SOAK_SECONDS:-300} FAULT_SECONDS=${FAULT_SECONDS:-20} RELOADS=${RELOADS:-100} THREADS=${THREADS:-2}
OUT=${SOAK_REPORT_DIR:-target/soak-report}

. benches/common.sh
need_tools wrk nginx curl python3
if [ -z "${GATEHOUSE_BIN:-}" ] || [ -z "${SOAK_IDP_BIN:-}" ]; then
  # Release optimisation without fat LTO: minutes instead of 10+ on a busy 2-core machine (Cargo.toml).
  cargo build --profile soak -p gatehouse -p gatehouse-testkit --bins
fi
GATEHOUSE_BIN=${GATEHOUSE_BIN:-target/soak/gatehouse} SOAK_IDP_BIN=${SOAK_IDP_BIN:-target/soak/gatehouse-soak-idp}
export GATEHOUSE_BIN

W=$(mktemp -d /tmp/gatehouse-soak.XXXXXX)
mkdir -p "$W/cfg" "$W/stage" "$W/up" "$OUT"
pids=() WRK_PIDS=() JIDP_PID="" UIDP_PID=""
cleanup() {
  for p in "${WRK_PIDS[@]}" "${pids[@]}" $JIDP_PID $UIDP_PID; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

phase() { echo "$1 $2 $3" >> "$W/phases"; }   # NAME START END (unix seconds)

UP=$(port) JIDP=$(port) UIDP=$(port) GH=$(port) GHA=$(port)
BASE=http://127.0.0.1:$GH ADMIN=http://127.0.0.1:$GHA

# --- services -------------------------------------------------------------------------------------
upstream_conf "$W/up" "$UP"
nginx -c "$W/up/nginx.conf" -p "$W/up" & pids+=($!)
start_jidp() { "$SOAK_IDP_BIN" --listen "127.0.0.1:$JIDP" "$@" >>"$W/jidp.log" 2>&1 & JIDP_PID=$!; }
start_uidp() { "$SOAK_IDP_BIN" --listen "127.0.0.1:$UIDP" >>"$W/uidp.log" 2>&1 & UIDP_PID=$!; }
start_jidp; start_uidp
wait_for "JWKS IdP" 30 curl -fsS "http://127.0.0.1:$JIDP/_control/state"
wait_for "userinfo IdP" 30 curl -fsS "http://127.0.0.1:$UIDP/_control/state"

# The valid config. Reloading it unchanged keeps every connector (and so the JWKS and userinfo caches).
cat > "$W/valid.toml" <<CONF
[server]
listen = ["127.0.0.1:$GH"]
admin_listen = "127.0.0.1:$GHA"
threads = $THREADS
[upstreams.up]
peers = ["127.0.0.1:$UP"]
[connectors.jwt]
kind = "jwt"
jwks_url = "http://127.0.0.1:$JIDP/.well-known/jwks.json"
jwks_refresh = "2s"
jwks_min_refetch_interval = "1s"
algorithms = ["RS256"]
issuers = ["$ISS"]
audiences = ["$AUD"]
[connectors.jwt.inject_headers]
"X-User-Id" = "sub"
[connectors.ui]
kind = "oidc_userinfo"
default_endpoint = "http://127.0.0.1:$UIDP/userinfo"
timeout = "1s"
cache_ttl = "1h"
[connectors.ui.inject_headers]
"X-User-Email" = "\$.email"
[[routes]]
name = "public"
path_prefix = "/public"
upstream = "up"
[[routes]]
name = "jwt"
path_prefix = "/jwt"
upstream = "up"
connectors = ["jwt"]
[[routes]]
name = "ui"
path_prefix = "/ui"
upstream = "up"
connectors = ["ui"]
CONF
# Broken configs: an unknown key, and a route naming an upstream that does not exist.
sed 's/^threads = .*/&\nno_such_setting = true/' "$W/valid.toml" > "$W/broken-1.toml"
sed 's/^upstream = "up"$/upstream = "nowhere"/' "$W/valid.toml" > "$W/broken-2.toml"
for f in valid broken-1 broken-2; do
  if [ $f = valid ]; then "$GATEHOUSE_BIN" check --config "$W/$f.toml" >/dev/null
  elif "$GATEHOUSE_BIN" check --config "$W/$f.toml" >/dev/null 2>&1; then log "$f.toml unexpectedly valid"; exit 1; fi
done
install_config() { cp "$W/$1.toml" "$W/stage/g.toml" && mv -f "$W/stage/g.toml" "$W/cfg/gatehouse.toml"; }
install_config valid

RUST_LOG=warn,gatehouse::reload=info "$GATEHOUSE_BIN" run --config "$W/cfg/gatehouse.toml" >"$W/gatehouse.log" 2>&1 & GH_PID=$!; pids+=($GH_PID)
wait_for "Gatehouse ready" 60 curl -fsS "$ADMIN/readyz"

metric() { curl -fsS "$ADMIN/metrics" | awk -v m="$1" '$1 == m { v = $2 } END { print v + 0 }'; }
reloads() { echo $(( $(metric 'gatehouse_config_reloads_total{result="success"}') + $(metric 'gatehouse_config_reloads_total{result="failure"}') )); }
reloads_at_least() { [ "$(reloads)" -ge "$1" ]; }
jwks_fetches() { metric "gatehouse_jwks_fetches_total{connector=\"jwt\",result=\"$1\"}"; }
fetches_above() { [ "$(jwks_fetches "$1")" -gt "$2" ]; }
status_is() { # STATUS PATH [TOKEN]
  local h=(); [ -z "${3:-}" ] || h=(-H "Authorization: Bearer $3")
  [ "$(curl -s -o /dev/null -w '%{http_code}' "${h[@]}" "$BASE$2")" = "$1" ]
}
proc_figures() { echo "$(awk '/^VmRSS/ { print $2 }' "/proc/$GH_PID/status") $(ls "/proc/$GH_PID/fd" | wc -l)"; }

mint() { "$GATEHOUSE_BIN" token mint --key "crates/gatehouse-testkit/keys/rsa-$1.pem" --kid "k$1" --iss "$ISS" --aud "$AUD" --sub soak --exp 2h; }
T1=$(mint 1) T2=$(mint 2) UI_CACHED=soak-cached-token
wait_for "public route" 30 status_is 200 /public/x ""
wait_for "JWT route (k1)" 30 status_is 200 /jwt/x "$T1"
wait_for "userinfo route" 30 status_is 200 /ui/x "$UI_CACHED"
read -r RSS0 FDS0 <<<"$(proc_figures)"
log "Gatehouse pid $GH_PID ready: RSS ${RSS0} kB, ${FDS0} fds"

# --- load -------------------------------------------------------------------------------------------
# wrk runs "forever" (bounded by a cap) and is stopped with SIGINT after SOAK_SECONDS, which makes it
# write its counts (benches/soak/count.lua).
CAP=$(( SOAK_SECONDS + 900 ))
start_wrk() { # NAME CONNECTIONS PATH [ENV...]
  local name=$1 conns=$2 path=$3; shift 3
  env SOAK_OUT="$W/wrk-$name.txt" "$@" wrk -t1 -c"$conns" -d"${CAP}s" --timeout 10s -s benches/soak/count.lua \
    "$BASE$path" >"$W/wrk-$name.log" 2>&1 & WRK_PIDS+=($!)
}
T0=$(date +%s)
start_wrk public 4 /public/x
start_wrk jwt-k1 4 /jwt/x SOAK_TOKEN="$T1"
start_wrk ui-cached 4 /ui/x SOAK_TOKEN="$UI_CACHED"
start_wrk ui-uncached 2 /ui/x SOAK_UNIQUE=1
log "load started (public, jwt-k1, ui-cached, ui-uncached)"

# --- 1. reloads ----------------------------------------------------------------------------------------
S=$(date +%s) base=$(reloads)
OK_BASE=$(metric 'gatehouse_config_reloads_total{result="success"}') FAIL_BASE=$(metric 'gatehouse_config_reloads_total{result="failure"}')
for i in $(seq 1 "$RELOADS"); do
  if [ $((i % 2)) -eq 1 ]; then install_config "broken-$(( (i / 2) % 2 + 1 ))"; else install_config valid; fi
  kill -HUP "$GH_PID"
  wait_for "reload $i counted" 30 reloads_at_least $(( base + i ))
  # The file watcher sees the same rewrite after its 200 ms debounce and finds the file unchanged (no
  # reload); pacing the next rewrite past that keeps it from picking up the next file instead. Should it
  # ever do so, the reload counts and the per-trigger counts from the log below show it.
  sleep 0.5
done
[ $((RELOADS % 2)) -eq 0 ] || { install_config valid; kill -HUP "$GH_PID"; wait_for "final reload" 30 reloads_at_least $(( base + RELOADS + 1 )); }
phase reloads "$S" "$(date +%s)"
log "reloads done"

# --- 2. JWKS rotation -------------------------------------------------------------------------------
S=$(date +%s) f0=$(jwks_fetches success)
curl -fsS -X POST "http://127.0.0.1:$JIDP/_control/rotate" >/dev/null
wait_for "a k2 token accepted after the unknown-kid refetch" 60 status_is 200 /jwt/x "$T2"
start_wrk jwt-k2 4 /jwt/x SOAK_TOKEN="$T2"
phase rotation "$S" "$(date +%s)"
log "rotation done: k2 accepted (JWKS fetches ok: $f0 -> $(jwks_fetches success))"

# --- 3. JWKS endpoint down, then back -------------------------------------------------------------------
S=$(date +%s) fail0=$(jwks_fetches failure)
kill "$JIDP_PID"; wait "$JIDP_PID" 2>/dev/null || true
wait_for "a failed JWKS refresh" 60 fetches_above failure "$fail0"
sleep "$FAULT_SECONDS"   # the fault's duration (load keeps running); not an assertion margin
ok0=$(jwks_fetches success) JWKS_FAILS=$(( $(jwks_fetches failure) - fail0 ))
start_jidp --rotated
wait_for "a successful JWKS refresh" 60 fetches_above success "$ok0"
phase jwks_down "$S" "$(date +%s)"
log "JWKS down/up done ($JWKS_FAILS failed refreshes)"

# --- 4. userinfo IdP slow, down, 500 ------------------------------------------------------------------------
uictl() { curl -fsS -X POST "http://127.0.0.1:$UIDP/_control/userinfo?delay_ms=$1&status=$2" >/dev/null; }
fresh() { echo "probe-$RANDOM-$RANDOM-$(date +%s%N)"; }
probe() { status_is "$1" /ui/x "$(fresh)"; }
ui_fault() { # NAME — the fault is on when called: wait until it shows, then let it last FAULT_SECONDS
  local name=$1
  wait_for "$name: uncached token answered 503" 60 probe 503
  wait_for "$name: cached token still 200" 10 status_is 200 /ui/x "$UI_CACHED"
  sleep "$FAULT_SECONDS"
}
S=$(date +%s); uictl 2000 0; ui_fault ui_slow; uictl 0 0
wait_for "userinfo recovered" 60 probe 200; phase ui_slow "$S" "$(date +%s)"
S=$(date +%s); kill "$UIDP_PID"; wait "$UIDP_PID" 2>/dev/null || true; ui_fault ui_down; start_uidp
wait_for "userinfo recovered" 60 probe 200; phase ui_down "$S" "$(date +%s)"
S=$(date +%s); uictl 0 500; ui_fault ui_500; uictl 0 0
wait_for "userinfo recovered" 60 probe 200; phase ui_500 "$S" "$(date +%s)"
log "userinfo faults done"

# --- steady tail, then stop -------------------------------------------------------------------------------
while [ $(( $(date +%s) - T0 )) -lt "$SOAK_SECONDS" ]; do sleep 1; done
read -r RSS1 FDS1 <<<"$(proc_figures)"
for p in "${WRK_PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
for p in "${WRK_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
WRK_PIDS=()
T1END=$(date +%s)
RELOAD_OK=$(( $(metric 'gatehouse_config_reloads_total{result="success"}') - OK_BASE ))
RELOAD_FAIL=$(( $(metric 'gatehouse_config_reloads_total{result="failure"}') - FAIL_BASE ))
PANICS=$(grep -c panicked "$W/gatehouse.log" || true)
BY_SIGHUP=$(grep -c 'SIGHUP received' "$W/gatehouse.log" || true)
# Reload log lines from the file watcher (a refused reload logs one line per error): expected 0.
BY_WATCHER=$(grep 'configuration reload' "$W/gatehouse.log" | grep -c file_change || true)
cp "$W/gatehouse.log" "$OUT/gatehouse.log"
cp "$W/phases" "$OUT/phases.txt"

python3 benches/soak/report.py "$W" "$OUT/summary.json" \
  "seconds=$((T1END - T0))" "reloads_sent=$(( RELOADS + RELOADS % 2 ))" \
  "reloads_expected_ok=$(( RELOADS / 2 + RELOADS % 2 ))" "reloads_expected_failed=$(( (RELOADS + 1) / 2 ))" \
  "reloads_ok=$RELOAD_OK" "reloads_failed=$RELOAD_FAIL" "jwks_failed_refreshes=$JWKS_FAILS" \
  "reloads_logged_sighup=$BY_SIGHUP" "reloads_logged_file_change=$BY_WATCHER" \
  "panics=$PANICS" "rss_kb_start=$RSS0" "rss_kb_end=$RSS1" "fds_start=$FDS0" "fds_end=$FDS1"
