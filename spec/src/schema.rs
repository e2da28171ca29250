//! The JSON Schema of app.toml, generated from the model. The validator walks the same schema, so
//! what editors check and what `faas service validate` checks cannot drift apart.

use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use serde_json::Value;

use crate::manifest::Manifest;

/// The file name the CLI gives the schema it writes beside its config, which scaffolded
/// app.toml files point editors at (it loads offline, and follows the installed faas).
pub const SCHEMA_FILE: &str = "app.schema.json";

/// The schema as a JSON value (draft-07, which taplo and Even Better TOML read).
pub fn app_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let schema = SchemaSettings::draft07()
            .into_generator()
            .into_root_schema_for::<Manifest>();
        let mut value = schema.to_value();
        // TOML has no null: an optional key is one that may be left out, never one set to null.
        drop_null(&mut value);
        value
    })
}

fn drop_null(value: &mut Value) {
    match value {
        Value::Object(obj) => {
            if let Some(Value::Array(types)) = obj.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    obj.insert("type".into(), only);
                }
            }
            for key in ["anyOf", "oneOf"] {
                if let Some(Value::Array(options)) = obj.get_mut(key) {
                    options.retain(|o| o.get("type").and_then(Value::as_str) != Some("null"));
                    if options.len() == 1 {
                        let only = options.remove(0);
                        obj.remove(key);
                        if let Value::Object(inner) = only {
                            for (k, v) in inner {
                                obj.entry(k).or_insert(v);
                            }
                        }
                    }
                }
            }
            if obj.get("default").is_some_and(Value::is_null) {
                obj.remove("default");
            }
            obj.values_mut().for_each(drop_null);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_null),
        _ => {}
    }
}

/// The schema as the text committed in schemas/app.schema.json.
pub fn app_schema_json() -> String {
    let mut text = serde_json::to_string_pretty(app_schema()).unwrap_or_default();
    text.push('\n');
    text
}

/// Follows `$ref` and single-element `allOf` wrappers to the schema that describes a value.
pub fn resolve<'a>(root: &'a Value, mut node: &'a Value) -> &'a Value {
    for _ in 0..16 {
        if let Some(reference) = node.get("$ref").and_then(Value::as_str) {
            let Some(name) = reference.strip_prefix("#/definitions/") else {
                return node;
            };
            match root.get("definitions").and_then(|d| d.get(name)) {
                Some(target) => node = target,
                None => return node,
            }
        } else if let Some([only]) = node
            .get("allOf")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
        {
            node = only;
        } else {
            return node;
        }
    }
    node
}

/// Every key path the schema allows, as `table.key` strings, in document order. Map entries
/// (`databases.<name>`) appear with `<name>` for the key. `environments` is not expanded, as it
/// repeats the tables above it.
pub fn key_paths() -> Vec<String> {
    let root = app_schema();
    let mut out = Vec::new();
    collect_paths(root, root, String::new(), &mut out);
    out
}

fn collect_paths(root: &Value, node: &Value, prefix: String, out: &mut Vec<String>) {
    let node = resolve(root, node);
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (key, child) in props {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            out.push(path.clone());
            if path != "environments" {
                collect_paths(root, child, path, out);
            }
        }
    }
    if let Some(child) = node.get("additionalProperties").filter(|v| v.is_object()) {
        let placeholder = match node
            .get("propertyNames")
            .and_then(|p| p.get("format"))
            .and_then(Value::as_str)
        {
            Some("db-name") => "<name>",
            Some("env-name") => "<env>",
            _ => "<key>",
        };
        let path = format!("{prefix}.{placeholder}");
        if resolve(root, child).get("properties").is_some() {
            out.push(path.clone());
            collect_paths(root, child, path, out);
        }
    }
    if let Some(items) = node.get("items") {
        collect_paths(root, items, prefix, out);
    }
}
