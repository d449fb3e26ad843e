use super::*;
use serde_json::json;

fn policy(t: &str) -> Result<Policy, ConfigError> {
    #[derive(Deserialize)]
    struct W {
        policy: Vec<GroupConfig>,
    }
    let w: W = toml::from_str(t).unwrap();
    Policy::compile("c.policy", &w.policy)
}

fn claims() -> Value {
    json!({
        "sub": "u1",
        "roles": ["Admin", "reader"],
        "scope": "orders:read orders:write",
        "level": 3,
        "verified": true,
        "org": {"tier": "Gold", "teams": [{"name": "core"}, {"name": "edge"}]},
        "Groups": "Group1, Group3"
    })
}

#[test]
fn equals_on_strings_numbers_booleans_and_arrays() {
    let c = claims();
    assert!(policy(
        "[[policy]]\nany = [{ claim = \"sub\", op = \"equals\", values = [\"u1\", \"u2\"] }]"
    )
    .unwrap()
    .evaluate(&c)
    .is_ok());
    assert!(
        policy("[[policy]]\nany = [{ claim = \"sub\", op = \"equals\", values = [\"u2\"] }]")
            .unwrap()
            .evaluate(&c)
            .is_err()
    );
    assert!(
        policy("[[policy]]\nany = [{ claim = \"level\", op = \"equals\", values = [3] }]")
            .unwrap()
            .evaluate(&c)
            .is_ok()
    );
    assert!(
        policy("[[policy]]\nany = [{ claim = \"level\", op = \"equals\", values = [\"3\"] }]")
            .unwrap()
            .evaluate(&c)
            .is_ok()
    );
    assert!(policy(
        "[[policy]]\nany = [{ claim = \"verified\", op = \"equals\", values = [true] }]"
    )
    .unwrap()
    .evaluate(&c)
    .is_ok());
    assert!(policy(
        "[[policy]]\nany = [{ claim = \"verified\", op = \"equals\", values = [false] }]"
    )
    .unwrap()
    .evaluate(&c)
    .is_err());
    assert!(policy(
        "[[policy]]\nany = [{ claim = \"roles\", op = \"equals\", values = [\"reader\"] }]"
    )
    .unwrap()
    .evaluate(&c)
    .is_ok());
}

#[test]
fn case_sensitivity() {
    let c = claims();
    assert!(policy(
        "[[policy]]\nany = [{ claim = \"$.org.tier\", op = \"equals\", values = [\"gold\"] }]"
    )
    .unwrap()
    .evaluate(&c)
    .is_err());
    assert!(policy("[[policy]]\nany = [{ claim = \"$.org.tier\", op = \"equals\", values = [\"gold\"], case_sensitive = false }]").unwrap().evaluate(&c).is_ok());
    assert!(policy("[[policy]]\nany = [{ claim = \"roles\", op = \"contains_any\", values = [\"admin\"], case_sensitive = false }]").unwrap().evaluate(&c).is_ok());
    assert!(policy(
        "[[policy]]\nany = [{ claim = \"roles\", op = \"contains_any\", values = [\"admin\"] }]"
    )
    .unwrap()
    .evaluate(&c)
    .is_err());
}

#[test]
fn contains_on_arrays_and_scope_strings() {
    let c = claims();
    let p = |t: &str| {
        policy(&format!("[[policy]]\nany = [{t}]"))
            .unwrap()
            .evaluate(&c)
    };
    assert!(
        p("{ claim = \"roles\", op = \"contains_any\", values = [\"Writer\", \"Admin\"] }").is_ok()
    );
    assert!(
        p("{ claim = \"roles\", op = \"contains_all\", values = [\"Admin\", \"reader\"] }").is_ok()
    );
    assert!(
        p("{ claim = \"roles\", op = \"contains_all\", values = [\"Admin\", \"writer\"] }")
            .is_err()
    );
    assert!(p("{ claim = \"scope\", op = \"contains_all\", values = [\"orders:write\", \"orders:read\"] }").is_ok());
    assert!(
        p("{ claim = \"scope\", op = \"contains_any\", values = [\"orders:delete\"] }").is_err()
    );
    // The original's comma lists: "Group1, Group3".
    assert!(
        p("{ claim = \"Groups\", op = \"contains_any\", values = [\"Group2\", \"Group3\"] }")
            .is_ok()
    );
    // Absent claim never satisfies contains_all.
    assert!(p("{ claim = \"nope\", op = \"contains_all\", values = [\"x\"] }").is_err());
    // Nested paths through arrays.
    assert!(
        p("{ claim = \"$.org.teams[*].name\", op = \"contains_any\", values = [\"edge\"] }")
            .is_ok()
    );
}

#[test]
fn matches_and_exists() {
    let c = claims();
    let p = |t: &str| {
        policy(&format!("[[policy]]\nany = [{t}]"))
            .unwrap()
            .evaluate(&c)
    };
    assert!(p("{ claim = \"$.roles[?@ == 'Admin']\", op = \"matches\" }").is_ok());
    assert!(p("{ claim = \"$.org.teams[?@.name == 'ops']\", op = \"matches\" }").is_err());
    assert!(p("{ claim = \"$.level\", op = \"matches\" }").is_ok());
    assert!(p("{ claim = \"sub\", op = \"exists\" }").is_ok());
    assert!(p("{ claim = \"$.org.missing\", op = \"exists\" }").is_err());
}

