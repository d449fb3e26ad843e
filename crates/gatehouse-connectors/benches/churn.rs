//! Token churn (issue 28): the JWT verified-token cache when a population of
//! users rotates its tokens, for each `token_cache_policy` (`tinylfu`, `lru`)
//! at cache sizes below and above the population. Plain tables, no criterion.
//!
//! Run: `cargo bench -p gatehouse-connectors --bench churn` (`make bench`).
//!
//! Workload: `CHURN_USERS` users (default 100 000), each holding one ES256
//! token signed by a real key and checked by the real `jwt` connector through
//! its public API (a miss pays a real signature check). Time advances in
//! `CHURN_STEPS` steps (default 120); each step sends
//! `CHURN_REQUESTS_PER_STEP` requests (default 20 000), each from a user
//! drawn from a Zipf distribution (s = 1; `CHURN_DIST=uniform` or `both` adds
//! or picks a uniform one) carrying that user's current token. Workload
//! `rotation`: every user gets a new token every `CHURN_PERIOD` steps (default
//! 60, "one hour"), staggered (a random phase per user, so 1/60 of the users
//! rotate at each step); the old token simply stops being sent. Workload
//! `stable`: nobody rotates. Cache sizes: users/10, users/2 and 2 × users.
//!
//! All tokens are minted before any timing, with an `exp` two hours ahead
//! (the connector's clock is the real one: nothing expires during the run;
//! cached entries live at most 1 h). The request stream is generated once per
//! workload from a fixed seed (xorshift), so every (policy, size) sees the
//! same requests. Hit ratios come from the connector's own
//! `gatehouse_token_cache_requests_total` counters, per step. They are
//! reproducible to a fraction of a point, not bit for bit: moka's sketch
//! hashes with a randomly seeded hasher and runs its housekeeping partly on a
//! timer. Runs go `CHURN_THREADS` at a time (default: the available cores),
//! each on its own single-threaded runtime, so req/s is one core's worth and
//! noisy when the machine is busy.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod support;
use gatehouse_connectors::jwt::{JwtFactory, TokenCachePolicy};
use gatehouse_connectors::{BuildContext, Connector, ConnectorFactory};
use gatehouse_testkit::{jwks, parse_metric, TestKey};
use http::HeaderMap;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{allow, bearer};

const ISS: &str = "https://idp.test";
const SEED: u64 = 0x9e37_79b9_7f4a_7c15;
/// Worst-case miss factors that differ by less than this are a tie.
const TIE: f64 = 0.02;

/// xorshift64* (Vigna): small, seeded, good enough for sampling.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).map_or(default, |v| {
        v.replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Dist {
    Zipf,
    Uniform,
}

impl Dist {
    fn name(self) -> &'static str {
        match self {
            Dist::Zipf => "zipf",
            Dist::Uniform => "uniform",
        }
    }
}

fn policy_name(p: TokenCachePolicy) -> &'static str {
    match p {
        TokenCachePolicy::TinyLfu => "tinylfu",
        TokenCachePolicy::Lru => "lru",
    }
}

struct Params {
    users: usize,
    steps: usize,
    per_step: usize,
    period: usize,
    /// Tokens per user: generations 0..gens (gen = (step + phase) / period).
    gens: usize,
    threads: usize,
}

/// One workload's request stream: token indices (user × gens + generation),
/// `per_step` per step, and the infinite-cache bound per step (a token's
/// first request always misses).
struct Workload {
    name: &'static str,
    dist: Dist,
    requests: Vec<u32>,
    bound: Vec<f64>,
}

