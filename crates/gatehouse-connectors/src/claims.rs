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

/// Renders a JSON value as header text, in the one form documented in
/// `docs/security.md` ("What the upstream can trust"):
///
/// - a string as it is; a number or boolean as its JSON text;
/// - an array as its elements joined with `,`, each element escaped with
///   [`escape_element`] (`%` → `%25`, `,` → `%2C`, as the certificate SAN
///   header does): strings as they are, numbers and booleans (and `null`)
///   as their JSON text, objects and nested arrays as compact JSON;
/// - an object as its compact JSON, escaped as one element.
///
/// `null` renders as nothing (`None`); so does an empty array.
pub fn render(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(items) if items.is_empty() => None,
        Value::Array(items) => Some(
            items
                .iter()
                .map(|i| escape_element(&element_text(i)))
                .collect::<Vec<_>>()
                .join(","),
        ),
        Value::Object(_) => Some(escape_element(&v.to_string())),
    }
}

/// The text of one array element, before escaping.
fn element_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Escapes one list element: `%` → `%25`, then `,` → `%2C`, so a reader
/// that splits the header on `,` and percent-decodes each element gets the
/// element back.
pub fn escape_element(s: &str) -> String {
    if !s.contains(['%', ',']) {
        return s.to_string();
    }
    s.replace('%', "%25").replace(',', "%2C")
}

/// True when `v`, rendered, would have whitespace at the edge of its value
/// or (for an array) of one of its elements: RFC 9110 §5.5 readers trim
/// space and tab, and applications trim more (Go's `strings.TrimSpace`,
/// .NET's `Trim`, Java's `strip` remove every Unicode `White_Space`, e.g.
/// U+00A0 and U+3000, and U+FEFF), so the upstream would read another
/// value than the one checked.
pub fn has_edge_whitespace(v: &Value) -> bool {
    let ws = |c: char| c.is_whitespace() || c == '\u{feff}';
    let edge = |s: &str| s.starts_with(ws) || s.ends_with(ws);
    match v {
        Value::String(s) => edge(s),
        Value::Array(items) => items.iter().any(|i| match i {
            Value::String(s) => edge(s),
            _ => false,
        }),
        _ => false,
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
        assert_eq!(
            render(&json!("a,b%")).as_deref(),
            Some("a,b%"),
            "a scalar string is as it is"
        );
        assert_eq!(render(&json!(42)).as_deref(), Some("42"));
        assert_eq!(render(&json!(1.5)).as_deref(), Some("1.5"));
        assert_eq!(render(&json!(true)).as_deref(), Some("true"));
        assert_eq!(render(&json!(["a", "b", 3])).as_deref(), Some("a,b,3"));
        assert_eq!(
            render(&json!({"k": [1, 2]})).as_deref(),
            Some("{\"k\":[1%2C2]}")
        );
        assert_eq!(
            render(&json!([{"a": 1, "b": 2}, [1, 2], null, false])).as_deref(),
            Some("{\"a\":1%2C\"b\":2},[1%2C2],null,false")
        );
        assert_eq!(render(&Value::Null), None);
        assert_eq!(render(&json!([])), None);
    }

    #[test]
    fn array_elements_are_unambiguous() {
        // Issue 21: ["readers,admins"] and ["readers","admins"] were one header.
        let one = render(&json!(["readers,admins"])).unwrap();
        let two = render(&json!(["readers", "admins"])).unwrap();
        assert_eq!(one, "readers%2Cadmins");
        assert_eq!(two, "readers,admins");
        assert_eq!(
            render(&json!(["desk", "x,admin", "50%"])).as_deref(),
            Some("desk,x%2Cadmin,50%25")
        );
        assert_eq!(
            render(&json!(["%2C"])).as_deref(),
            Some("%252C"),
            "an element that looks escaped is escaped again"
        );
        // Decoding gives the elements back.
        let decode = |h: &str| -> Vec<String> {
            h.split(',')
                .map(|e| e.replace("%2C", ",").replace("%25", "%"))
                .collect()
        };
        assert_eq!(decode("desk,x%2Cadmin,50%25"), ["desk", "x,admin", "50%"]);
    }

    #[test]
    fn edge_whitespace_is_found() {
        for v in [
            json!(" admin"),
            json!("admin\t"),
            json!(["a", " b"]),
            json!(["a ", "b"]),
            json!("admin\u{3000}"),
            json!(["readers", "admin\u{a0}"]),
            json!("\u{feff}admin"),
            json!("admin\u{2028}"),
        ] {
            assert!(has_edge_whitespace(&v), "{v}");
        }
        for v in [
            json!("Doe, John"),
            json!(["a b", "c"]),
            json!("caf\u{e9} \u{3000} bar"),
            json!(1),
            json!({" k ": 1}),
        ] {
            assert!(!has_edge_whitespace(&v), "{v}");
        }
    }
}
