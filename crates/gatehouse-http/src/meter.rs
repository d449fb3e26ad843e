//! The arithmetic of request limits, without I/O: GCRA (the generic cell
//! rate algorithm) for rates, UTC calendar periods for quotas, and the usage
//! headers clients read (IETF `RateLimit-Policy`/`RateLimit`, Mashery
//! `X-Plan-*`). Times are microseconds since the Unix epoch.

use std::time::Duration;

/// A rate of `count` per `period` with room for `burst` requests at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    /// Microseconds between two requests at the steady rate (T).
    pub interval_us: u64,
    /// How far ahead of now the theoretical arrival time may run (τ =
    /// (burst − 1) × T).
    pub tolerance_us: u64,
    /// Requests per period, for headers.
    pub count: u32,
    /// The period, for headers.
    pub period: Duration,
    /// Requests allowed at once.
    pub burst: u32,
}

/// What GCRA decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateOutcome {
    /// Let through.
    pub allowed: bool,
    /// The theoretical arrival time to store (unchanged when refused).
    pub tat_us: u64,
    /// Requests that could still be made right now.
    pub remaining: u64,
    /// When refused: how long until one would be allowed.
    pub retry_after_us: u64,
}

impl Gcra {
    /// `count` per `period`, `burst` at once (at least 1).
    pub fn new(count: u32, period: Duration, burst: u32) -> Self {
        let period_us = u64::try_from(period.as_micros()).unwrap_or(u64::MAX);
        let interval_us = (period_us / u64::from(count.max(1))).max(1);
        Self {
            interval_us,
            tolerance_us: interval_us.saturating_mul(u64::from(burst.max(1)) - 1),
            count,
            period,
            burst: burst.max(1),
        }
    }

    /// The decision for a request at `now` given the stored `tat` (none: a
    /// key never seen, or expired).
    pub fn check(&self, tat: Option<u64>, now: u64) -> RateOutcome {
        let tat = tat.unwrap_or(now).max(now);
        let ahead = tat - now;
        if ahead > self.tolerance_us {
            return RateOutcome {
                allowed: false,
                tat_us: tat,
                remaining: 0,
                retry_after_us: ahead - self.tolerance_us,
            };
        }
        let new_tat = tat + self.interval_us;
        RateOutcome {
            allowed: true,
            tat_us: new_tat,
            remaining: self.remaining(new_tat, now),
            retry_after_us: 0,
        }
    }

    /// Requests that could still be made at `now` with `tat` stored.
    pub fn remaining(&self, tat: u64, now: u64) -> u64 {
        let ahead = tat.saturating_sub(now);
        (self.tolerance_us + self.interval_us).saturating_sub(ahead) / self.interval_us
    }

    /// How long a stored arrival time matters (for expiry): until it is
    /// in the past.
    pub fn ttl_us(&self, tat: u64, now: u64) -> u64 {
        tat.saturating_sub(now)
    }
}

/// A quota period in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// Clock hours.
    Hour,
    /// Calendar days.
    Day,
    /// Calendar months.
    Month,
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day number since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl Period {
    /// Start and end (Unix seconds) of the period holding `now_s`.
    pub fn bounds(self, now_s: u64) -> (u64, u64) {
        match self {
            Period::Hour => {
                let s = now_s - now_s % 3600;
                (s, s + 3600)
            }
            Period::Day => {
                let s = now_s - now_s % 86_400;
                (s, s + 86_400)
            }
            Period::Month => {
                let (y, m, _) = civil_from_days((now_s / 86_400) as i64);
                let start = days_from_civil(y, m, 1) * 86_400;
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                let end = days_from_civil(ny, nm, 1) * 86_400;
                (start.max(0) as u64, end.max(0) as u64)
            }
        }
    }

    /// Nominal length in seconds (`w=` of the IETF policy; a month is 30 days there).
    pub fn nominal_secs(self) -> u64 {
        match self {
            Period::Hour => 3600,
            Period::Day => 86_400,
            Period::Month => 30 * 86_400,
        }
    }
}

/// `Thursday, September 20, 2018 12:00:00 AM GMT` (Mashery's `X-Plan-Quota-Reset`).
pub fn mashery_date(unix_s: u64) -> String {
    const DAYS: [&str; 7] = [
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
    ];
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let days = (unix_s / 86_400) as i64;
    let (y, m, d) = civil_from_days(days);
    let secs = unix_s % 86_400;
    let (h, min, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let (h12, ampm) = match h {
        0 => (12, "AM"),
        1..=11 => (h, "AM"),
        12 => (12, "PM"),
        _ => (h - 12, "PM"),
    };
    format!(
        "{}, {} {d:02}, {y} {h12:02}:{min:02}:{s:02} {ampm} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(m - 1) as usize]
    )
}

/// What one limit reports in the usage headers of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// The rate: (requests per period, period, remaining now, seconds until full).
    pub rate: Option<(u32, Duration, u64, u64)>,
    /// The quota: (allowed per period, used, period, end of the period in Unix seconds, now).
    pub quota: Option<(u64, u64, Period, u64, u64)>,
}

/// IETF draft-ietf-httpapi-ratelimit-headers: `RateLimit-Policy` and
/// `RateLimit` values for `name`d limits, or `None` when there is nothing.
pub fn ietf_headers(usages: &[(&str, Usage)]) -> Option<(String, String)> {
    let mut policy = Vec::new();
    let mut limit = Vec::new();
    for (name, u) in usages {
        if let Some((q, w, r, t)) = u.rate {
            policy.push(format!("\"{name}-rate\";q={q};w={}", w.as_secs().max(1)));
            limit.push(format!("\"{name}-rate\";r={r};t={t}"));
        }
        if let Some((q, used, p, end, now)) = u.quota {
            policy.push(format!("\"{name}-quota\";q={q};w={}", p.nominal_secs()));
            limit.push(format!(
                "\"{name}-quota\";r={};t={}",
                q.saturating_sub(used),
                end.saturating_sub(now)
            ));
        }
    }
    (!policy.is_empty()).then(|| (policy.join(", "), limit.join(", ")))
}

