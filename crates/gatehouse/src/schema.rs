//! The JSON Schema of the configuration, for editors (Taplo, VS Code's Even
//! Better TOML) and CI linters. Connector sections are a `oneOf` on `kind`,
//! one branch per kind of the registry (each factory gives its own schema).

use gatehouse_config::Config;
use gatehouse_connectors::Registry;
use schemars::generate::SchemaSettings;
use serde_json::{json, Value};

/// Adds `kind = <kind>` (required) to a connector settings schema: the
/// definition its `$ref` points to, or the schema itself when inline.
fn tag(defs: &mut serde_json::Map<String, Value>, schema: &mut Value, kind: &str) {
    let target = match schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.rsplit('/').next())
        .map(str::to_string)
    {
        Some(def) => match defs.get_mut(&def) {
            Some(d) => d,
            None => return,
        },
        None => schema,
    };
    let Some(d) = target.as_object_mut() else {
        return;
    };
    let props = d.entry("properties").or_insert_with(|| json!({}));
    if let Some(p) = props.as_object_mut() {
        p.insert(
            "kind".into(),
            json!({ "const": kind, "description": "The connector kind." }),
        );
    }
    match d.get_mut("required") {
        Some(Value::Array(r)) => r.push(json!("kind")),
        _ => {
            d.insert("required".into(), json!(["kind"]));
        }
    }
}

/// The schema, as JSON, for the kinds of `registry`.
pub fn schema(registry: &Registry) -> Value {
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    let root = generator.root_schema_for::<Config>();
    let kinds = registry.settings_schemas(&mut generator);
    let mut root = root.to_value();
    let mut defs = generator.take_definitions(true);
    let mut branches = Vec::new();
    for (kind, s) in kinds {
        let mut v = s.to_value();
        tag(&mut defs, &mut v, kind);
        branches.push(v);
    }
    let root_defs = root
        .as_object_mut()
        .map(|o| o.entry("$defs").or_insert_with(|| json!({})));
    if let Some(Value::Object(rd)) = root_defs {
        for (k, v) in defs {
            rd.entry(k).or_insert(v);
        }
        rd.insert(
            "ConnectorConfig".into(),
            json!({
                "description": "A connector: `kind` selects the settings.",
                "oneOf": branches
            }),
        );
    }
    if let Some(o) = root.as_object_mut() {
        o.insert("title".into(), json!("Gatehouse configuration"));
        o.insert(
            "$id".into(),
            json!("https://gatehouse.invalid/schema/v1/gatehouse.schema.json"),
        );
    }
    root
}
