//! Running a route's connectors in order.

use crate::{Connector, HeaderEdits, Rejection, RequestView, Verdict};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a whole chain decided.
#[derive(Debug)]
pub enum ChainOutcome {
    /// Every connector allowed; their edits, merged in chain order.
    Allow(HeaderEdits),
    /// Connector number `index` denied; later connectors did not run.
    Deny {
        /// Position of the denying connector in the chain.
        index: usize,
        /// What to answer.
        rejection: Rejection,
    },
}

/// Runs `chain` in order. `observe(index, allowed, elapsed)` is called after
/// each connector (for metrics). An empty chain allows with no edits.
pub async fn run_chain<F>(
    chain: &[Arc<dyn Connector>],
    req: &RequestView<'_>,
    mut observe: F,
) -> ChainOutcome
where
    F: FnMut(usize, bool, Duration),
{
    let mut edits = HeaderEdits::none();
    for (index, c) in chain.iter().enumerate() {
        let start = Instant::now();
        let verdict = c.check(req).await;
        match verdict {
            Verdict::Allow(e) => {
                observe(index, true, start.elapsed());
                edits.merge(e);
            }
            Verdict::Deny(rejection) => {
                observe(index, false, start.elapsed());
                return ChainOutcome::Deny { index, rejection };
            }
        }
    }
    ChainOutcome::Allow(edits)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::Reason;
    use async_trait::async_trait;
    use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Step {
        allow: bool,
        header: &'static str,
        calls: AtomicUsize,
    }

    #[async_trait]
    impl Connector for Step {
        fn name(&self) -> &str {
            self.header
        }
        fn kind(&self) -> &str {
            "test"
        }
        async fn check(&self, _req: &RequestView<'_>) -> Verdict {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.allow {
                Verdict::Allow(HeaderEdits {
                    set: vec![(
                        HeaderName::from_static(self.header),
                        HeaderValue::from_static("yes"),
                    )],
                    ..Default::default()
                })
            } else {
                Verdict::Deny(Rejection::json(
                    StatusCode::FORBIDDEN,
                    Reason::PolicyDenied,
                    "denied",
                    self.header,
                ))
            }
        }
    }

    fn step(allow: bool, header: &'static str) -> Arc<Step> {
        Arc::new(Step {
            allow,
            header,
            calls: AtomicUsize::new(0),
        })
    }

    fn view<'a>(m: &'a Method, u: &'a Uri, h: &'a HeaderMap) -> RequestView<'a> {
        RequestView {
            method: m,
            uri: u,
            headers: h,
            client: None,
            request_id: "r1",
        }
    }

    #[tokio::test]
    async fn all_allow_merges_edits_in_order() {
        let (a, b) = (step(true, "x-a"), step(true, "x-b"));
        let chain: Vec<Arc<dyn Connector>> = vec![a.clone(), b.clone()];
        let (m, u, h) = (Method::GET, Uri::from_static("/x"), HeaderMap::new());
        let mut seen = vec![];
        match run_chain(&chain, &view(&m, &u, &h), |i, ok, _| seen.push((i, ok))).await {
            ChainOutcome::Allow(e) => {
                assert_eq!(
                    e.set.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
                    ["x-a", "x-b"]
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(seen, [(0, true), (1, true)]);
    }

    #[tokio::test]
    async fn first_deny_stops_the_chain() {
        let (a, b, c) = (step(true, "x-a"), step(false, "x-b"), step(true, "x-c"));
        let chain: Vec<Arc<dyn Connector>> = vec![a.clone(), b.clone(), c.clone()];
        let (m, u, h) = (Method::GET, Uri::from_static("/x"), HeaderMap::new());
        match run_chain(&chain, &view(&m, &u, &h), |_, _, _| {}).await {
            ChainOutcome::Deny { index, rejection } => {
                assert_eq!(index, 1);
                assert_eq!(rejection.status, StatusCode::FORBIDDEN);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            c.calls.load(Ordering::SeqCst),
            0,
            "connector after a deny must not run"
        );
    }

    #[tokio::test]
    async fn empty_chain_allows() {
        let (m, u, h) = (Method::GET, Uri::from_static("/x"), HeaderMap::new());
        assert!(
            matches!(run_chain(&[], &view(&m, &u, &h), |_, _, _| {}).await, ChainOutcome::Allow(e) if e.is_empty())
        );
    }
}
