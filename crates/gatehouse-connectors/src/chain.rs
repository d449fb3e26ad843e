//! Running a route's steps in order: every step must allow; a step is one
//! connector or an any-of group whose first allowing member wins.

use crate::errors::{Failure, FailureClass};
use crate::token::{strip_carriers, union_intake, Intake, TokenSource};
use crate::{Connector, Denial, HeaderEdits, Reason, Rejection, RequestView, Verdict};
use http::StatusCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One step of a chain: its members, in order (one for a plain step).
#[derive(Clone)]
pub struct Step {
    /// The members. A step with more than one member is an any-of group.
    pub members: Vec<Arc<dyn Connector>>,
    /// The union of the members' token sources (each carrier once).
    union: Vec<TokenSource>,
}

impl Step {
    /// A step of one connector.
    pub fn one(c: Arc<dyn Connector>) -> Self {
        Self::any(vec![c])
    }

    /// An any-of group.
    pub fn any(members: Vec<Arc<dyn Connector>>) -> Self {
        let mut union: Vec<TokenSource> = Vec::new();
        for s in members.iter().flat_map(|m| m.token_sources()) {
            if !union.contains(s) {
                union.push(s.clone());
            }
        }
        Self { members, union }
    }

    /// The carriers this step reads: the union of its members' token
    /// sources, one per carrier (for `gatehouse check`).
    pub fn carriers(&self) -> Vec<&TokenSource> {
        let mut out: Vec<&TokenSource> = Vec::new();
        for s in &self.union {
            if !out.iter().any(|o| o.same_carrier(s)) {
                out.push(s);
            }
        }
        out
    }

    /// The edits that follow member `winner`'s allow: the carriers of every
    /// other member that the winner does not read, removed by that member's
    /// own rule (query parameters always; headers and cookies unless it
    /// forwards its token).
    fn strip_others(&self, winner: usize, req: &RequestView<'_>) -> HeaderEdits {
        let mut edits = HeaderEdits::none();
        let Some(w) = self.members.get(winner) else {
            return edits;
        };
        for (j, m) in self.members.iter().enumerate() {
            if j == winner {
                continue;
            }
            let theirs: Vec<TokenSource> = m
                .token_sources()
                .iter()
                .filter(|s| !w.token_sources().iter().any(|o| o.same_carrier(s)))
                .cloned()
                .collect();
            edits.merge(strip_carriers(&theirs, req, m.forwards_token()));
        }
        edits
    }
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.members.iter().map(|m| m.name()))
            .finish()
    }
}

/// What a whole chain decided.
#[derive(Debug)]
pub enum ChainOutcome {
    /// Every step allowed; the allowing connectors' edits, in chain order.
    Allow(HeaderEdits),
    /// Step `step` refused; later steps did not run.
    Deny {
        /// Position of the refusing step.
        step: usize,
        /// Position, within the step, of the member whose refusal answers
        /// (the most specific one of a group; see [`Reason::specificity`]).
        member: usize,
        /// The refusal.
        denial: Denial,
    },
}

