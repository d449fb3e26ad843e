//! Upper bounds on durations from the config that feed time arithmetic
//! (with claims, `Instant`s or cache expiry). A value above its bound is a
//! config error at `connectors.NAME.key`, reported by `gatehouse check`.

use gatehouse_config::ConfigError;
use std::time::Duration;

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// `leeway` (clock skew tolerated on `exp`, `nbf`, `iat`).
pub const MAX_LEEWAY: Duration = Duration::from_secs(5 * MINUTE);
/// `max_token_age`.
pub const MAX_TOKEN_AGE: Duration = Duration::from_secs(30 * DAY);
/// `jwks_max_stale`.
pub const MAX_JWKS_STALE: Duration = Duration::from_secs(30 * DAY);
/// `jwks_refresh` and `jwks_min_refetch_interval`.
pub const MAX_JWKS_REFRESH: Duration = Duration::from_secs(DAY);
/// Userinfo `cache_ttl`, `negative_cache_ttl` and `stale_if_error`.
pub const MAX_USERINFO_CACHE: Duration = Duration::from_secs(DAY);
/// Timeouts of calls to an identity provider (`jwks_timeout`, `timeout`).
pub const MAX_IDP_TIMEOUT: Duration = Duration::from_secs(5 * MINUTE);

/// `d`, unless it exceeds `max`: then an error at `path.key`.
pub fn at_most(path: &str, key: &str, d: Duration, max: Duration) -> Result<Duration, ConfigError> {
    if d > max {
        return Err(ConfigError::new(
            format!("{path}.{key}"),
            format!("{} is more than the allowed {}", show(d), show(max)),
        ));
    }
    Ok(d)
}

/// A duration in the largest whole unit (`30d`, `5m`, `90s`), else as
/// humantime writes it.
fn show(d: Duration) -> String {
    let s = d.as_secs();
    if d.subsec_nanos() != 0 || s == 0 {
        return humantime::format_duration(d).to_string();
    }
    for (unit, n) in [("d", DAY), ("h", HOUR), ("m", MINUTE)] {
        if s.is_multiple_of(n) {
            return format!("{}{unit}", s / n);
        }
    }
    format!("{s}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_errors_name_the_key() {
        assert_eq!(
            at_most("connectors.c", "leeway", MAX_LEEWAY, MAX_LEEWAY).unwrap(),
            MAX_LEEWAY
        );
        let e = at_most(
            "connectors.c",
            "leeway",
            Duration::from_secs(301),
            MAX_LEEWAY,
        )
        .unwrap_err();
        assert_eq!(e.path, "connectors.c.leeway");
        assert_eq!(e.message, "301s is more than the allowed 5m");
        assert_eq!(show(Duration::from_secs(31 * DAY)), "31d");
        assert_eq!(show(Duration::from_millis(1500)), "1s 500ms");
    }
}
