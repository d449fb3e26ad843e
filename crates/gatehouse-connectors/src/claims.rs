//! Addressing values inside a claims (or userinfo) JSON object: a top-level
//! member name, or a JSONPath starting with `$`, compiled once at load.

use gatehouse_config::ConfigError;
use serde_json::Value;
use serde_json_path::JsonPath;

/// Where a value is read from.
#[derive(Debug, Clone)]
pub enum ClaimPath {
    /// A top-level member (`sub`).
    Name(String),
    /// A compiled JSONPath (`$.org.region`).
    Path(JsonPath, String),
}

impl ClaimPath {
    /// Parses `text` (a member name, or a JSONPath when it starts with `$`).
    pub fn parse(path: &str, text: &str) -> Result<Self, ConfigError> {
        if text.is_empty() {
            return Err(ConfigError::new(path, "must not be empty"));
        }
        if text.starts_with('$') {
            JsonPath::parse(text)
                .map(|p| ClaimPath::Path(p, text.to_string()))
                .map_err(|e| ConfigError::new(path, format!("invalid JSONPath \"{text}\": {e}")))
        } else {
            Ok(ClaimPath::Name(text.to_string()))
        }
    }

    /// The source text, for messages.
    pub fn as_str(&self) -> &str {
        match self {
            ClaimPath::Name(n) => n,
            ClaimPath::Path(_, t) => t,
        }
    }

    /// Every value found (a member name finds at most one).
    pub fn find<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        match self {
            ClaimPath::Name(n) => root.get(n).into_iter().collect(),
            ClaimPath::Path(p, _) => p.query(root).all(),
        }
    }

    /// The first value found, if any.
    pub fn first<'a>(&self, root: &'a Value) -> Option<&'a Value> {
        match self {
            ClaimPath::Name(n) => root.get(n),
            ClaimPath::Path(p, _) => p.query(root).first(),
        }
    }
}

/// Renders a JSON value as header text: strings as-is, numbers and booleans
/// as text, arrays of scalars comma-joined, objects (and mixed arrays) as
/// compact JSON. `null` renders as nothing (`None`).
pub fn render(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(items)
            if items
                .iter()
                .all(|i| matches!(i, Value::String(_) | Value::Number(_) | Value::Bool(_))) =>
        {
            Some(
                items
                    .iter()
                    .filter_map(render)
                    .collect::<Vec<_>>()
                    .join(","),
            )
        }
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_and_paths() {
        let v = json!({"sub": "u1", "org": {"region": "eu", "teams": ["a", "b"]}, "a.b": 1});
        assert_eq!(
            ClaimPath::parse("p", "sub").unwrap().first(&v),
            Some(&json!("u1"))
        );
        assert_eq!(
            ClaimPath::parse("p", "a.b").unwrap().first(&v),
            Some(&json!(1))
        );
        assert_eq!(
            ClaimPath::parse("p", "$.org.region").unwrap().first(&v),
            Some(&json!("eu"))
        );
        assert_eq!(
            ClaimPath::parse("p", "$.org.teams[*]")
                .unwrap()
                .find(&v)
                .len(),
            2
        );
        assert_eq!(ClaimPath::parse("p", "$.missing").unwrap().first(&v), None);
        let e = ClaimPath::parse("connectors.c.inject_headers.X", "$[").unwrap_err();
        assert_eq!(e.path, "connectors.c.inject_headers.X");
        assert!(e.message.contains("invalid JSONPath"));
    }

    #[test]
    fn rendering() {
        assert_eq!(render(&json!("x y")).as_deref(), Some("x y"));
        assert_eq!(render(&json!(42)).as_deref(), Some("42"));
        assert_eq!(render(&json!(1.5)).as_deref(), Some("1.5"));
        assert_eq!(render(&json!(true)).as_deref(), Some("true"));
        assert_eq!(render(&json!(["a", "b", 3])).as_deref(), Some("a,b,3"));
        assert_eq!(
            render(&json!({"k": [1, 2]})).as_deref(),
            Some("{\"k\":[1,2]}")
        );
        assert_eq!(render(&json!([{"a": 1}])).as_deref(), Some("[{\"a\":1}]"));
        assert_eq!(render(&Value::Null), None);
    }
}
