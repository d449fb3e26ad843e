//! Claim policies: an AND of OR-groups of rules over a JSON document (JWT
//! claims or a userinfo answer). The original product's `nonstandard_claims`
//! and API Policy match rules map onto this.
//!
//! ```toml
//! [[connectors.corp.policy]]          # group 1 — any rule may match
//! any = [
//!   { claim = "roles", op = "contains_any", values = ["admin", "writer"] },
//!   { claim = "scope", op = "contains_all", values = ["orders:read", "orders:write"] },
//! ]
//! [[connectors.corp.policy]]          # group 2 — AND-ed with group 1
//! any = [ { claim = "$.org.tier", op = "equals", values = ["gold"], case_sensitive = false } ]
//! ```
//!
//! Semantics: groups are evaluated in order; a request passes when every
//! group passes. A group passes when one of its `allow` rules matches, or
//! when it has only `deny` rules. A matching `deny` rule refuses at once.

use crate::claims::ClaimPath;
use gatehouse_config::ConfigError;
use serde::Deserialize;
use serde_json::Value;

/// A rule operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// The value (or, for arrays, one element) equals one of `values`.
    Equals,
    /// At least one of `values` is present in the value (array elements, or
    /// words of a space/comma separated string).
    ContainsAny,
    /// Every one of `values` is present.
    ContainsAll,
    /// The JSONPath in `claim` (typically a filter) finds a node.
    Matches,
    /// The claim is present (and not `null`).
    Exists,
}

/// A rule's effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Matching satisfies the group.
    #[default]
    Allow,
    /// Matching refuses the request.
    Deny,
}

/// One rule as written in the config.
#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Claim name or JSONPath.
    pub claim: String,
    /// Operation.
    pub op: Op,
    /// Values to compare with (strings, numbers or booleans).
    #[serde(default)]
    #[schemars(with = "Vec<serde_json::Value>")]
    pub values: Vec<toml::Value>,
    /// Compare strings case-sensitively (default true). `false` folds ASCII
    /// letters only (`A`–`Z` = `a`–`z`); other characters must be equal.
    #[serde(default = "yes")]
    pub case_sensitive: bool,
    /// Allow (default) or deny.
    #[serde(default)]
    pub effect: Effect,
}

fn yes() -> bool {
    true
}

/// One OR-group as written in the config.
#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// Rules, any of which may satisfy the group.
    pub any: Vec<RuleConfig>,
}

#[derive(Debug, Clone)]
struct Rule {
    claim: ClaimPath,
    op: Op,
    values: Vec<Value>,
    case_sensitive: bool,
    effect: Effect,
}

/// A compiled policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    groups: Vec<Vec<Rule>>,
}

/// Why a policy refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFailure {
    /// 1-based group number.
    pub group: usize,
    /// 1-based rule number inside the group, for a deny rule that matched.
    pub deny_rule: Option<usize>,
    /// Human description (names the claim, never its value).
    pub description: String,
}

fn to_json(path: &str, v: &toml::Value) -> Result<Value, ConfigError> {
    match v {
        toml::Value::String(s) => Ok(Value::String(s.clone())),
        toml::Value::Integer(i) => Ok(Value::from(*i)),
        toml::Value::Float(f) => Ok(Value::from(*f)),
        toml::Value::Boolean(b) => Ok(Value::Bool(*b)),
        other => Err(ConfigError::new(
            path,
            format!(
                "values must be strings, numbers or booleans, found {}",
                other.type_str()
            ),
        )),
    }
}

