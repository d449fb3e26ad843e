#!/usr/bin/env bash
# Flood, then recover (issue 27, "bounded under hostile load"). Gatehouse (threads = 2, an h2c plain
# listener, the hostile-client limits set to FLOOD_LIMIT seconds) in front of NGINX (/…/big: 4 MiB
# static file, /…/small: a small JSON), with an oidc_userinfo route whose IdP (gatehouse-soak-idp)
# answers 401 after 1 s. benches/flood/flood.py then runs seven attacks, FLOOD_SECONDS each, one after
# the other: idle TCP connections, idle keep-alive connections, HTTP/2 streams that never read, HTTP/1.1
# clients that never read, unfinished 1 MiB request heads, random bearer tokens on the userinfo route,
# and an HTTP/2 PING flood. It measures RSS and descriptors (/proc) before, during and after each one
# (how long until RSS is back within 20 % of its pre-flood value, at most FLOOD_RECOVERY s), a normal
# client's latency (new connection and keep-alive JWT, every 100 ms) quiet vs during the attack, and how
# the attacker's connections ended. Table on stdout and in target/flood-report/summary.md, JSON in
# summary.json. Exit status 1 when Gatehouse died or panicked, or a probe request failed.
#
#   FLOOD_SECONDS=10 FLOOD_QUIET=5 FLOOD_RECOVERY=60 FLOOD_LIMIT=5 FLOOD_BUDGET=600 benches/flood.sh
#   FLOOD_ATTACKS=1,3,7     only these attacks (default: all seven)
#   FLOOD_SEND_BUFFER=65536 FLOOD_UPSTREAM_RCVBUF=16384   set server.send_buffer_bytes and the upstream's
#                           receive_buffer_bytes (default: unset, the kernel's autotuning)
#   FLOOD_NGINX_SNDBUF=64k  NGINX's listen sndbuf=, so that the upstream's own send buffers (which a
#                           real upstream keeps on its own host) do not fill this host's TCP memory
#   GATEHOUSE_BIN=… SOAK_IDP_BIN=…   use these binaries instead of building `--profile soak`
#
# FLOOD_BUDGET bounds the whole run (seconds): recovery windows are shortened, and attacks skipped,
# when they would not fit. Only 127.0.0.1 and free ports are used; every process started is stopped by
# PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN_START=$(date +%s)

FLOOD_SECONDS=${FLOOD_SECONDS:-10} FLOOD_QUIET=${FLOOD_QUIET:-5} FLOOD_RECOVERY=${FLOOD_RECOVERY:-60}
FLOOD_LIMIT=${FLOOD_LIMIT:-5} FLOOD_BUDGET=${FLOOD_BUDGET:-600} FLOOD_ATTACKS=${FLOOD_ATTACKS:-1,2,3,4,5,6,7}
OUT=${FLOOD_REPORT_DIR:-target/flood-report}

. benches/common.sh
need_tools nginx curl python3
if [ -z "${GATEHOUSE_BIN:-}" ] || [ -z "${SOAK_IDP_BIN:-}" ]; then
  cargo build --profile soak -p gatehouse -p gatehouse-testkit --bins
fi
GATEHOUSE_BIN=${GATEHOUSE_BIN:-target/soak/gatehouse} SOAK_IDP_BIN=${SOAK_IDP_BIN:-target/soak/gatehouse-soak-idp}
export GATEHOUSE_BIN

