//! Waiting for a state instead of sleeping a fixed time: poll a condition
//! until it holds or a deadline passes.

use std::time::{Duration, Instant};

/// Interval between two polls of [`eventually`] and [`eventually_blocking`].
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Polls `f` (awaiting it) until it returns `true` or `timeout` passes;
/// whether it held. `f` is polled at least once.
pub async fn eventually(timeout: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Blocking variant of [`eventually`], for plain threads and `#[test]`
/// functions: polls `f` until it returns `true` or `timeout` passes.
pub fn eventually_blocking(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}