/// Runs `steps` in order. `observe(step, member, allowed, elapsed)` is
/// called after each connector that ran (for metrics). An empty chain allows
/// with no edits.
///
/// A group of two or more first reads the union of its members' token
/// sources: a token in the carriers of two members (or twice in one) is
/// refused with `ambiguous_token` (400) before any member runs. Members then
/// run in order until one allows; that member's edits apply, and the
/// carriers of the other members are removed by their own rules. Before a
/// member of a group runs, its [`Connector::precheck`] may refuse cheaply.
/// When no member allows, the refusal with the highest
/// [`Reason::specificity`] answers (the earliest on a tie).
///
/// On a protected route (any step), the RFC 6750 query parameter
/// `access_token` never reaches the upstream, whether a connector reads it
/// or not: an upstream that reads it would read a token nobody verified.
pub async fn run_chain<F>(steps: &[Step], req: &RequestView<'_>, mut observe: F) -> ChainOutcome
where
    F: FnMut(usize, usize, bool, Duration),
{
    run_chain_traced(
        steps,
        req,
        |_| true,
        |s, m, said, elapsed| {
            if !matches!(said, Said::NotEvaluated) {
                observe(s, m, matches!(said, Said::Allowed(_)), elapsed);
            }
        },
    )
    .await
}

/// What one member of a step said, as [`run_chain_traced`] reports it.
#[derive(Debug)]
pub enum Said<'a> {
    /// It allowed, with these edits.
    Allowed(&'a HeaderEdits),
    /// It refused.
    Refused(&'a Denial),
    /// Its cheap pre-check refused (rendered only if it answers).
    Skipped(&'a Failure),
    /// `evaluate` said not to run it (an offline explanation of a connector
    /// that calls an identity provider).
    NotEvaluated,
}

/// [`run_chain`] with a say in which members run and a trace of what each
/// said: `evaluate(connector)` false leaves a member out (reported as
/// [`Said::NotEvaluated`]); a step none of whose evaluated members allows but
/// which left one out passes, with no edits — whether the request would pass
/// is then up to the members left out. With `evaluate` always true this is
/// exactly the proxy's chain; `gatehouse token inspect` renders its trace.
pub async fn run_chain_traced<E, F>(
    steps: &[Step],
    req: &RequestView<'_>,
    evaluate: E,
    mut observe: F,
) -> ChainOutcome
where
    E: Fn(&dyn Connector) -> bool,
    F: FnMut(usize, usize, Said<'_>, Duration),
{
    let mut edits = HeaderEdits::none();
    'steps: for (s, step) in steps.iter().enumerate() {
        // The identity the steps before this one verified, for a connector
        // that reads its credential from it.
        let prior = edits.verified.clone();
        let view = RequestView {
            verified: prior.as_deref().or(req.verified),
            ..*req
        };
        let req = &view;
        let group = step.members.len() > 1;
        if group {
            if let Intake::Ambiguous(why) = union_intake(&step.union, req) {
                let f = Failure::new(
                    Reason::AmbiguousToken,
                    FailureClass::InvalidRequest,
                    "InvalidToken",
                    format!("{why}; send the token once"),
                );
                let denial = match step.members.first() {
                    Some(c) => c.refuse(f, req),
                    None => empty_step(),
                };
                return ChainOutcome::Deny {
                    step: s,
                    member: 0,
                    denial,
                };
            }
        }
        let mut best: Option<(usize, Refusal)> = None;
        let mut left_out = false;
        for (m, c) in step.members.iter().enumerate() {
            let start = Instant::now();
            if !evaluate(c.as_ref()) {
                observe(s, m, Said::NotEvaluated, start.elapsed());
                left_out = true;
                continue;
            }
            let refusal = match group.then(|| c.precheck(req)).flatten() {
                Some(f) => Refusal::Skipped(f),
                None => match c.check(req).await {
                    Verdict::Allow(e) => {
                        observe(s, m, Said::Allowed(&e), start.elapsed());
                        edits.merge(e);
                        if group {
                            edits.merge(step.strip_others(m, req));
                        }
                        continue 'steps;
                    }
                    Verdict::Deny(d) => Refusal::Denied(d),
                },
            };
            let said = match &refusal {
                Refusal::Denied(d) => Said::Refused(d),
                Refusal::Skipped(f) => Said::Skipped(f),
            };
            observe(s, m, said, start.elapsed());
            if best
                .as_ref()
                .is_none_or(|(_, b)| refusal.reason().specificity() > b.reason().specificity())
            {
                best = Some((m, refusal));
            }
        }
        if left_out {
            continue 'steps;
        }
        let (member, denial) = match best {
            Some((m, Refusal::Denied(d))) => (m, d),
            Some((m, Refusal::Skipped(f))) => (m, step.members[m].refuse(f, req)),
            None => (0, empty_step()),
        };
        return ChainOutcome::Deny {
            step: s,
            member,
            denial,
        };
    }
    let rfc6750_query = req.uri.query().is_some_and(|q| {
        q.split('&')
            .any(|p| crate::token::query_pair_matches(p, RFC6750_QUERY))
    });
    if !steps.is_empty() && rfc6750_query {
        edits.remove_query_params.push(RFC6750_QUERY.to_string());
    }
    edits.settle_cookies(req.headers);
    ChainOutcome::Allow(edits)
}

/// The query parameter RFC 6750 §2.3 carries a token in.
const RFC6750_QUERY: &str = "access_token";

/// A member's refusal: rendered by its check, or a skip rendered only if it
/// answers.
enum Refusal {
    Denied(Denial),
    Skipped(Failure),
}

impl Refusal {
    fn reason(&self) -> Reason {
        match self {
            Refusal::Denied(d) => d.reason(),
            Refusal::Skipped(f) => f.reason,
        }
    }
}

/// A step without members (refused by config validation; fail closed).
fn empty_step() -> Denial {
    Denial::new(
        Failure::new(
            Reason::Denied,
            FailureClass::InsufficientScope,
            "",
            "no connector can allow this step",
        ),
        Rejection::json(
            StatusCode::FORBIDDEN,
            Reason::Denied,
            "access_denied",
            "no connector can allow this step",
        ),
    )
}

#[cfg(test)]
mod tests;
