#!/usr/bin/env bash
# Starts the demo: the devkit (echo upstream on :9000, demo IdP with a JWKS on :9100)
# and Gatehouse on configs/demo.toml. Prints curl lines that work; Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/debug}
CONFIG=${CONFIG:-configs/demo.toml}
RUN=.gatehouse-run
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

wait_for() { # url [any]: until it answers 200 (or any HTTP status with "any")
  local fail=-f
  if [ "${2:-}" = any ]; then fail=; fi
  for _ in $(seq 1 100); do
    if curl $fail -sS -o /dev/null "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for $1" >&2
  return 1
}

mkdir -p "$RUN/tokens"
"$BIN/gatehouse-devkit" --echo 127.0.0.1:9000 --idp 127.0.0.1:9100 --tokens-dir "$RUN/tokens" &
pids+=($!)
wait_for http://127.0.0.1:9100/.well-known/jwks.json
"$BIN/gatehouse" run --config "$CONFIG" &
pids+=($!)
wait_for http://127.0.0.1:9091/readyz
# /readyz may answer before the proxy listener is bound: wait for it too.
wait_for http://127.0.0.1:8080/ any

T="$RUN/tokens"
cat <<MSG

Gatehouse is running (config: $CONFIG). Try:

  # public route
  curl -i http://127.0.0.1:8080/public/hello

  # JWT route: 200, the upstream sees X-User-Id / X-User-Region / X-User-Roles
  curl -i -H "Authorization: Bearer \$(cat $T/reader.jwt)" http://127.0.0.1:8080/orders/1
  # 401: no token, tampered token, expired token
  curl -i http://127.0.0.1:8080/orders/1
  curl -i -H "Authorization: Bearer \$(cat $T/tampered.jwt)" http://127.0.0.1:8080/orders/1
  curl -i -H "Authorization: Bearer \$(cat $T/expired.jwt)" http://127.0.0.1:8080/orders/1
  # policy: 403 for a reader, 200 for an admin
  curl -i -H "Authorization: Bearer \$(cat $T/reader.jwt)" http://127.0.0.1:8080/admin/panel
  curl -i -H "Authorization: Bearer \$(cat $T/admin.jwt)" http://127.0.0.1:8080/admin/panel

  # OIDC userinfo, endpoint chosen by X-Region: 200 with X-User-Email / X-User-Region; 401 from the IdP
  curl -i -H "Authorization: Bearer demo-opaque-token" -H "X-Region: EU" http://127.0.0.1:8080/profile
  curl -i -H "Authorization: Bearer demo-opaque-token" http://127.0.0.1:8080/profile
  curl -i -H "Authorization: Bearer wrong-token" -H "X-Region: EU" http://127.0.0.1:8080/profile

  # no route: 404; metrics
  curl -i http://127.0.0.1:8080/nowhere
  curl -s http://127.0.0.1:9091/metrics | grep -E 'gatehouse_(requests|rejections)_total'

Edit $CONFIG and save: the change is applied without a restart.
Press Ctrl-C to stop.
MSG
wait -n "${pids[@]}"
