//! A route's `connectors`: an AND of steps, where a step is one connector or
//! an any-of group.
//!
//! ```toml
//! connectors = [{ any = ["corp_jwt", "partner_jwt"] }, "geo_userinfo"]
//! ```

use crate::ConfigError;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// One step of a route's connector chain.
#[derive(Debug, Clone, PartialEq, Eq, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Step {
    /// One connector, which must allow.
    One(String),
    /// An any-of group: members are tried in order and the first that allows
    /// wins; when none does, the most specific refusal answers.
    Any {
        /// The members, in the order they are tried.
        any: Vec<String>,
    },
}

impl Step {
    /// The connector names of this step, in order.
    pub fn members(&self) -> &[String] {
        match self {
            Step::One(n) => std::slice::from_ref(n),
            Step::Any { any } => any,
        }
    }

    /// True for an any-of group.
    pub fn is_group(&self) -> bool {
        matches!(self, Step::Any { .. })
    }
}

impl fmt::Display for Step {
    /// `corp` or `any(corp | partner)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::One(n) => f.write_str(n),
            Step::Any { any } => write!(f, "any({})", any.join(" | ")),
        }
    }
}

impl From<&str> for Step {
    fn from(name: &str) -> Self {
        Step::One(name.to_string())
    }
}

const EXPECTING: &str = "a connector name or an any-of group { any = [\"a\", \"b\"] }";

impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Step;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(EXPECTING)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Step, E> {
                Ok(Step::One(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Step, A::Error> {
                let mut any: Option<Vec<String>> = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "any" {
                        return Err(de::Error::custom(format!(
                            "unknown key `{key}` in a step: expected {EXPECTING}"
                        )));
                    }
                    if any.is_some() {
                        return Err(de::Error::duplicate_field("any"));
                    }
                    any = Some(map.next_value::<Names>()?.0);
                }
                any.map(|any| Step::Any { any })
                    .ok_or_else(|| de::Error::custom(format!("expected {EXPECTING}")))
            }
        }
        d.deserialize_any(V)
    }
}

/// A list of connector names (with a message that says so).
struct Names(Vec<String>);

impl<'de> Deserialize<'de> for Names {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Names;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of connector names")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Names, A::Error> {
                let mut v = Vec::new();
                while let Some(n) = seq.next_element::<String>()? {
                    v.push(n);
                }
                Ok(Names(v))
            }
        }
        d.deserialize_seq(V)
    }
}

/// Checks a route's steps: every name refers to a connector, no connector
/// appears twice in the route, no group is empty. `p` is the route's path
/// (`routes[3]`).
pub(crate) fn validate<T>(
    p: &str,
    steps: &[Step],
    connectors: &BTreeMap<String, T>,
    errs: &mut Vec<ConfigError>,
) {
    let mut seen: HashMap<&str, String> = HashMap::new();
    for (j, step) in steps.iter().enumerate() {
        if let Step::Any { any } = step {
            if any.is_empty() {
                errs.push(ConfigError::new(
                    format!("{p}.connectors[{j}].any"),
                    "an any-of group needs at least one connector",
                ));
            }
        }
        for (k, c) in step.members().iter().enumerate() {
            let at = match step {
                Step::One(_) => format!("{p}.connectors[{j}]"),
                Step::Any { .. } => format!("{p}.connectors[{j}].any[{k}]"),
            };
            if !connectors.contains_key(c) {
                errs.push(ConfigError::new(
                    at,
                    format!(
                        "no connector named \"{c}\" (known: {})",
                        crate::known(connectors.keys())
                    ),
                ));
            } else if let Some(first) = seen.get(c.as_str()) {
                errs.push(ConfigError::new(
                    at,
                    format!("connector \"{c}\" is listed twice (also at {first})"),
                ));
            } else {
                seen.insert(c, at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(Deserialize)]
    struct R {
        connectors: Vec<Step>,
    }

    #[test]
    fn parses_names_and_groups() {
        let r: R = toml::from_str(r#"connectors = [{ any = ["a", "b"] }, "c"]"#).unwrap();
        assert_eq!(
            r.connectors,
            vec![
                Step::Any {
                    any: vec!["a".into(), "b".into()]
                },
                Step::One("c".into())
            ]
        );
        assert_eq!(r.connectors[0].to_string(), "any(a | b)");
        assert_eq!(r.connectors[1].members(), ["c".to_string()]);
    }

    #[test]
    fn refuses_other_shapes() {
        for bad in [
            r#"connectors = [{ all = ["a"] }]"#,
            r#"connectors = [{ any = "a" }]"#,
            r#"connectors = [{ any = [1] }]"#,
            r#"connectors = [3]"#,
            r#"connectors = [{}]"#,
            r#"connectors = [{ any = ["a"], x = 1 }]"#,
        ] {
            let e = toml::from_str::<R>(bad).err().map(|e| e.to_string());
            assert!(e.is_some(), "{bad} was accepted");
        }
    }

    #[test]
    fn validation_paths() {
        let known: BTreeMap<String, ()> = [("a".to_string(), ()), ("b".to_string(), ())].into();
        let mut errs = Vec::new();
        let steps = vec![
            Step::Any {
                any: vec!["a".into(), "x".into()],
            },
            Step::One("a".into()),
            Step::Any { any: vec![] },
        ];
        validate("routes[0]", &steps, &known, &mut errs);
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "routes[0].connectors[0].any[1]",
                "routes[0].connectors[1]",
                "routes[0].connectors[2].any"
            ],
            "{errs:?}"
        );
        assert!(errs[1].message.contains("listed twice"), "{errs:?}");
    }
}
