#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build and test Gatehouse.
set -euo pipefail
need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v curl >/dev/null 2>&1 || need+=(curl)
# TLS tests and scripts/gen-example-certs.sh make certificates with the openssl CLI.
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# A real NGINX is one upstream of the adversarial end-to-end suite
# (crates/gatehouse/tests/adversarial.rs); Debian installs it in /usr/sbin.
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
# A real lighttpd running php-cgi as a CGI interpreter is an upstream of the header and
# WebSocket tests (crates/gatehouse-testkit/src/cgi.rs): CGI folds X.User.Id into HTTP_X_USER_ID.
command -v lighttpd >/dev/null 2>&1 || [ -x /usr/sbin/lighttpd ] || need+=(lighttpd)
command -v php-cgi >/dev/null 2>&1 || [ -x /usr/bin/php-cgi ] || need+=(php-cgi)
# A real Redis backs the shared userinfo cache tests (crates/gatehouse/tests/shared_cache.rs).
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || need+=(redis-server)
# A real headless Chromium, driven by chromedriver, runs the browser CORS test
# (crates/gatehouse/tests/cors_browser.rs, crates/gatehouse-testkit/src/browser.rs).
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || [ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest"
  cargo install cargo-nextest --locked
fi
# The dependency gate of `make test` (licences, bans, sources; deny.toml). The version is pinned so
# deny.toml's keys mean the same everywhere; building it takes about 4 minutes on 2 cores.
CARGO_DENY_VERSION=0.20.2
if ! cargo deny --version 2>/dev/null | grep -qx "cargo-deny $CARGO_DENY_VERSION"; then
  echo "installing cargo-deny $CARGO_DENY_VERSION"
  cargo install cargo-deny --locked --version "$CARGO_DENY_VERSION"
fi
