//! `inject_render`: identity-header rendering (`inject::Injector::apply`,
//! `claims::render`) and claim policies (`policy::Policy::evaluate`) over an
//! arbitrary JSON document (input that is not JSON is skipped).
//!
//! The injector is compiled once from a fixed table: member names, JSONPaths
//! (child, wildcard, descendant, index, slice, filter, quoted member) and a
//! `required` mapping.
//!
//! Asserts: no panic; every injected value is the rendering of the first value
//! its path finds and never contains CR, LF or NUL; a value refused as invalid
//! really is not a clean header value; a missing `required` claim is reported
//! only when its path finds nothing rendered.

#![no_main]

use gatehouse_connectors::claims::render;
use gatehouse_connectors::inject::{InjectConfig, InjectError, Injector};
use gatehouse_connectors::policy::{GroupConfig, Policy};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::sync::LazyLock;

const TABLE: &str = r#"
"X-User-Id" = "sub"
"X-Dotted" = "a.b"
"X-Region" = "$.org.region"
"X-Roles" = "$.roles"
"X-All-Roles" = "$.roles[*]"
"X-Any-Name" = "$..name"
"X-Second" = "$.list[1]"
"X-Last" = "$.list[-1]"
"X-Slice" = "$.list[1:3]"
"X-Admin-Id" = "$.users[?@.admin == true].id"
"X-Quoted" = "$['x-y']['z w']"
"X-Root" = "$"
"X-Tenant" = { claim = "tenant", required = true }
"#;

const POLICY: &str = r#"
[[policy]]
any = [
  { claim = "roles", op = "contains_any", values = ["admin", "writer"] },
  { claim = "scope", op = "contains_all", values = ["orders:read", "orders:write"] },
  { claim = "$.org.tier", op = "equals", values = ["gold", 1, true], case_sensitive = false },
]
[[policy]]
any = [
  { claim = "$.groups[?@ == 'ops']", op = "matches" },
  { claim = "email", op = "exists" },
  { claim = "$..banned", op = "exists", effect = "deny" },
]
"#;

#[derive(serde::Deserialize)]
struct PolicyDoc {
    policy: Vec<GroupConfig>,
}

static FIX: LazyLock<(Injector, Policy)> = LazyLock::new(|| {
    let cfg: InjectConfig = toml::from_str(TABLE).expect("fixture inject table");
    let injector = Injector::compile("fuzz.inject_headers", &cfg).expect("fixture injector");
    let doc: PolicyDoc = toml::from_str(POLICY).expect("fixture policy");
    let policy = Policy::compile("fuzz.policy", &doc.policy).expect("fixture policy compiles");
    (injector, policy)
});

fn clean(text: &str) -> bool {
    http::HeaderValue::from_bytes(text.as_bytes()).is_ok()
        && !text.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0))
}

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let (injector, policy) = &*FIX;
    let _ = policy.evaluate(&doc);
    let _ = render(&doc);
    match injector.apply(&doc) {
        Ok(values) => {
            for (name, value) in &values {
                let bytes = value.as_bytes();
                assert!(
                    !bytes.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)),
                    "{name}: CR/LF/NUL in {bytes:?}"
                );
                let rule = injector
                    .rules()
                    .iter()
                    .find(|r| &r.header == name)
                    .expect("a rule per header");
                let expected = rule.source.first(&doc).and_then(render);
                assert_eq!(
                    expected.as_deref().map(str::as_bytes),
                    Some(bytes),
                    "{name}: not the rendering of the first value"
                );
            }
            for rule in injector.rules() {
                let rendered = rule.source.first(&doc).and_then(render);
                assert_eq!(
                    rendered.is_some(),
                    values.iter().any(|(n, _)| *n == rule.header),
                    "{}: rendered value and injected header disagree",
                    rule.header
                );
            }
        }
        Err(InjectError::InvalidValue(header)) => {
            let rule = injector
                .rules()
                .iter()
                .find(|r| r.header.as_str() == header)
                .expect("named rule");
            let rendered = rule
                .source
                .first(&doc)
                .and_then(render)
                .expect("refused value was rendered");
            assert!(
                !clean(&rendered),
                "{header}: clean value {rendered:?} refused"
            );
        }
        Err(InjectError::Missing(path)) => {
            let rule = injector
                .rules()
                .iter()
                .find(|r| r.source.as_str() == path)
                .expect("named rule");
            assert!(rule.required);
            assert!(
                rule.source.first(&doc).and_then(render).is_none(),
                "{path}: present but reported missing"
            );
        }
    }
});