impl Workload {
    /// The requests of `steps` steps: users drawn from `dist` (ranks mapped to
    /// users through a seeded permutation), each with its token of the step.
    fn new(p: &Params, name: &'static str, rotate: bool, dist: Dist, phase: &[u32]) -> Self {
        let mut rng = Rng(SEED ^ ((dist as u64 + 1) * 0x1000_0000_01b3));
        let mut perm: Vec<u32> = (0..p.users as u32).collect();
        for i in (1..perm.len()).rev() {
            perm.swap(i, rng.below(i + 1));
        }
        // Zipf(s = 1) by inverse transform over the cumulative weights.
        let cdf: Vec<f64> = (1..=p.users)
            .scan(0.0, |acc, k| {
                *acc += 1.0 / k as f64;
                Some(*acc)
            })
            .collect();
        let total = cdf.last().copied().unwrap_or(1.0);
        let mut seen = vec![false; p.users * p.gens];
        let mut requests = Vec::with_capacity(p.steps * p.per_step);
        let mut bound = Vec::with_capacity(p.steps);
        for step in 0..p.steps {
            let mut first = 0;
            for _ in 0..p.per_step {
                let rank = match dist {
                    Dist::Zipf => {
                        let x = rng.unit() * total;
                        cdf.partition_point(|&c| c <= x).min(p.users - 1)
                    }
                    Dist::Uniform => rng.below(p.users),
                };
                let u = perm[rank] as usize;
                let g = if rotate {
                    (step + phase[u] as usize) / p.period
                } else {
                    0
                };
                let t = u * p.gens + g;
                if !seen[t] {
                    seen[t] = true;
                    first += 1;
                }
                requests.push(t as u32);
            }
            bound.push(1.0 - first as f64 / p.per_step as f64);
        }
        Self {
            name,
            dist,
            requests,
            bound,
        }
    }
}

