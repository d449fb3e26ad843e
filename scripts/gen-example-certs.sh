#!/usr/bin/env bash
# Generates the example certificates configs/tls.toml points at (configs/certs/, git-ignored):
# a throw-away CA, api.example.com and *.example.com, ECDSA P-256, valid 90 days. Idempotent:
# existing files are kept unless a certificate expires within 30 days. Not for production:
# see docs/deployment.md for certificates from a Kubernetes Secret or cert-manager.
set -euo pipefail
dir="${1:-$(cd "$(dirname "$0")/.." && pwd)/configs/certs}"
mkdir -p "$dir"
cd "$dir"
fresh() { [ -s "$1.pem" ] && [ -s "$1.key" ] && openssl x509 -in "$1.pem" -noout -checkend $((30 * 86400)) >/dev/null 2>&1; }
if fresh ca && fresh api && fresh wild; then exit 0; fi
tmp=$(mktemp -d "$dir/.gen.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
p256=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
openssl req -x509 "${p256[@]}" -days 90 -subj "/CN=Gatehouse example CA" -keyout ca.key -out ca.pem 2>/dev/null
issue() { # name, SAN list
  openssl req -new "${p256[@]}" -subj "/CN=$1" -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' "$2" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 90 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
}
issue api DNS:api.example.com
issue wild 'DNS:*.example.com'
chmod 600 ./*.key
# Keys first, then certificates (a reload between two moves sees a mismatch and keeps the old pair).
for f in ca.key api.key wild.key ca.pem api.pem wild.pem; do mv -f "$f" "$dir/$f"; done