/// The IETF `RateLimit` value alone (the policy only changes with the
/// configuration: callers compile it once with [`ietf_headers`]).
pub fn ietf_limit(usages: &[(&str, Usage)]) -> Option<String> {
    use std::fmt::Write;
    let mut out = String::with_capacity(64 * usages.len());
    for (name, u) in usages {
        if let Some((_, _, r, t)) = u.rate {
            if !out.is_empty() {
                out.push_str(", ");
            }
            let _ = write!(out, "\"{name}-rate\";r={r};t={t}");
        }
        if let Some((q, used, _, end, now)) = u.quota {
            if !out.is_empty() {
                out.push_str(", ");
            }
            let _ = write!(
                out,
                "\"{name}-quota\";r={};t={}",
                q.saturating_sub(used),
                end.saturating_sub(now)
            );
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Mashery's usage headers of one limit (`X-Plan-Qps-*` for a per-second
/// rate, `X-Plan-Quota-*` for a quota).
pub fn mashery_headers(u: &Usage) -> Vec<(&'static str, String)> {
    let mut h = Vec::new();
    if let Some((q, period, remaining, _)) = u.rate {
        let per_sec = if period.as_secs() <= 1 {
            u64::from(q)
        } else {
            (u64::from(q) / period.as_secs()).max(1)
        };
        h.push(("x-plan-qps-allotted", per_sec.to_string()));
        h.push((
            "x-plan-qps-current",
            per_sec.saturating_sub(remaining.min(per_sec)).to_string(),
        ));
    }
    if let Some((q, used, _, end, _)) = u.quota {
        h.push(("x-plan-quota-allotted", q.to_string()));
        h.push(("x-plan-quota-current", used.to_string()));
        h.push(("x-plan-quota-reset", mashery_date(end)));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_burst_then_the_steady_rate() {
        let g = Gcra::new(10, Duration::from_secs(1), 5);
        let mut tat = None;
        let now = 1_000_000_000;
        for i in 0..5 {
            let o = g.check(tat, now);
            assert!(o.allowed, "burst request {i}");
            assert_eq!(o.remaining, 4 - i);
            tat = Some(o.tat_us);
        }
        let o = g.check(tat, now);
        assert!(!o.allowed);
        assert_eq!(o.retry_after_us, 100_000);
        assert!(g.check(tat, now + 100_000).allowed);
    }

    #[test]
    fn calendar_periods_in_utc() {
        // 2026-12-05T05:00:00Z
        let t = 1_796_446_800;
        assert_eq!(Period::Hour.bounds(t + 59), (t, t + 3600));
        assert_eq!(Period::Day.bounds(t).0, t - 5 * 3600);
        let (s, e) = Period::Month.bounds(t);
        assert_eq!(
            mashery_date(s),
            "Tuesday, December 01, 2026 12:00:00 AM GMT"
        );
        assert_eq!(mashery_date(e), "Friday, January 01, 2027 12:00:00 AM GMT");
        let (s, e) = Period::Month.bounds(1_709_251_199); // 2024-02-29T23:59:59Z
        assert_eq!(e - s, 29 * 86_400);
        assert_eq!(
            mashery_date(1_537_401_600),
            "Thursday, September 20, 2018 12:00:00 AM GMT"
        );
        assert_eq!(
            mashery_date(1_537_448_400),
            "Thursday, September 20, 2018 01:00:00 PM GMT"
        );
    }

    #[test]
    fn usage_headers() {
        let u = Usage {
            rate: Some((10, Duration::from_secs(1), 7, 0)),
            quota: Some((1000, 250, Period::Day, 86_400, 43_200)),
        };
        let (p, l) = ietf_headers(&[("plan", u)]).unwrap_or_default();
        assert_eq!(ietf_limit(&[("plan", u)]).as_deref(), Some(l.as_str()));
        assert_eq!(p, "\"plan-rate\";q=10;w=1, \"plan-quota\";q=1000;w=86400");
        assert_eq!(l, "\"plan-rate\";r=7;t=0, \"plan-quota\";r=750;t=43200");
        let m = mashery_headers(&u);
        assert!(m.contains(&("x-plan-qps-allotted", "10".into())));
        assert!(m.contains(&("x-plan-qps-current", "3".into())));
        assert!(m.contains(&("x-plan-quota-current", "250".into())));
        assert!(m.contains(&(
            "x-plan-quota-reset",
            "Friday, January 02, 1970 12:00:00 AM GMT".into()
        )));
    }

    proptest! {
        /// Over any window, GCRA allows at most burst + window / T requests.
        #[test]
        fn never_more_than_the_bound(count in 1u32..200, burst in 1u32..50, gaps in proptest::collection::vec(0u64..50_000, 1..400)) {
            let g = Gcra::new(count, Duration::from_secs(1), burst);
            let (mut tat, mut now, mut allowed) = (None, 0u64, 0u64);
            for gap in &gaps {
                now += gap;
                let o = g.check(tat, now);
                if o.allowed { allowed += 1; tat = Some(o.tat_us); }
            }
            prop_assert!(allowed <= u64::from(burst) + now / g.interval_us + 1);
        }

        #[test]
        fn civil_dates_round_trip(days in -100_000i64..100_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