/// Every token of every user, as request headers, signed on `threads` threads.
fn mint(p: &Params, key: &TestKey) -> Vec<HeaderMap> {
    let ek = EncodingKey::from_ec_pem(key.private_pem().unwrap().as_bytes()).unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("k1".into());
    let now = gatehouse_testkit::tokens::now();
    let n = p.users * p.gens;
    let chunk = n.div_ceil(p.threads);
    let parts: Vec<Vec<HeaderMap>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .step_by(chunk.max(1))
            .map(|start| {
                let (ek, header) = (&ek, &header);
                s.spawn(move || {
                    (start..(start + chunk).min(n))
                        .map(|t| {
                            let (u, g) = (t / p.gens, t % p.gens);
                            let claims = json!({
                                "sub": format!("user-{u}"), "iss": ISS, "aud": "api",
                                "iat": now, "nbf": now, "exp": now + 7200,
                                "jti": format!("{u}.{g}"),
                            });
                            bearer(&jsonwebtoken::encode(header, &claims, ek).unwrap())
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    parts.into_iter().flatten().collect()
}

struct Job {
    workload: usize,
    policy: TokenCachePolicy,
    size: u64,
}

struct Outcome {
    /// Hit ratio of each step.
    ratios: Vec<f64>,
    /// Mean hit ratio after the warm-up.
    steady: f64,
    req_per_s: f64,
    secs: f64,
}

/// Runs the workload against a fresh connector with this cache.
fn run(p: &Params, w: &Workload, job: &Job, key: &TestKey, tokens: &[HeaderMap]) -> Outcome {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let reg = prometheus::Registry::new();
    let body = format!(
        "jwks = '''{}'''\nalgorithms = [\"ES256\"]\nissuers = [\"{ISS}\"]\naudiences = [\"api\"]\ntoken_cache_size = {}\ntoken_cache_policy = \"{}\"\n[inject_headers]\n\"X-User-Id\" = \"sub\"",
        jwks(&[(key, "k1")]),
        job.size,
        policy_name(job.policy),
    );
    let c: Arc<dyn Connector> = rt
        .block_on(JwtFactory::default().build(BuildContext {
            name: "churn".into(),
            path: "connectors.churn".into(),
            settings: toml::from_str(&body).unwrap(),
            metrics: reg.clone(),
            shared_caches: Default::default(),
        }))
        .unwrap();
    let lookups = || {
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&reg.gather())
            .unwrap();
        let n = |r| {
            parse_metric(
                &text,
                "gatehouse_token_cache_requests_total",
                &[("connector", "churn"), ("result", r)],
            )
            .unwrap_or(0.0)
        };
        (n("hit"), n("miss"))
    };
    let mut ratios = Vec::with_capacity(p.steps);
    let mut busy = Duration::ZERO;
    let (mut hits0, mut misses0) = lookups();
    for reqs in w.requests.chunks(p.per_step) {
        let t = Instant::now();
        rt.block_on(async {
            for &i in reqs {
                allow(&*c, &tokens[i as usize]).await;
            }
        });
        busy += t.elapsed();
        let (hits, misses) = lookups();
        let (h, m) = (hits - hits0, misses - misses0);
        assert_eq!(h + m, reqs.len() as f64, "one cache lookup per request");
        ratios.push(h / (h + m));
        (hits0, misses0) = (hits, misses);
    }
    let warm = warm_up(p);
    let steady = ratios[warm..].iter().sum::<f64>() / (ratios.len() - warm) as f64;
    Outcome {
        ratios,
        steady,
        req_per_s: w.requests.len() as f64 / busy.as_secs_f64(),
        secs: busy.as_secs_f64(),
    }
}

/// Steps left out of the steady-state mean: one rotation period (every user
/// has rotated once by then), or half the run when it is shorter.
fn warm_up(p: &Params) -> usize {
    if p.steps > p.period {
        p.period
    } else {
        p.steps / 2
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn main() {
    let wall = Instant::now();
    let users = env("CHURN_USERS", 100_000).max(10);
    let steps = env("CHURN_STEPS", 120).max(1);
    let period = env("CHURN_PERIOD", 60).max(1);
    let p = Params {
        users,
        steps,
        per_step: env("CHURN_REQUESTS_PER_STEP", 20_000).max(1),
        period,
        gens: (steps - 1).div_ceil(period) + 1,
        threads: env(
            "CHURN_THREADS",
            std::thread::available_parallelism().map_or(2, |n| n.get()),
        )
        .max(1),
    };
    let dists = match std::env::var("CHURN_DIST").as_deref() {
        Ok("uniform") => vec![Dist::Uniform],
        Ok("both") => vec![Dist::Zipf, Dist::Uniform],
        Ok("zipf") | Err(_) => vec![Dist::Zipf],
        Ok(other) => panic!("CHURN_DIST={other}: zipf, uniform or both"),
    };
    let sizes = [users as u64 / 10, users as u64 / 2, users as u64 * 2];
    let policies = [TokenCachePolicy::TinyLfu, TokenCachePolicy::Lru];
    println!(
        "# Token churn: {} users, {} steps × {} requests, rotation every {} steps (1/{} of the users per step), ES256, {} at a time; load average {}",
        p.users, p.steps, p.per_step, p.period, p.period, p.threads, loadavg()
    );

    let key = TestKey::ec256(1);
    let t = Instant::now();
    let mut rng = Rng(SEED);
    let phase: Vec<u32> = (0..p.users).map(|_| rng.below(p.period) as u32).collect();
    let tokens = mint(&p, &key);
    println!(
        "minted {} tokens ({} per user) in {:.1} s",
        tokens.len(),
        p.gens,
        t.elapsed().as_secs_f64()
    );
    let mut workloads = Vec::new();
    for &d in &dists {
        workloads.push(Workload::new(&p, "rotation", true, d, &phase));
        workloads.push(Workload::new(&p, "stable", false, d, &phase));
    }
    let mut jobs = Vec::new();
    for (wi, _) in workloads.iter().enumerate() {
        for &size in &sizes {
            for &policy in &policies {
                jobs.push(Job {
                    workload: wi,
                    policy,
                    size,
                });
            }
        }
    }

    // Runs, `threads` at a time; both policies of a size run side by side.
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<Option<Outcome>>> = Mutex::new(jobs.iter().map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..p.threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(i) else { break };
                let w = &workloads[job.workload];
                let o = run(&p, w, job, &key, &tokens);
                println!(
                    "  {:>8} {:<7} {:<7} {:>7}: steady hit ratio {:.3}, {:>6.0} req/s, {:.1} s",
                    w.name,
                    w.dist.name(),
                    policy_name(job.policy),
                    job.size,
                    o.steady,
                    o.req_per_s,
                    o.secs
                );
                done.lock().unwrap()[i] = Some(o);
            });
        }
    });
    let done: Vec<Outcome> = done
        .into_inner()
        .unwrap()
        .into_iter()
        .map(Option::unwrap)
        .collect();

    let warm = warm_up(&p);
    let every = (p.steps / 12).max(1);
    for (wi, w) in workloads.iter().enumerate() {
        let runs: Vec<(&Job, &Outcome)> = jobs
            .iter()
            .zip(&done)
            .filter(|(j, _)| j.workload == wi)
            .collect();
        println!(
            "\n## {} / {}: hit ratio per step (every {every}th; \"bound\": an unbounded cache, only first sightings miss)",
            w.name,
            w.dist.name()
        );
        print!("  step |  bound");
        for (j, _) in &runs {
            print!(" | {:>7} {:>7}", policy_name(j.policy), j.size);
        }
        println!();
        let mut rows: Vec<usize> = (0..p.steps).step_by(every).collect();
        rows.push(p.steps - 1);
        rows.dedup();
        for s in rows {
            print!("  {s:>4} | {:>6.3}", w.bound[s]);
            for (_, o) in &runs {
                print!(" | {:>15.3}", o.ratios[s]);
            }
            println!();
        }
        let b = w.bound[warm..].iter().sum::<f64>() / (w.bound.len() - warm) as f64;
        print!("  mean of steps {warm}..{} | {b:>6.3}", p.steps);
        for (_, o) in &runs {
            print!(" | {:>15.3}", o.steady);
        }
        println!();
    }

    println!(
        "\n## Summary (steady state: mean hit ratio of steps {warm}..{}; req/s: all steps, one core each)",
        p.steps
    );
    println!("| workload | requests | cache | tinylfu hit ratio | lru hit ratio | tinylfu req/s | lru req/s |");
    println!("|---|---|---|---|---|---|---|");
    let find = |wi: usize, size: u64, policy: TokenCachePolicy| {
        jobs.iter()
            .zip(&done)
            .find(|(j, _)| j.workload == wi && j.size == size && j.policy == policy)
            .map(|(_, o)| o)
            .unwrap()
    };
    for (wi, w) in workloads.iter().enumerate() {
        for &size in &sizes {
            let (t, l) = (
                find(wi, size, TokenCachePolicy::TinyLfu),
                find(wi, size, TokenCachePolicy::Lru),
            );
            println!(
                "| {} | {} | {size} | {:.3} | {:.3} | {:.0} | {:.0} |",
                w.name,
                w.dist.name(),
                t.steady,
                l.steady,
                t.req_per_s,
                l.req_per_s
            );
        }
    }

    // The default: the policy whose worst case costs the fewest extra
    // signature checks — over every workload and size of the first
    // distribution, its steady-state misses ÷ the other policy's misses.
    let lru_tiny = |wi: usize, s: u64| {
        (
            find(wi, s, TokenCachePolicy::Lru).steady,
            find(wi, s, TokenCachePolicy::TinyLfu).steady,
        )
    };
    let mut worst = [(1.0f64, String::new()), (1.0f64, String::new())]; // [lru, tinylfu]: (factor, where)
    let mut points = Vec::new();
    for (wi, w) in workloads.iter().enumerate() {
        if w.dist != dists[0] {
            continue;
        }
        let mut row = Vec::new();
        for &size in &sizes {
            let (l, t) = lru_tiny(wi, size);
            row.push(format!("{size}: {:+.1}", (l - t) * 100.0));
            let (ml, mt) = ((1.0 - l).max(1e-4), (1.0 - t).max(1e-4));
            for (k, f) in [(0, ml / mt), (1, mt / ml)] {
                if f > worst[k].0 {
                    worst[k] = (f, format!("{} {size}", w.name));
                }
            }
        }
        points.push(format!("{} {}", w.name, row.join(", ")));
    }
    let measured = if (worst[0].0 - worst[1].0).abs() < TIE {
        TokenCachePolicy::default()
    } else if worst[0].0 < worst[1].0 {
        TokenCachePolicy::Lru
    } else {
        TokenCachePolicy::TinyLfu
    };
    let at = |(f, w): &(f64, String)| {
        if w.is_empty() {
            "never worse".to_string()
        } else {
            format!("×{f:.2} ({w})")
        }
    };
    println!(
        "\ndefault token_cache_policy = \"{}\" ({} this run, whose choice is \"{}\": the smaller worst case of signature checks relative to the other policy — lru {}, tinylfu {}; lru − tinylfu hit ratio, points: {})",
        policy_name(TokenCachePolicy::default()),
        if measured == TokenCachePolicy::default() {
            "agrees with"
        } else {
            "DISAGREES with"
        },
        policy_name(measured),
        at(&worst[0]),
        at(&worst[1]),
        points.join("; "),
    );
    println!(
        "wall time {:.0} s; load average {}",
        wall.elapsed().as_secs_f64(),
        loadavg()
    );
}
