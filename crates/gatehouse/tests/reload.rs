//! End-to-end: hot reload (file change, SIGHUP, ConfigMap-style symlink swap).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use gatehouse_testkit::{eventually, ConfigBuilder, EchoUpstream, Gatehouse};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Upstreams `a` and `b`, a 2 s grace period.
fn head(a: &EchoUpstream, b: &EchoUpstream) -> ConfigBuilder {
    ConfigBuilder::new()
        .grace_period("2s")
        .upstream("a", a.addr())
        .upstream("b", b.addr())
}

/// `head` and one route `/` to the upstream `target`.
fn routed(head: ConfigBuilder, target: &str) -> String {
    format!(
        "{}[[routes]]\nname = \"main\"\npath_prefix = \"/\"\nupstream = \"{target}\"\n",
        head.render()
    )
}

fn two_upstreams(a: &EchoUpstream, b: &EchoUpstream, target: &str) -> String {
    routed(head(a, b), target)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_switches_routing_without_failing_a_request() {
    let (a, b) = (EchoUpstream::start(), EchoUpstream::start());
    let gh = Gatehouse::start(BIN, &two_upstreams(&a, &b, "a")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut workers = Vec::new();
    for _ in 0..2 {
        let (stop, ok, failed, url) = (stop.clone(), ok.clone(), failed.clone(), gh.url("/x"));
        workers.push(tokio::spawn(async move {
            let cl = client();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && n < 20_000 {
                n += 1;
                match cl.get(&url).send().await {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    // Traffic flows to `a` before the reload.
    let flowing = eventually(Duration::from_secs(10), async || a.requests() >= 100).await;
    assert!(flowing, "traffic reaches a; logs:\n{}", gh.logs());
    gh.write_config(&two_upstreams(&a, &b, "b")).unwrap();
    let switched = eventually(Duration::from_secs(10), async || b.requests() > 50).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    assert!(
        switched,
        "traffic moved to b after the file changed; logs:\n{}",
        gh.logs()
    );
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "no request failed during the reload"
    );
    assert!(a.requests() > 0 && ok.load(Ordering::Relaxed) > 100);
    assert_eq!(gh.metric("gatehouse_config_generation", &[]), Some(2.0));
    assert_eq!(
        gh.metric("gatehouse_config_reloads_total", &[("result", "success")]),
        Some(2.0)
    );
}

#[tokio::test]
async fn broken_reload_keeps_the_running_config_and_counts_the_failure() {
    let (a, b) = (EchoUpstream::start(), EchoUpstream::start());
    let gh = Gatehouse::start(BIN, &two_upstreams(&a, &b, "a")).unwrap();
    // A typo in a key: refused with its path.
    let broken = two_upstreams(&a, &b, "b").replace("path_prefix", "path_prefx");
    gh.write_config(&broken).unwrap();
    assert!(
        gh.wait_for_log("routes[0].path_prefx", Duration::from_secs(10)),
        "the error names the bad key; logs:\n{}",
        gh.logs()
    );
    assert_eq!(
        gh.metric("gatehouse_config_reloads_total", &[("result", "failure")]),
        Some(1.0)
    );
    client()
        .get(gh.url("/still-a"))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    assert_eq!(
        (a.requests(), b.requests()),
        (1, 0),
        "still routed by the old config"
    );
    assert_eq!(gh.metric("gatehouse_config_generation", &[]), Some(1.0));

    // A reference error via SIGHUP: also refused.
    gh.write_config(&two_upstreams(&a, &b, "nope")).unwrap();
    assert!(
        gh.wait_for_log(
            "routes[0].upstream: no upstream named \"nope\"",
            Duration::from_secs(10)
        ),
        "{}",
        gh.logs()
    );
    gh.sighup();
    let failures = eventually(Duration::from_secs(5), async || {
        gh.metric("gatehouse_config_reloads_total", &[("result", "failure")]) >= Some(3.0)
    })
    .await;
    assert!(failures, "file change + SIGHUP each count a failure");
    client()
        .get(gh.url("/still-a"))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    assert_eq!(a.requests(), 2);

    // Fixing the file recovers.
    gh.write_config(&two_upstreams(&a, &b, "b")).unwrap();
    assert!(
        eventually(Duration::from_secs(10), async || gh
            .metric("gatehouse_config_generation", &[])
            == Some(2.0))
        .await
    );
    client()
        .get(gh.url("/now-b"))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    assert_eq!(b.requests(), 1);
}

#[tokio::test]
async fn sighup_reloads_even_when_the_watcher_misses_it() {
    let (a, b) = (EchoUpstream::start(), EchoUpstream::start());
    let gh = Gatehouse::start(BIN, &two_upstreams(&a, &b, "a")).unwrap();
    gh.sighup();
    assert!(
        eventually(Duration::from_secs(5), async || gh
            .metric("gatehouse_config_generation", &[])
            == Some(2.0))
        .await,
        "SIGHUP reloads (a new generation even with the same content)"
    );
    assert_eq!(
        gh.metric("gatehouse_config_reloads_total", &[("result", "success")]),
        Some(2.0)
    );
}

/// Kubernetes mounts a ConfigMap as `dir/gatehouse.toml -> ..data/gatehouse.toml`,
/// `..data -> ..2026_11_23_…`, and updates it by swapping the `..data` symlink.
#[cfg(unix)]
#[tokio::test]
async fn configmap_symlink_swap_is_detected() {
    use gatehouse_testkit::free_addr;
    use gatehouse_testkit::http_get_blocking;
    use std::os::unix::fs::symlink;
    let (a, b) = (EchoUpstream::start(), EchoUpstream::start());
    let (listen, admin) = (free_addr(), free_addr());
    let text = routed(head(&a, &b).listen(listen).admin(admin), "a");

    let mount = tempfile::tempdir().unwrap();
    let dir = mount.path();
    std::fs::create_dir(dir.join("..v1")).unwrap();
    std::fs::write(dir.join("..v1/gatehouse.toml"), &text).unwrap();
    symlink("..v1", dir.join("..data")).unwrap();
    symlink("..data/gatehouse.toml", dir.join("gatehouse.toml")).unwrap();

    let mut child = std::process::Command::new(BIN)
        .args(["run", "--config"])
        .arg(dir.join("gatehouse.toml"))
        .stderr(std::fs::File::create(dir.join("log")).unwrap())
        .spawn()
        .unwrap();
    let ready = eventually(Duration::from_secs(20), async || {
        matches!(http_get_blocking(admin, "/readyz"), Ok((200, _)))
    })
    .await;
    assert!(ready, "started from the symlinked path");
    let url = format!("http://{listen}/x");
    client()
        .get(&url)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    assert_eq!(a.requests(), 1);

    // The swap, as the kubelet does it: new version dir, new symlink renamed over `..data`.
    std::fs::create_dir(dir.join("..v2")).unwrap();
    std::fs::write(
        dir.join("..v2/gatehouse.toml"),
        text.replace("upstream = \"a\"", "upstream = \"b\""),
    )
    .unwrap();
    symlink("..v2", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    std::fs::remove_dir_all(dir.join("..v1")).unwrap();

    let moved = eventually(Duration::from_secs(10), async || {
        let _ = client().get(&url).send().await;
        b.requests() > 0
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        moved,
        "symlink swap detected; log:\n{}",
        std::fs::read_to_string(dir.join("log")).unwrap_or_default()
    );
}