#[test]
fn and_of_or_groups() {
    let c = claims();
    // (roles has writer || scope has orders:read) && tier == Gold
    let p = policy(
        "[[policy]]\nany = [{ claim = \"roles\", op = \"contains_any\", values = [\"writer\"] }, { claim = \"scope\", op = \"contains_any\", values = [\"orders:read\"] }]\n\
         [[policy]]\nany = [{ claim = \"$.org.tier\", op = \"equals\", values = [\"Gold\"] }]",
    )
    .unwrap();
    assert!(p.evaluate(&c).is_ok());
    let p = policy(
        "[[policy]]\nany = [{ claim = \"sub\", op = \"exists\" }]\n[[policy]]\nany = [{ claim = \"$.org.tier\", op = \"equals\", values = [\"Silver\"] }]",
    )
    .unwrap();
    let f = p.evaluate(&c).unwrap_err();
    assert_eq!(f.group, 2);
    assert!(
        f.description.contains("$.org.tier") && !f.description.contains("Gold"),
        "names the claim, not its value"
    );
}

#[test]
fn deny_effect() {
    let c = claims();
    // A matching deny refuses even if an allow in the same group matched.
    let p = policy("[[policy]]\nany = [{ claim = \"sub\", op = \"exists\" }, { claim = \"roles\", op = \"contains_any\", values = [\"reader\"], effect = \"deny\" }]").unwrap();
    assert_eq!(p.evaluate(&c).unwrap_err().deny_rule, Some(2));
    // A deny-only group passes when nothing matches.
    let p = policy("[[policy]]\nany = [{ claim = \"roles\", op = \"contains_any\", values = [\"banned\"], effect = \"deny\" }]").unwrap();
    assert!(p.evaluate(&c).is_ok());
}

#[test]
fn config_errors() {
    let e = policy("[[policy]]\nany = [{ claim = \"sub\", op = \"equals\" }]").unwrap_err();
    assert_eq!(e.path, "c.policy[0].any[0].values");
    let e = policy("[[policy]]\nany = [{ claim = \"sub\", op = \"matches\" }]").unwrap_err();
    assert_eq!(e.path, "c.policy[0].any[0].claim");
    let e = policy("[[policy]]\nany = [{ claim = \"$[\", op = \"exists\" }]").unwrap_err();
    assert_eq!(e.path, "c.policy[0].any[0].claim");
    let e = policy("[[policy]]\nany = []").unwrap_err();
    assert_eq!(e.path, "c.policy[0].any");
    let e = policy("[[policy]]\nany = [{ claim = \"a\", op = \"equals\", values = [[1]] }]")
        .unwrap_err();
    assert_eq!(e.path, "c.policy[0].any[0].values[0]");
}

#[test]
fn case_insensitive_matching_folds_ascii_only() {
    let rule = |claim: &str, op: &str, value: &str| {
        policy(&format!(
            "[[policy]]\nany = [{{ claim = \"{claim}\", op = \"{op}\", values = [\"{value}\"], case_sensitive = false }}]"
        ))
        .unwrap()
    };
    // U+212A KELVIN SIGN lowercases to `k`; U+017F LATIN SMALL LETTER LONG S
    // uppercases to `S`. Neither may stand for the ASCII letter.
    let doc =
        json!({"role": "\u{212A}ing", "team": "\u{017F}ecurity", "scope": "read\u{2003}admin"});
    assert!(rule("role", "equals", "king").evaluate(&doc).is_err());
    assert!(rule("role", "equals", "KING").evaluate(&doc).is_err());
    assert!(rule("team", "equals", "security").evaluate(&doc).is_err());
    assert!(rule("team", "contains_any", "SECURITY")
        .evaluate(&doc)
        .is_err());
    // The claim's own spelling still matches, and ASCII case still folds.
    assert!(rule("role", "equals", "\u{212A}ING").evaluate(&doc).is_ok());
    assert!(rule("team", "equals", "\u{017F}ECURITY")
        .evaluate(&doc)
        .is_ok());
    let doc = json!({"role": "King"});
    assert!(rule("role", "equals", "kING").evaluate(&doc).is_ok());
    let doc = json!({"role": "king"});
    assert!(rule("role", "equals", "\u{212A}ing")
        .evaluate(&doc)
        .is_err());
    // Strings split into words on ASCII whitespace and commas only.
    let doc = json!({"scope": "read\u{2003}admin"});
    assert!(rule("scope", "contains_any", "admin")
        .evaluate(&doc)
        .is_err());
}

#[test]
fn an_array_element_with_a_comma_is_one_element_for_the_policy_and_the_upstream() {
    // Issue 21: `roles: ["desk", "x,admin"]` — the upstream reads the header
    // `desk,x%2Cadmin` (elements `desk` and `x,admin`); so does the policy.
    let doc = json!({"roles": ["desk", "x,admin"]});
    for op in ["contains_any", "equals"] {
        let admin = policy(&format!(
            "[[policy]]\nany = [{{ claim = \"roles\", op = \"{op}\", values = [\"admin\"] }}]"
        ))
        .unwrap();
        assert!(admin.evaluate(&doc).is_err(), "{op}: admin is no element");
        let whole = policy(&format!(
            "[[policy]]\nany = [{{ claim = \"roles\", op = \"{op}\", values = [\"x,admin\"] }}]"
        ))
        .unwrap();
        assert!(whole.evaluate(&doc).is_ok(), "{op}: x,admin is one element");
    }
    let rendered = crate::claims::render(&doc["roles"]).unwrap();
    let upstream: Vec<String> = rendered
        .split(',')
        .map(|e| e.replace("%2C", ",").replace("%25", "%"))
        .collect();
    assert_eq!(upstream, ["desk", "x,admin"]);
}
