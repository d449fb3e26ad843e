//! The hostile requests, as raw bytes. Every request carries `X-Case: <id>`
//! so the upstream's records can be attributed to it (smuggled requests
//! carry `<id>s`).

#[path = "cases/framing.rs"]
mod framing;
#[path = "cases/headers.rs"]
mod headers;
#[path = "cases/targets.rs"]
mod targets;

/// Expected first-response statuses; `0` means "connection closed without a
/// response"; an empty list means "anything but a 5xx" (only the invariants
/// are checked).
pub(crate) type Expect = &'static [u16];

/// Refused by Gatehouse itself.
pub(crate) const BAD: Expect = &[400];
/// Refused by the HTTP parser: a 400 or a closed connection.
pub(crate) const REFUSED: Expect = &[400, 0];
/// Routed to a protected route and denied for lack of a token.
pub(crate) const UNAUTH: Expect = &[401];
/// Either refused or normalised onto a protected route and denied.
pub(crate) const BAD_OR_UNAUTH: Expect = &[400, 401];
/// Proxied (public).
pub(crate) const OK: Expect = &[200];
/// Only the invariants matter (Pingora decides).
pub(crate) const ANY: Expect = &[];
/// A conflicting absolute-form authority and `Host` may also be refused.
pub(crate) const UNAUTH_OR_BAD: Expect = &[400, 401];
/// Public, or refused as conflicting.
pub(crate) const OK_OR_BAD: Expect = &[200, 400];
/// Too large: 400, 413, 414, 431 or a closed connection.
pub(crate) const TOO_LARGE: Expect = &[400, 413, 414, 431, 0];

/// One hostile request.
#[derive(Debug, Clone)]
pub(crate) struct Case {
    /// `c01`, `c02`, ... (also sent as `X-Case`).
    pub id: String,
    /// What it tries.
    pub name: String,
    /// The bytes written on the socket.
    pub bytes: Vec<u8>,
    /// Allowed statuses of the first response.
    pub expect: Expect,
    /// Carries a valid token (may legitimately reach protected resources).
    pub authorized: bool,
    /// Write a sentinel request after the first response and read to EOF
    /// (pipelining and smuggling).
    pub follow_up: bool,
    /// Also sent through Gatehouse → NGINX.
    pub nginx: bool,
    /// Two token carriers (a valid and a forged one): judged by their own test.
    pub carriers: bool,
}

/// Tokens the cases use.
pub(crate) struct Tokens {
    /// Validly signed, accepted by the JWT connector.
    pub valid: String,
    /// `alg: none`, claims `sub: admin`.
    pub forged: String,
}

/// Sentinel written after smuggling attempts: answered last, closes.
pub(crate) fn sentinel() -> Vec<u8> {
    b"GET /public/sentinel HTTP/1.1\r\nHost: public.test\r\nX-Case: sentinel\r\nConnection: close\r\n\r\n"
        .to_vec()
}

struct Builder {
    cases: Vec<Case>,
}

impl Builder {
    fn next_id(&self) -> String {
        format!("c{:02}", self.cases.len() + 1)
    }

    /// A full request: `line`, then `headers` (each without CRLF), then
    /// `X-Case`, `Connection: close` unless `follow_up`, then `body`.
    fn push(
        &mut self,
        name: &str,
        line: &str,
        headers: &[&str],
        body: &str,
        expect: Expect,
    ) -> &mut Case {
        let id = self.next_id();
        let mut s = format!("{line}\r\n");
        for h in headers {
            s.push_str(h);
            s.push_str("\r\n");
        }
        s.push_str(&format!("X-Case: {id}\r\nConnection: close\r\n\r\n{body}"));
        self.cases.push(Case {
            id,
            name: name.to_string(),
            bytes: s.into_bytes(),
            expect,
            authorized: false,
            follow_up: false,
            nginx: false,
            carriers: false,
        });
        self.cases.last_mut().unwrap_or_else(|| unreachable!())
    }

    /// `GET {target}` with `Host: public.test`, tokenless, also via NGINX.
    fn path(&mut self, target: &str, expect: Expect) {
        let line = format!("GET {target} HTTP/1.1");
        let name = format!("path {}", target.escape_debug());
        self.push(&name, &line, &["Host: public.test"], "", expect)
            .nginx = true;
    }

    /// A request with a valid token and a second, forged carrier: 400.
    fn two_carriers(&mut self, name: &str, line: &str, h1: &str, h2: &str) {
        let mut headers = vec!["Host: public.test", h1];
        if !h2.is_empty() {
            headers.push(h2);
        }
        let c = self.push(name, line, &headers, "", BAD);
        c.authorized = true;
        c.carriers = true;
    }

    /// A request whose bytes `make(id)` gives whole (nothing is added).
    fn verbatim(
        &mut self,
        name: &str,
        make: impl Fn(&str) -> String,
        expect: Expect,
        follow_up: bool,
    ) {
        let id = self.next_id();
        self.cases.push(Case {
            name: name.to_string(),
            bytes: make(&id).into_bytes(),
            id,
            expect,
            authorized: false,
            follow_up,
            nginx: false,
            carriers: false,
        });
    }
}

/// Every hostile request (and a few controls that must behave normally).
pub(crate) fn all(t: &Tokens) -> Vec<Case> {
    let mut b = Builder { cases: Vec::new() };
    let bearer = format!("Authorization: Bearer {}", t.valid);
    let forged_bearer = format!("Authorization: Bearer {}", t.forged);

    targets::paths(&mut b, &bearer);
    targets::methods(&mut b);
    targets::authorities(&mut b);
    headers::identities(&mut b, &bearer);
    headers::carriers(&mut b, t, &bearer, &forged_bearer);
    headers::addresses(&mut b);
    framing::upgrades(&mut b);
    framing::smuggling(&mut b);
    framing::oversized(&mut b);
    framing::odd_lines(&mut b, &forged_bearer);
    b.cases
}
