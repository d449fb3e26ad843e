//! Reading Prometheus text expositions (what `/metrics` serves).

use std::collections::BTreeSet;
use std::net::SocketAddr;

use crate::http_client::http_get_blocking;

/// Scrapes `GET /metrics` on the admin listener `admin` and returns the
/// (summed) value of the samples named `name` carrying all `labels`; see
/// [`parse_metric`]. `None` if the scrape fails or no sample matches.
///
/// [`Gatehouse::metric`](crate::Gatehouse::metric) for a child process;
/// this one also serves a Gatehouse run in-process.
pub fn scrape_metric(admin: SocketAddr, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    match http_get_blocking(admin, "/metrics") {
        Ok((200, text)) => parse_metric(&text, name, labels),
        _ => None,
    }
}

/// The metric family names of a Prometheus text exposition (its
/// `# TYPE name kind` lines).
pub fn metric_families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Parses a Prometheus text exposition and returns the value of the samples
/// named exactly `name` whose labels include every pair in `labels` (other
/// labels are allowed). Several matching samples are summed; `None` if no
/// sample matches.
pub fn parse_metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut total: Option<f64> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some(sample) = parse_sample(line) else {
            continue;
        };
        if sample.name != name {
            continue;
        }
        let all_match = labels
            .iter()
            .all(|(k, v)| sample.labels.iter().any(|(sk, sv)| sk == k && sv == v));
        if all_match {
            total = Some(total.unwrap_or(0.0) + sample.value);
        }
    }
    total
}

struct Sample<'a> {
    name: &'a str,
    labels: Vec<(String, String)>,
    value: f64,
}

fn parse_sample(line: &str) -> Option<Sample<'_>> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        let (parsed, remaining) = parse_labels(after_brace)?;
        labels = parsed;
        rest = remaining;
    }
    let value = rest.split_whitespace().next()?;
    Some(Sample {
        name,
        labels,
        value: parse_value(value)?,
    })
}

/// Parses `k="v",k2="v2"}` and returns the labels and the text after `}`.
fn parse_labels(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        if let Some(rest) = s.strip_prefix('}') {
            return Some((labels, rest));
        }
        let eq = s.find('=')?;
        let key = s[..eq].trim().to_owned();
        s = s[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => {
                    let (_, escaped) = chars.next()?;
                    value.push(match escaped {
                        'n' => '\n',
                        other => other,
                    });
                }
                c => value.push(c),
            }
        };
        labels.push((key, value));
        s = &s[end + 1..];
    }
}

fn parse_value(v: &str) -> Option<f64> {
    match v {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => v.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const SAMPLE: &str = r#"# HELP gatehouse_requests_total Requests.
# TYPE gatehouse_requests_total counter
gatehouse_requests_total{route="api",status="200"} 5
gatehouse_requests_total{route="api",status="401"} 2
gatehouse_requests_total{route="web",status="200"} 7
gatehouse_requests_total_extra{route="api"} 100
gatehouse_up 1
gatehouse_latency_seconds_bucket{route="api",le="0.005"} 3
gatehouse_latency_seconds_bucket{route="api",le="+Inf"} 9
gatehouse_latency_seconds_sum{route="api"} 1e-05
weird{msg="a,b=\"c\"}",route="x"} 4 1700000000000
escaped{path="C:\\dir"} 2.5
"#;

    #[test]
    fn exact_labels() {
        let v = parse_metric(
            SAMPLE,
            "gatehouse_requests_total",
            &[("route", "api"), ("status", "200")],
        );
        assert_eq!(v, Some(5.0));
        // Order independent.
        let v = parse_metric(
            SAMPLE,
            "gatehouse_requests_total",
            &[("status", "401"), ("route", "api")],
        );
        assert_eq!(v, Some(2.0));
    }

    #[test]
    fn partial_labels_sum() {
        assert_eq!(
            parse_metric(SAMPLE, "gatehouse_requests_total", &[("route", "api")]),
            Some(7.0)
        );
        assert_eq!(
            parse_metric(SAMPLE, "gatehouse_requests_total", &[]),
            Some(14.0)
        );
        assert_eq!(
            parse_metric(SAMPLE, "gatehouse_requests_total", &[("status", "200")]),
            Some(12.0)
        );
    }

    #[test]
    fn name_must_match_exactly() {
        assert_eq!(parse_metric(SAMPLE, "gatehouse_requests", &[]), None);
        assert_eq!(
            parse_metric(SAMPLE, "gatehouse_requests_total_extra", &[]),
            Some(100.0)
        );
    }

    #[test]
    fn no_match_is_none() {
        assert_eq!(
            parse_metric(SAMPLE, "gatehouse_requests_total", &[("route", "nope")]),
            None
        );
        assert_eq!(parse_metric("", "x", &[]), None);
        assert_eq!(
            parse_metric("# HELP x y\n# TYPE x counter\n", "x", &[]),
            None
        );
    }

    #[test]
    fn unlabelled_and_exponent_values() {
        assert_eq!(parse_metric(SAMPLE, "gatehouse_up", &[]), Some(1.0));
        assert_eq!(
            parse_metric(SAMPLE, "gatehouse_latency_seconds_sum", &[("route", "api")]),
            Some(1e-05)
        );
    }

    #[test]
    fn inf_bucket_label() {
        assert_eq!(
            parse_metric(
                SAMPLE,
                "gatehouse_latency_seconds_bucket",
                &[("le", "+Inf")]
            ),
            Some(9.0)
        );
        assert_eq!(
            parse_metric(
                SAMPLE,
                "gatehouse_latency_seconds_bucket",
                &[("le", "0.005")]
            ),
            Some(3.0)
        );
    }

    #[test]
    fn tricky_label_values_and_timestamp() {
        assert_eq!(
            parse_metric(SAMPLE, "weird", &[("msg", "a,b=\"c\"}"), ("route", "x")]),
            Some(4.0)
        );
        assert_eq!(parse_metric(SAMPLE, "weird", &[("route", "x")]), Some(4.0));
        assert_eq!(
            parse_metric(SAMPLE, "escaped", &[("path", "C:\\dir")]),
            Some(2.5)
        );
    }

    #[test]
    fn inf_values() {
        let text = "a +Inf\nb -Inf\nc NaN\n";
        assert_eq!(parse_metric(text, "a", &[]), Some(f64::INFINITY));
        assert_eq!(parse_metric(text, "b", &[]), Some(f64::NEG_INFINITY));
        assert!(parse_metric(text, "c", &[]).unwrap().is_nan());
    }
}
