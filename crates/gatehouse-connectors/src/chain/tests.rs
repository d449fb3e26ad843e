#![allow(clippy::unwrap_used)]
use super::*;
use async_trait::async_trait;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A connector that allows (setting its header) or refuses with `reason`;
/// `skip` makes its precheck refuse with `issuer_not_allowed`.
struct Fake {
    name: &'static str,
    deny: Option<Reason>,
    skip: bool,
    calls: AtomicUsize,
    prechecks: AtomicUsize,
}

fn refusal(reason: Reason, who: &str) -> Denial {
    Denial::new(
        Failure::new(reason, FailureClass::InvalidToken, "", who.to_string()),
        Rejection::json(StatusCode::UNAUTHORIZED, reason, "invalid_token", who),
    )
}

#[async_trait]
impl Connector for Fake {
    fn name(&self) -> &str {
        self.name
    }
    fn kind(&self) -> &str {
        "test"
    }
    fn precheck(&self, _req: &RequestView<'_>) -> Option<Failure> {
        self.prechecks.fetch_add(1, Ordering::SeqCst);
        self.skip
            .then(|| refusal(Reason::IssuerNotAllowed, self.name).failure)
    }
    fn refuse(&self, f: Failure, _req: &RequestView<'_>) -> Denial {
        refusal(f.reason, self.name)
    }
    async fn check(&self, _req: &RequestView<'_>) -> Verdict {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match self.deny {
            Some(r) => Verdict::Deny(refusal(r, self.name)),
            None => Verdict::Allow(HeaderEdits {
                set: vec![(
                    HeaderName::from_static(self.name),
                    HeaderValue::from_static("yes"),
                )],
                ..Default::default()
            }),
        }
    }
}

fn fake(name: &'static str, deny: Option<Reason>, skip: bool) -> Arc<Fake> {
    Arc::new(Fake {
        name,
        deny,
        skip,
        calls: AtomicUsize::new(0),
        prechecks: AtomicUsize::new(0),
    })
}

fn allow(name: &'static str) -> Arc<Fake> {
    fake(name, None, false)
}

fn deny(name: &'static str, r: Reason) -> Arc<Fake> {
    fake(name, Some(r), false)
}

fn one(c: &Arc<Fake>) -> Step {
    Step::one(c.clone())
}

fn any(cs: &[&Arc<Fake>]) -> Step {
    Step::any(
        cs.iter()
            .map(|c| (*c).clone() as Arc<dyn Connector>)
            .collect(),
    )
}

async fn run(steps: &[Step]) -> (ChainOutcome, Vec<(usize, usize, bool)>) {
    let (m, u, h) = (Method::GET, Uri::from_static("/x"), HeaderMap::new());
    let req = RequestView {
        method: &m,
        uri: &u,
        headers: &h,
        client: None,
        request_id: "r1",
        peer_cert: None,
        verified: None,
    };
    let mut seen = vec![];
    let out = run_chain(steps, &req, |s, m, ok, _| seen.push((s, m, ok))).await;
    (out, seen)
}

fn set_names(o: &ChainOutcome) -> Vec<String> {
    match o {
        ChainOutcome::Allow(e) => e.set.iter().map(|(n, _)| n.to_string()).collect(),
        other => panic!("expected allow, got {other:?}"),
    }
}

fn denied(o: ChainOutcome) -> (usize, usize, Denial) {
    match o {
        ChainOutcome::Deny {
            step,
            member,
            denial,
        } => (step, member, denial),
        other => panic!("expected deny, got {other:?}"),
    }
}

#[tokio::test]
async fn all_allow_merges_edits_in_order() {
    let (a, b) = (allow("x-a"), allow("x-b"));
    let (out, seen) = run(&[one(&a), one(&b)]).await;
    assert_eq!(set_names(&out), ["x-a", "x-b"]);
    assert_eq!(seen, [(0, 0, true), (1, 0, true)]);
}

#[tokio::test]
async fn first_deny_stops_the_chain() {
    let (a, b, c) = (
        allow("x-a"),
        deny("x-b", Reason::PolicyDenied),
        allow("x-c"),
    );
    let (out, _) = run(&[one(&a), one(&b), one(&c)]).await;
    let (step, member, d) = denied(out);
    assert_eq!((step, member), (1, 0));
    assert_eq!(d.rejection.status, StatusCode::UNAUTHORIZED);
    assert_eq!(c.calls.load(Ordering::SeqCst), 0, "a step after a deny ran");
}

