//! Running a route's steps in order: every step must allow; a step is one
//! connector or an any-of group whose first allowing member wins.

use crate::errors::{Failure, FailureClass};
use crate::{Connector, Denial, HeaderEdits, Reason, Rejection, RequestView, Verdict};
use http::StatusCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One step of a chain: its members, in order (one for a plain step).
#[derive(Clone)]
pub struct Step {
    /// The members. A step with more than one member is an any-of group.
    pub members: Vec<Arc<dyn Connector>>,
}

impl Step {
    /// A step of one connector.
    pub fn one(c: Arc<dyn Connector>) -> Self {
        Self { members: vec![c] }
    }

    /// An any-of group.
    pub fn any(members: Vec<Arc<dyn Connector>>) -> Self {
        Self { members }
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
/// In a group, members run in order until one allows; only that member's
/// edits apply. Before a member of a group of two or more runs, its
/// [`Connector::precheck`] may refuse cheaply. When no member allows, the
/// refusal with the highest [`Reason::specificity`] answers (the earliest on
/// a tie).
pub async fn run_chain<F>(steps: &[Step], req: &RequestView<'_>, mut observe: F) -> ChainOutcome
where
    F: FnMut(usize, usize, bool, Duration),
{
    let mut edits = HeaderEdits::none();
    'steps: for (s, step) in steps.iter().enumerate() {
        let group = step.members.len() > 1;
        let mut best: Option<(usize, Refusal)> = None;
        for (m, c) in step.members.iter().enumerate() {
            let start = Instant::now();
            let refusal = match group.then(|| c.precheck(req)).flatten() {
                Some(f) => Refusal::Skipped(f),
                None => match c.check(req).await {
                    Verdict::Allow(e) => {
                        observe(s, m, true, start.elapsed());
                        edits.merge(e);
                        continue 'steps;
                    }
                    Verdict::Deny(d) => Refusal::Denied(d),
                },
            };
            observe(s, m, false, start.elapsed());
            if best
                .as_ref()
                .is_none_or(|(_, b)| refusal.reason().specificity() > b.reason().specificity())
            {
                best = Some((m, refusal));
            }
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
    ChainOutcome::Allow(edits)
}

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
