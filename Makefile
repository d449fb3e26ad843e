# Gatehouse — the two commands: `make run` (demo) and `make test` (everything CI runs).
SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: run test deps check deploy-check build release fmt clippy nextest bench fuzz soak clean

## run: build, then start Gatehouse on configs/demo.toml with the demo upstream; prints curl lines
run: deps build
	@scripts/demo.sh

## test: install what is missing, then fmt check, clippy, the dependency gate (cargo deny: licences,
## bans, sources; deny.toml, errors only plus one count line per check; the RustSec advisories need
## GitHub, so they are not in it), build, the whole test suite, the docs with warnings denied, and a
## type check and the same dependency gate of the crates outside the workspace (fuzz/, benches/engine-ab)
test: deps
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) deny -L error --locked check -s licenses bans sources
	$(CARGO) build --workspace --bins --locked
	scripts/validate-deploy.sh
	$(CARGO) nextest run --workspace --locked --profile ci
	$(CARGO) test --workspace --doc --locked
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --locked
	cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) check --bins --locked
	cd benches/engine-ab && $(CARGO) check --bins --locked
	$(CARGO) deny -L error --locked --manifest-path fuzz/Cargo.toml --config deny.toml check -s licenses bans sources
	$(CARGO) deny -L error --locked --manifest-path benches/engine-ab/Cargo.toml --config deny.toml check -s licenses bans sources

## deps: system packages the build needs (cmake for zlib-ng), cargo-nextest and cargo-deny
deps:
	@scripts/install-deps.sh

## deploy-check: validate deploy/ (promtool, yamllint, kubernetes-validate, dashboard JSON, systemd unit)
deploy-check: build
	scripts/validate-deploy.sh

## check: validate every example config with the real binary (creates the example certificates
## configs/tls.toml names first: they are git-ignored, so a fresh clone has none)
check: build
	@scripts/gen-example-certs.sh
	@for f in configs/*.toml; do target/debug/gatehouse check --config $$f >/dev/null || exit 1; echo "ok  $$f"; done

build:
	$(CARGO) build --workspace --bins

release: deps
	$(CARGO) build --release --workspace --bins

fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## bench: criterion micro-benchmarks, cache and chain scaling, routing scaling, the loopback load
## benchmark against HAProxy, NGINX, Pingap and the engine A/B (plain, then TLS), the shared-cache
## benchmark (Redis), the cost of request limits (local and Redis), latency at a fixed rate (open
## loop, 50 % and 80 % of each proxy's capacity), instructions per request under callgrind,
## allocations per request, memory per connection, and the flame graphs of docs/flamegraphs (see
## docs/performance.md)
bench: deps release
	$(CARGO) bench -p gatehouse-connectors --bench connectors
	$(CARGO) bench -p gatehouse-connectors --bench scale
	$(CARGO) bench -p gatehouse-connectors --bench churn
	$(CARGO) bench -p gatehouse --bench routes
	benches/load.sh $(BENCH_ARGS)
	benches/shared_cache.sh
	benches/limits.sh
	GATEHOUSE_BIN=target/release/gatehouse benches/latency.sh
	benches/instructions.sh
	benches/allocations.sh --sites --engine
	GATEHOUSE_BIN=target/release/gatehouse benches/connection_memory.sh
	benches/flamegraph.sh

## fuzz: every cargo-fuzz target of fuzz/ for FUZZ_SECONDS each (default 60), one at a time;
## installs cargo-fuzz when missing; stable toolchain with RUSTC_BOOTSTRAP=1 (not part of `make test`)
FUZZ_SECONDS ?= 60
fuzz:
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	FUZZ_SECONDS=$(FUZZ_SECONDS) RUSTC_BOOTSTRAP=1 scripts/fuzz.sh

## soak: faults under steady load (reloads, JWKS rotation and outage, userinfo IdP slow/down/500) for
## about 5 minutes on loopback (SOAK_SECONDS, FAULT_SECONDS, RELOADS), then issue 27's attacks one
## after the other with memory, descriptors and a normal request's latency during and after each
## (benches/flood.sh, FLOOD_SECONDS); not part of `make test`
soak: deps
	benches/soak.sh
	benches/flood.sh

clean:
	$(CARGO) clean
