//! How routing cost grows with the number of routes (issue 14): route lookup
//! with 10, 1 000 and 10 000 routes (host + prefix mixes), and what a reload
//! spends on them — the TOML parse alone, parsing and validating the config,
//! building the routing table, and compiling the whole snapshot as a reload
//! does (upstreams, metric handles, connectors carried over from the serving
//! snapshot). It also prints the heap bytes the routing table and the
//! snapshot keep, counted by a counting allocator.
//!
//! `cargo bench -p gatehouse --bench routes`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use gatehouse::metrics::Metrics;
use gatehouse::snapshot::compile;
use gatehouse_config::Config;
use gatehouse_connectors::Registry;
use gatehouse_http::router::Router;
use http::Method;
use stats_alloc::{Region, StatsAlloc};
use std::hint::black_box;

#[global_allocator]
static GLOBAL: StatsAlloc<std::alloc::System> = StatsAlloc::system();

/// Heap bytes still held after `f` returned what it built (kept alive).
fn held_bytes<T>(f: impl FnOnce() -> T) -> (T, isize) {
    let region = Region::new(&GLOBAL);
    let built = f();
    let c = region.change();
    let held = c.bytes_allocated as isize - c.bytes_deallocated as isize + c.bytes_reallocated;
    (built, held)
}

fn prefix(i: usize) -> String {
    match i % 3 {
        0 => format!("/api{i}"),
        1 => format!("/api{}/v{i}", i / 7),
        _ => format!("/team{}/svc{}/r{i}", i / 50, i / 5),
    }
}

/// A config with `n` routes: a tenth on exact hosts, a tenth on wildcard
/// hosts, the rest host-less; prefixes one to three segments deep; a fifth
/// limited to write methods.
fn config(n: usize) -> String {
    let mut s = String::from(
        "[server]\nlisten = [\"127.0.0.1:1\"]\n[upstreams.u]\npeers = [\"127.0.0.1:9\"]\n",
    );
    for i in 0..n {
        let host = match i % 10 {
            0 => format!("host = \"svc{i}.example.com\"\n"),
            1 => format!("host = \"*.t{i}.example.com\"\n"),
            _ => String::new(),
        };
        let methods = if i % 5 == 4 {
            "methods = [\"POST\", \"PUT\"]\n"
        } else {
            ""
        };
        s.push_str(&format!(
            "[[routes]]\nname = \"r{i}\"\npath_prefix = \"{}\"\nupstream = \"u\"\n{host}{methods}",
            prefix(i)
        ));
    }
    s
}

/// Four requests: the last host-less three-segment route (with a longer
/// path), the last exact-host route, the last wildcard-host route, a miss.
fn requests(n: usize) -> Vec<(Option<String>, String)> {
    let last = |keep: &dyn Fn(usize) -> bool| (0..n).rev().find(|i| keep(*i)).unwrap_or(0);
    let deep = last(&|i| i % 10 > 1 && i % 3 == 2 && i % 5 != 4);
    let exact = last(&|i| i % 10 == 0 && i % 5 != 4);
    let wild = last(&|i| i % 10 == 1 && i % 5 != 4);
    vec![
        (None, format!("{}/items/7", prefix(deep))),
        (
            Some(format!("svc{exact}.example.com")),
            format!("{}/x", prefix(exact)),
        ),
        (
            Some(format!("a.t{wild}.example.com")),
            format!("{}/deep/path", prefix(wild)),
        ),
        (
            Some("nowhere.test".to_string()),
            "/no/such/route/at/all".to_string(),
        ),
    ]
}

fn routing(c: &mut Criterion) {
    for n in [10usize, 1_000, 10_000] {
        let text = config(n);
        let cfg = Config::from_toml_str(&text).expect("valid config");
        let router = Router::new(&cfg.routes);
        let reqs = requests(n);
        for (h, p) in &reqs[..3] {
            assert!(
                router.find(h.as_deref(), p, &Method::GET).is_some(),
                "{h:?} {p}"
            );
        }
        let mut lookup = c.benchmark_group("route_lookup");
        lookup.bench_with_input(BenchmarkId::from_parameter(n), &reqs, |b, reqs| {
            b.iter(|| {
                for (h, p) in reqs {
                    black_box(router.find(h.as_deref(), p, &Method::GET));
                }
            })
        });
        lookup.finish();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let registry = Registry::builtin();
        let metrics = Metrics::new().expect("metrics");
        let snapshot = |prev| {
            let cfg = Config::from_toml_str(&text).expect("valid config");
            rt.block_on(compile(cfg, &registry, &metrics, prev, 1))
                .expect("compiles")
        };
        let (table, table_bytes) = held_bytes(|| Router::new(&cfg.routes));
        let (serving, snapshot_bytes) = held_bytes(|| snapshot(None));
        black_box(&table);
        println!(
            "memory, {n} routes: routing table {table_bytes} B ({} B/route); compiled snapshot {snapshot_bytes} B ({} B/route); config text {} B",
            table_bytes / n as isize,
            snapshot_bytes / n as isize,
            text.len()
        );
        let mut build = c.benchmark_group("route_reload");
        build.sample_size(10);
        build.bench_with_input(BenchmarkId::new("toml_parse", n), &text, |b, text| {
            b.iter(|| black_box(text.parse::<toml::Table>().expect("toml")))
        });
        build.bench_with_input(BenchmarkId::new("parse_validate", n), &text, |b, text| {
            b.iter(|| black_box(Config::from_toml_str(text).expect("valid config")))
        });
        build.bench_with_input(BenchmarkId::new("router_build", n), &cfg, |b, cfg| {
            b.iter(|| black_box(Router::new(&cfg.routes)))
        });
        build.bench_with_input(BenchmarkId::new("snapshot_compile", n), &n, |b, _| {
            b.iter(|| black_box(snapshot(Some(&serving))))
        });
        build.finish();
    }
}

criterion_group!(benches, routing);
criterion_main!(benches);