W=$(mktemp -d /tmp/gatehouse-flood.XXXXXX)
mkdir -p "$W/up/www" "$OUT"
pids=() DRIVER_PID=""
cleanup() {
  for p in $DRIVER_PID "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

status_is() { # STATUS PATH [TOKEN] [CURL ARGS...]
  local want=$1 path=$2 tok=$3; shift 3
  local h=(); [ -z "$tok" ] || h=(-H "Authorization: Bearer $tok")
  [ "$(curl -s -o /dev/null -w '%{http_code}' "${h[@]}" "$@" "http://127.0.0.1:$GH$path")" = "$want" ]
}

UP=$(port) IDP=$(port) GH=$(port) GHA=$(port)

# --- upstream: NGINX, one process, no privilege drop (it reads files in this 0700 directory) --------------
head -c $((4 * 1024 * 1024)) /dev/zero > "$W/up/www/big"
cat > "$W/up/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; worker_rlimit_nofile 16384;
pid $W/up/nginx.pid; error_log $W/up/error.log;
events { worker_connections 8192; }
http {
  access_log off; keepalive_requests 1000000; sendfile on;
  client_body_temp_path $W/up/body; proxy_temp_path $W/up/proxy; fastcgi_temp_path $W/up/fcgi;
  uwsgi_temp_path $W/up/uwsgi; scgi_temp_path $W/up/scgi;
  server {
    listen 127.0.0.1:$UP${FLOOD_NGINX_SNDBUF:+ sndbuf=$FLOOD_NGINX_SNDBUF};
    location ~ /big\$ { root $W/up/www; default_type application/octet-stream; try_files /big =404; }
    location ~ /small\$ { default_type application/json; return 200 '{"ok":true,"service":"flood-upstream"}\n'; }
  }
}
CONF
nginx -p "$W/up" -c "$W/up/nginx.conf" -e "$W/up/error.log" & pids+=($!)

# --- userinfo IdP: every answer 401 after 1 s (random tokens are what an attacker has) -----------------
"$SOAK_IDP_BIN" --listen "127.0.0.1:$IDP" >"$W/idp.log" 2>&1 & pids+=($!)
wait_for "userinfo IdP" 30 curl -fsS "http://127.0.0.1:$IDP/_control/state"
curl -fsS -X POST "http://127.0.0.1:$IDP/_control/userinfo?delay_ms=1000&status=401" >/dev/null
wait_for "NGINX" 30 curl -fsS -o /dev/null "http://127.0.0.1:$UP/x/small"

# --- Gatehouse ----------------------------------------------------------------------------------------------
gatehouse_conf "$W/gatehouse.toml" "$GH" "$GHA" "$UP" 2 "$IDP"
LIMITS="h2c = true
idle_timeout = \"${FLOOD_LIMIT}s\"
request_header_timeout = \"${FLOOD_LIMIT}s\"
request_body_timeout = \"${FLOOD_LIMIT}s\"
response_write_timeout = \"${FLOOD_LIMIT}s\"
h2_idle_timeout = \"${FLOOD_LIMIT}s\"
h2_max_concurrent_streams = 100
max_request_header_bytes = 32768${FLOOD_SEND_BUFFER:+
send_buffer_bytes = $FLOOD_SEND_BUFFER}"
python3 - "$W/gatehouse.toml" "$LIMITS" <<'PY'
import sys
path, limits = sys.argv[1], sys.argv[2]
text = open(path).read().replace("threads = 2\n", "threads = 2\n" + limits + "\n", 1)
rcvbuf = __import__("os").environ.get("FLOOD_UPSTREAM_RCVBUF")
if rcvbuf:
    text = text.replace("[upstreams.up]\n", f"[upstreams.up]\nreceive_buffer_bytes = {int(rcvbuf)}\n", 1)
open(path, "w").write(text)
PY
"$GATEHOUSE_BIN" check --config "$W/gatehouse.toml" >/dev/null
RUST_LOG=warn "$GATEHOUSE_BIN" run --config "$W/gatehouse.toml" >"$W/gatehouse.log" 2>&1 & GH_PID=$!; pids+=($GH_PID)
wait_for "Gatehouse ready" 60 curl -fsS "http://127.0.0.1:$GHA/readyz"
TOKEN=$(mint_token)
wait_for "public route" 30 status_is 200 /public/small ""
wait_for "public route, h2c" 30 status_is 200 /public/small "" --http2-prior-knowledge
wait_for "public route, 4 MiB" 30 status_is 200 /public/big ""
wait_for "JWT route" 30 status_is 200 /jwt/small "$TOKEN"
wait_for "userinfo route (IdP: 401)" 30 status_is 401 /ui/small "flood-check-token"
log "Gatehouse pid $GH_PID ready on 127.0.0.1:$GH (h2c; limits ${FLOOD_LIMIT}s); upstream :$UP, IdP :$IDP"

# --- the floods -------------------------------------------------------------------------------------------
set +e
python3 benches/flood/flood.py run --pid "$GH_PID" --port "$GH" --token "$TOKEN" --out "$OUT" --work "$W" \
  --upstream-port "$UP" --log "$W/gatehouse.log" --flood-seconds "$FLOOD_SECONDS" --quiet "$FLOOD_QUIET" --recovery "$FLOOD_RECOVERY" \
  --deadline-epoch $((RUN_START + FLOOD_BUDGET)) --attacks "$FLOOD_ATTACKS" \
  --limits "h2c; idle, request header/body, response write and h2 idle timeouts ${FLOOD_LIMIT}s; threads 2; send_buffer_bytes ${FLOOD_SEND_BUFFER:-unset}, upstream receive_buffer_bytes ${FLOOD_UPSTREAM_RCVBUF:-unset}, NGINX sndbuf ${FLOOD_NGINX_SNDBUF:-unset}" &
DRIVER_PID=$!
wait "$DRIVER_PID"; rc=$?
DRIVER_PID=""
set -e
cp "$W/gatehouse.log" "$OUT/gatehouse.log"
cp "$W/probe.jsonl" "$W/sample.jsonl" "$OUT/" 2>/dev/null || true
if ! kill -0 "$GH_PID" 2>/dev/null; then log "Gatehouse is not running any more"; rc=1; fi
log "flood run: $(( $(date +%s) - RUN_START )) s, exit status $rc (report: $OUT/summary.md)"
exit "$rc"
