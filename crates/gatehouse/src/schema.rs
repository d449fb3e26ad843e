//! The JSON Schema of the configuration, for editors (Taplo, VS Code's Even
//! Better TOML) and CI linters. Connector sections are a `oneOf` on `kind`.

use gatehouse_config::Config;
use gatehouse_connectors::jwt::JwtSettings;
use gatehouse_connectors::userinfo::UserinfoSettings;
use schemars::generate::SchemaSettings;
use serde_json::{json, Value};

/// Adds `kind = <kind>` (required) to a connector settings definition.
fn tag(defs: &mut serde_json::Map<String, Value>, def: &str, kind: &str) {
    if let Some(Value::Object(d)) = defs.get_mut(def) {
        if let Some(Value::Object(props)) = d.get_mut("properties") {
            props.insert(
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
}

/// The schema, as JSON.
pub fn schema() -> Value {
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    let root = generator.root_schema_for::<Config>();
    let jwt = generator.subschema_for::<JwtSettings>();
    let userinfo = generator.subschema_for::<UserinfoSettings>();
    let mut root = root.to_value();
    let mut defs = generator.take_definitions(true);
    tag(&mut defs, "JwtSettings", "jwt");
    tag(&mut defs, "UserinfoSettings", "oidc_userinfo");
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
                "oneOf": [jwt.to_value(), userinfo.to_value()]
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
