#!/usr/bin/env bash
# Starts the demo: the devkit (echo upstream) and Gatehouse on configs/demo.toml.
# Prints curl lines that work; Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/debug}
CONFIG=${CONFIG:-configs/demo.toml}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$BIN/gatehouse-devkit" --echo 127.0.0.1:9000 &
pids+=($!)
"$BIN/gatehouse" run --config "$CONFIG" &
pids+=($!)

for _ in $(seq 1 100); do
  if curl -fsS -o /dev/null http://127.0.0.1:9091/readyz 2>/dev/null; then ready=1; break; fi
  sleep 0.1
done
if [ -z "${ready:-}" ]; then echo "gatehouse did not become ready" >&2; exit 1; fi

cat <<'MSG'

Gatehouse is running (config: configs/demo.toml). Try:

  curl -i http://127.0.0.1:8080/public/hello          # 200, proxied to the echo upstream
  curl -i http://127.0.0.1:8080/nowhere               # 404, no route
  curl -s http://127.0.0.1:9091/metrics | grep gatehouse_requests_total

Edit configs/demo.toml and save: the change is applied without a restart.
Press Ctrl-C to stop.
MSG
wait -n "${pids[@]}"
