//! The one clock connectors read: Unix time in (fractional) seconds.
//!
//! Decisions take `now` as a parameter (`verify(…, now)`), so tests pass any
//! instant; only the connector's request path calls [`now`].

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (0 if the system clock is before it).
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