#[tokio::test]
async fn empty_chain_allows() {
    let (out, _) = run(&[]).await;
    assert!(matches!(out, ChainOutcome::Allow(e) if e.is_empty()));
}

#[tokio::test]
async fn a_plain_step_is_never_prechecked() {
    let a = fake("x-a", None, true);
    let (out, _) = run(&[one(&a)]).await;
    assert_eq!(set_names(&out), ["x-a"]);
    assert_eq!(a.prechecks.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn first_allowing_member_wins_and_only_its_edits_apply() {
    let (a, b, c) = (
        deny("x-a", Reason::BadSignature),
        allow("x-b"),
        allow("x-c"),
    );
    let tail = allow("x-t");
    let (out, seen) = run(&[any(&[&a, &b, &c]), one(&tail)]).await;
    assert_eq!(set_names(&out), ["x-b", "x-t"]);
    assert_eq!(
        c.calls.load(Ordering::SeqCst),
        0,
        "member after the winner ran"
    );
    assert_eq!(seen, [(0, 0, false), (0, 1, true), (1, 0, true)]);
}

#[tokio::test]
async fn a_skipping_member_is_not_checked() {
    let (a, b) = (fake("x-a", None, true), allow("x-b"));
    let (out, _) = run(&[any(&[&a, &b])]).await;
    assert_eq!(set_names(&out), ["x-b"]);
    assert_eq!(
        a.calls.load(Ordering::SeqCst),
        0,
        "skipped member was checked"
    );
    assert_eq!(a.prechecks.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_most_specific_refusal_answers_whatever_the_order() {
    for corp_first in [true, false] {
        let corp = deny("corp", Reason::BadSignature);
        let partner = fake("partner", None, true); // another issuer: skipped
        let group = if corp_first {
            any(&[&corp, &partner])
        } else {
            any(&[&partner, &corp])
        };
        let (step, member, d) = denied(run(&[group]).await.0);
        assert_eq!(step, 0);
        assert_eq!(d.reason(), Reason::BadSignature, "corp first: {corp_first}");
        assert_eq!(d.failure.description, "corp");
        assert_eq!(member, usize::from(!corp_first));
    }
}

#[tokio::test]
async fn ties_go_to_the_earlier_member_and_later_steps_do_not_run() {
    let (a, b) = (
        deny("a", Reason::MissingToken),
        deny("b", Reason::MissingToken),
    );
    let tail = allow("x-t");
    let (step, member, d) = denied(run(&[any(&[&a, &b]), one(&tail)]).await.0);
    assert_eq!((step, member, d.failure.description.as_str()), (0, 0, "a"));
    assert_eq!(tail.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn verified_token_refusals_outrank_signature_and_availability() {
    let order = [
        Reason::MissingToken,
        Reason::UnknownKey,
        Reason::KeysUnavailable,
        Reason::BadSignature,
        Reason::Expired,
    ];
    for w in order.windows(2) {
        assert!(w[0].specificity() < w[1].specificity(), "{w:?}");
    }
    let (a, b, c) = (
        deny("a", Reason::KeysUnavailable),
        deny("b", Reason::PolicyDenied),
        deny("c", Reason::UnknownKey),
    );
    let (_, member, d) = denied(run(&[any(&[&a, &b, &c])]).await.0);
    assert_eq!((member, d.reason()), (1, Reason::PolicyDenied));
}

#[tokio::test]
async fn an_empty_group_fails_closed() {
    let (out, _) = run(&[Step::any(vec![])]).await;
    let (_, _, d) = denied(out);
    assert_eq!(d.rejection.status, StatusCode::FORBIDDEN);
}

/// A member that reads its token from `sources` and allows any token it
/// finds (setting its name as a header), refusing `missing_token` otherwise.
struct Reader {
    name: &'static str,
    sources: Vec<TokenSource>,
    forward: bool,
    calls: AtomicUsize,
}

#[async_trait]
impl Connector for Reader {
    fn name(&self) -> &str {
        self.name
    }
    fn kind(&self) -> &str {
        "test"
    }
    fn token_sources(&self) -> &[TokenSource] {
        &self.sources
    }
    fn forwards_token(&self) -> bool {
        self.forward
    }
    async fn check(&self, req: &RequestView<'_>) -> Verdict {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match crate::token::find_token(&self.sources, req) {
            Intake::Found(_, i) => {
                let mut e = crate::token::carrier_edits(&self.sources[i], req, self.forward);
                e.set.push((
                    HeaderName::from_static(self.name),
                    HeaderValue::from_static("yes"),
                ));
                Verdict::Allow(e)
            }
            _ => Verdict::Deny(refusal(Reason::MissingToken, self.name)),
        }
    }
}

fn reader(name: &'static str, source: &str, forward: bool) -> Arc<Reader> {
    let cfg: crate::token::TokenSourceConfig = toml::from_str(source).unwrap();
    Arc::new(Reader {
        name,
        sources: TokenSource::compile_all("t", &[cfg]).unwrap(),
        forward,
        calls: AtomicUsize::new(0),
    })
}

async fn run_with(steps: &[Step], uri: &'static str, pairs: &[(&str, &str)]) -> ChainOutcome {
    let (m, u) = (Method::GET, Uri::from_static(uri));
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let req = RequestView {
        method: &m,
        uri: &u,
        headers: &h,
        client: None,
        request_id: "r1",
        peer_cert: None,
        verified: None,
    };
    run_chain(steps, &req, |_, _, _, _| {}).await
}

fn group(members: &[&Arc<Reader>]) -> Step {
    Step::any(
        members
            .iter()
            .map(|c| (*c).clone() as Arc<dyn Connector>)
            .collect(),
    )
}

#[tokio::test]
async fn a_token_in_two_members_carriers_is_ambiguous_before_any_member_runs() {
    // Issue 21: `ga` reads a cookie, `gb` the Authorization header.
    let ga = reader("ga", "cookie = \"at\"", true);
    let gb = reader("gb", "header = \"Authorization\"", false);
    let out = run_with(
        &[group(&[&ga, &gb])],
        "/x",
        &[
            ("authorization", "Bearer good"),
            ("cookie", "at=forged-admin"),
        ],
    )
    .await;
    let (step, _, d) = denied(out);
    assert_eq!(step, 0);
    assert_eq!(d.reason(), Reason::AmbiguousToken);
    assert_eq!(d.failure.class, FailureClass::InvalidRequest);
    assert_eq!(
        ga.calls.load(Ordering::SeqCst) + gb.calls.load(Ordering::SeqCst),
        0,
        "a member ran"
    );
    // The cookie alone, or the header alone, is one carrier.
    for pairs in [
        &[("cookie", "at=good; theme=dark")][..],
        &[("authorization", "Bearer good"), ("cookie", "theme=dark")][..],
    ] {
        assert!(
            matches!(
                run_with(&[group(&[&ga, &gb])], "/x", pairs).await,
                ChainOutcome::Allow(_)
            ),
            "{pairs:?}"
        );
    }
}

#[tokio::test]
async fn the_carriers_of_members_that_did_not_allow_are_stripped_by_their_rule() {
    let ga = reader("ga", "cookie = \"at\"", true);
    let gb = reader("gb", "header = \"Authorization\"", false);
    // `ga` allows on its cookie; `gb` does not forward Authorization, so a
    // credential there (not a bearer token: no second carrier) goes too.
    let out = run_with(
        &[group(&[&gb, &ga])],
        "/x",
        &[("authorization", "Basic Zm9yZ2Vk"), ("cookie", "at=good")],
    )
    .await;
    let ChainOutcome::Allow(e) = out else {
        panic!("{out:?}")
    };
    assert!(e.remove.contains(&http::header::AUTHORIZATION), "{e:?}");
    assert!(
        !e.remove.contains(&http::header::COOKIE) && !e.set.iter().any(|(n, _)| n == "cookie"),
        "ga forwards its cookie: {e:?}"
    );
    // The other way round: `gb` allows; `ga` forwards its carrier, so its
    // cookie (absent here) is not touched; a non-forwarding cookie member's
    // is removed.
    let gc = reader("gc", "cookie = \"sid\"", false);
    let out = run_with(
        &[group(&[&gc, &gb])],
        "/x",
        &[
            ("authorization", "Bearer good"),
            ("cookie", "theme=dark; sid="),
        ],
    )
    .await;
    // `sid=` is malformed: two carriers.
    assert!(matches!(out, ChainOutcome::Deny { .. }), "{out:?}");
    let out = run_with(
        &[group(&[&gc, &gb])],
        "/x",
        &[("authorization", "Bearer good"), ("cookie", "theme=dark")],
    )
    .await;
    let ChainOutcome::Allow(e) = out else {
        panic!("{out:?}")
    };
    assert!(e.remove.contains(&http::header::AUTHORIZATION));
    assert_eq!(
        e.set
            .iter()
            .find(|(n, _)| n == "cookie")
            .map(|(_, v)| v.clone()),
        Some(HeaderValue::from_static("theme=dark"))
    );
}

#[tokio::test]
async fn the_rfc6750_query_token_never_reaches_the_upstream_of_a_protected_route() {
    let gb = reader("gb", "header = \"Authorization\"", true);
    let out = run_with(
        &[Step::one(gb.clone())],
        "/x?a=1&access_token=forged&ACCESS.TOKEN=f2",
        &[("authorization", "Bearer good")],
    )
    .await;
    let ChainOutcome::Allow(e) = out else {
        panic!("{out:?}")
    };
    assert_eq!(e.remove_query_params, ["access_token"]);
    let out = run_with(
        &[Step::one(gb)],
        "/x?a=1",
        &[("authorization", "Bearer good")],
    )
    .await;
    let ChainOutcome::Allow(e) = out else {
        panic!("{out:?}")
    };
    assert!(e.remove_query_params.is_empty());
}

#[test]
fn a_group_lists_each_carrier_once() {
    let ga = reader("ga", "cookie = \"at\"", true);
    let gb = reader("gb", "header = \"Authorization\"", false);
    let gc = reader("gc", "header = \"authorization\"", false);
    let g = group(&[&ga, &gb, &gc]);
    assert_eq!(g.carriers().len(), 2);
}

/// `run_chain_traced` with the members named in `left_out` not evaluated:
/// the outcome and what each member said ('a' allowed, 'r' refused, 's'
/// skipped, '-' left out).
async fn traced(steps: &[Step], left_out: &[&str]) -> (ChainOutcome, Vec<(usize, usize, char)>) {
    let (m, u, h) = (Method::GET, Uri::from_static("/x"), HeaderMap::new());
    let req = RequestView {
        method: &m,
        uri: &u,
        headers: &h,
        client: None,
        request_id: "r1",
        peer_cert: None,
        verified: None,
    };
    let mut seen = vec![];
    let out = run_chain_traced(
        steps,
        &req,
        |c| !left_out.contains(&c.name()),
        |s, m, said, _| {
            let c = match said {
                Said::Allowed(_) => 'a',
                Said::Refused(_) => 'r',
                Said::Skipped(_) => 's',
                Said::NotEvaluated => '-',
            };
            seen.push((s, m, c));
        },
    )
    .await;
    (out, seen)
}

#[tokio::test]
async fn members_left_out_pass_their_step_only_when_no_evaluated_member_decides() {
    let (a, b, c) = (
        deny("a", Reason::BadSignature),
        allow("b"),
        deny("c", Reason::Expired),
    );
    // A left-out member ahead of an allowing one: the allow decides.
    let (out, seen) = traced(&[any(&[&a, &b])], &["a"]).await;
    assert_eq!(set_names(&out), vec!["b"]);
    assert_eq!(seen, vec![(0, 0, '-'), (0, 1, 'a')]);
    // Refused by every evaluated member, one left out: the step passes and
    // the next one decides.
    let (out, seen) = traced(&[any(&[&a, &b]), one(&c)], &["b"]).await;
    let (step, _, d) = denied(out);
    assert_eq!((step, d.reason()), (1, Reason::Expired));
    assert_eq!(seen, vec![(0, 0, 'r'), (0, 1, '-'), (1, 0, 'r')]);
    // Nothing left out: exactly run_chain.
    let (out, _) = traced(&[any(&[&a, &c])], &[]).await;
    let (_, member, d) = denied(out);
    assert_eq!((member, d.reason()), (1, Reason::Expired));
}
