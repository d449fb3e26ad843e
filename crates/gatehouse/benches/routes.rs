//! How routing cost grows with the number of routes (issue 14): route lookup
//! with 10, 1 000 and 10 000 routes (host + prefix mixes), and what a reload
//! spends on them — parsing and validating the `[[routes]]` of a config and
//! building the routing table.
//!
//! `cargo bench -p gatehouse --bench routes`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use gatehouse::router::Router;
use gatehouse_config::Config;
use http::Method;
use std::hint::black_box;

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
        let mut build = c.benchmark_group("route_reload");
        build.sample_size(10);
        build.bench_with_input(BenchmarkId::from_parameter(n), &text, |b, text| {
            b.iter(|| {
                let cfg = Config::from_toml_str(text).expect("valid config");
                black_box(Router::new(&cfg.routes))
            })
        });
        build.finish();
    }
}

criterion_group!(benches, routing);
criterion_main!(benches);
