# Shared by benches/load.sh and benches/instructions.sh (sourced, not run): tools, ports, and the
# upstream, Gatehouse and Pingap configurations both benchmarks measure.

KEY=crates/gatehouse-testkit/keys/rsa-1.pem PUB=crates/gatehouse-testkit/keys/rsa-1.pub.pem
ISS=https://idp.bench AUD=bench-api
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/gatehouse-bench

# need_tools TOOL... — installs the Debian packages of the missing ones.
need_tools() {
  local t need=() pkgs=()
  for t in "$@"; do command -v "$t" >/dev/null 2>&1 || need+=("$t"); done
  [ ${#need[@]} -gt 0 ] || return 0
  for t in "${need[@]}"; do
    case $t in
      nginx) pkgs+=(nginx-light) ;; perf) pkgs+=(linux-perf) ;; protoc) pkgs+=(protobuf-compiler) ;; taskset) pkgs+=(util-linux) ;; *) pkgs+=("$t") ;;
    esac
  done
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${pkgs[@]}" >/dev/null
}

# log MESSAGE... — a timestamped line on stderr.
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# wait_for DESCRIPTION SECONDS COMMAND... — polls COMMAND every 0.2 s until it succeeds; returns 1
# after SECONDS (a bound, not a margin: the state is what is waited for).
wait_for() {
  local what=$1 limit=$2; shift 2
  local end=$(( $(date +%s) + limit ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || { log "timed out after ${limit}s waiting for: $what"; return 1; }
    sleep 0.2
  done
}

# port — a free loopback port.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# upstream_conf DIR PORT — NGINX answering 200 with a small body, on keep-alive.
upstream_conf() {
  cat > "$1/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $1/nginx.pid; error_log $1/error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$2; location / { return 200 "ok\n"; } } }
CONF
}

# gatehouse_conf FILE LISTEN_PORT ADMIN_PORT UPSTREAM_PORT THREADS [IDP_PORT] — a public route, a JWT
# route (RS256, iss/aud, two injected headers) and, with an IdP port, a userinfo route.
gatehouse_conf() {
  cat > "$1" <<CONF
[server]
listen = ["127.0.0.1:$2"]
admin_listen = "127.0.0.1:$3"
threads = $5
[upstreams.up]
peers = ["127.0.0.1:$4"]
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
  [ -n "${6:-}" ] || return 0
  cat >> "$1" <<CONF
[connectors.ui]
kind = "oidc_userinfo"
default_endpoint = "http://127.0.0.1:$6/userinfo"
[connectors.ui.inject_headers]
"X-User-Email" = "\$.email"
[[routes]]
name = "ui"
path_prefix = "/ui"
upstream = "up"
connectors = ["ui"]
CONF
}

# pingap_conf DIR LISTEN_PORT UPSTREAM_PORT THREADS — Pingap as a plain proxy with, like Gatehouse's
# default, one runtime per worker (work stealing off).
pingap_conf() {
  cat > "$1/pingap.toml" <<CONF
[basic]
threads = $4
work_stealing = false
pid_file = "$1/pingap.pid"
upgrade_sock = "$1/upgrade.sock"
log_level = "warn"
[upstreams.up]
addrs = ["127.0.0.1:$3"]
[locations.all]
upstream = "up"
[servers.s]
addr = "127.0.0.1:$2"
locations = ["all"]
threads = $4
CONF
}

# mint_token — a valid RS256 token for the JWT route (sub, tenant, iss, aud; 2 h).
mint_token() {
  "${GATEHOUSE_BIN:-target/release/gatehouse}" token mint --key "$KEY" --kid k1 --iss "$ISS" --aud "$AUD" --sub bench \
    --claim tenant=t1 --exp 2h
}

# engine_build — builds (or finds up to date) the engine A/B hello proxies of benches/engine-ab (its
# own lock file and target directory; the first build takes about 10 minutes on 2 cores).
ENGINE_DIR=target/engine-ab/release
engine_build() {
  CARGO_TARGET_DIR=target/engine-ab cargo build --quiet --release --locked --manifest-path benches/engine-ab/Cargo.toml
}

# haproxy_plain_conf FILE LISTEN_PORT UPSTREAM_PORT THREADS — HAProxy as a plain keep-alive proxy (the
# "plain" frontend of benches/load.sh).
haproxy_plain_conf() {
  cat > "$1" <<CONF
global
  nbthread $4
  maxconn 4096
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
backend up
  server s1 127.0.0.1:$3
frontend plain
  bind 127.0.0.1:$2
  default_backend up
CONF
}

# nginx_proxy_conf DIR LISTEN_PORT UPSTREAM_PORT THREADS — NGINX as a plain proxy keeping upstream
# connections alive (as in benches/load.sh).
nginx_proxy_conf() {
  cat > "$1/nginx.conf" <<CONF
worker_processes $4; daemon off; pid $1/nginx.pid; error_log $1/error.log;
events { worker_connections 4096; }
http { access_log off;
  upstream up { server 127.0.0.1:$3; keepalive 64; }
  server { listen 127.0.0.1:$2; location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
}