impl Policy {
    /// Compiles the `policy` array found at `path`.
    pub fn compile(path: &str, groups: &[GroupConfig]) -> Result<Self, ConfigError> {
        let mut out = Vec::with_capacity(groups.len());
        for (gi, g) in groups.iter().enumerate() {
            let gp = format!("{path}[{gi}].any");
            if g.any.is_empty() {
                return Err(ConfigError::new(gp, "a group needs at least one rule"));
            }
            let mut rules = Vec::with_capacity(g.any.len());
            for (ri, r) in g.any.iter().enumerate() {
                let rp = format!("{gp}[{ri}]");
                let claim = ClaimPath::parse(&format!("{rp}.claim"), &r.claim)?;
                let values = r
                    .values
                    .iter()
                    .enumerate()
                    .map(|(vi, v)| to_json(&format!("{rp}.values[{vi}]"), v))
                    .collect::<Result<Vec<_>, _>>()?;
                match r.op {
                    Op::Equals | Op::ContainsAny | Op::ContainsAll if values.is_empty() => {
                        return Err(ConfigError::new(
                            format!("{rp}.values"),
                            "this operation needs at least one value",
                        ));
                    }
                    Op::Matches if !matches!(claim, ClaimPath::Path(..)) => {
                        return Err(ConfigError::new(format!("{rp}.claim"), "`matches` needs a JSONPath (starting with $), e.g. \"$.groups[?@ == 'admin']\""));
                    }
                    Op::Matches | Op::Exists if !values.is_empty() => {
                        return Err(ConfigError::new(
                            format!("{rp}.values"),
                            "this operation takes no values",
                        ));
                    }
                    _ => {}
                }
                rules.push(Rule {
                    claim,
                    op: r.op,
                    values,
                    case_sensitive: r.case_sensitive,
                    effect: r.effect,
                });
            }
            out.push(rules);
        }
        Ok(Self { groups: out })
    }

    /// True when there are no groups (everything passes).
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Evaluates the policy over `doc`.
    pub fn evaluate(&self, doc: &Value) -> Result<(), PolicyFailure> {
        for (gi, group) in self.groups.iter().enumerate() {
            let mut has_allow = false;
            let mut allowed = false;
            for (ri, rule) in group.iter().enumerate() {
                let hit = rule.matches(doc);
                match rule.effect {
                    Effect::Deny if hit => {
                        return Err(PolicyFailure {
                            group: gi + 1,
                            deny_rule: Some(ri + 1),
                            description: format!(
                                "policy group {} rule {} denies (claim {})",
                                gi + 1,
                                ri + 1,
                                rule.claim.as_str()
                            ),
                        });
                    }
                    Effect::Deny => {}
                    Effect::Allow => {
                        has_allow = true;
                        allowed |= hit;
                    }
                }
            }
            if has_allow && !allowed {
                let claims: Vec<&str> = group
                    .iter()
                    .filter(|r| r.effect == Effect::Allow)
                    .map(|r| r.claim.as_str())
                    .collect();
                return Err(PolicyFailure {
                    group: gi + 1,
                    deny_rule: None,
                    description: format!(
                        "policy group {} not satisfied (claims: {})",
                        gi + 1,
                        claims.join(", ")
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Splits a value into the items `contains_*` compares: array elements, or
/// words of a string separated by spaces or commas (OAuth `scope` style).
fn items(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::String(s) => s
            .split(|c: char| c.is_ascii_whitespace() || c == ',')
            .filter(|w| !w.is_empty())
            .map(|w| Value::String(w.to_string()))
            .collect(),
        other => vec![other.clone()],
    }
}

fn same(a: &Value, b: &Value, case_sensitive: bool) -> bool {
    match (a, b) {
        // ASCII case folding only: Unicode lowercasing would let the Kelvin
        // sign (U+212A) match `k` and the long s (U+017F) match `s`.
        (Value::String(x), Value::String(y)) if !case_sensitive => x.eq_ignore_ascii_case(y),
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        // A numeric or boolean claim compared with a string value: compare as that type.
        (Value::Number(n), Value::String(s)) | (Value::String(s), Value::Number(n)) => {
            s.trim().parse::<f64>().ok() == n.as_f64()
        }
        (Value::Bool(v), Value::String(s)) | (Value::String(s), Value::Bool(v)) => {
            s.parse::<bool>().ok() == Some(*v)
        }
        _ => a == b,
    }
}

impl Rule {
    fn matches(&self, doc: &Value) -> bool {
        let found = self.claim.find(doc);
        match self.op {
            Op::Exists | Op::Matches => found.iter().any(|v| !v.is_null()),
            Op::Equals => found.iter().any(|v| {
                let candidates = if let Value::Array(a) = v {
                    a.clone()
                } else {
                    vec![(*v).clone()]
                };
                candidates.iter().any(|c| {
                    self.values
                        .iter()
                        .any(|want| same(c, want, self.case_sensitive))
                })
            }),
            Op::ContainsAny | Op::ContainsAll => {
                let have: Vec<Value> = found.iter().flat_map(|v| items(v)).collect();
                let present =
                    |want: &Value| have.iter().any(|h| same(h, want, self.case_sensitive));
                if self.op == Op::ContainsAny {
                    self.values.iter().any(present)
                } else {
                    !have.is_empty() && self.values.iter().all(present)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
