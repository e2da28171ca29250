//! The committed JSON Schema and the app.toml reference both follow the model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

fn workspace_file(relative: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

#[test]
fn the_committed_schema_is_up_to_date() {
    let path = workspace_file("schemas/app.schema.json");
    let generated = faas_spec::schema::app_schema_json();
    if std::env::var_os("FAAS_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "schemas/app.schema.json is stale: the model in spec/ changed.\n\
         Regenerate it with `FAAS_UPDATE_SCHEMA=1 cargo test -p faas-spec --test schema` and commit it."
    );
}

#[test]
fn every_key_is_documented_in_the_reference() {
    let docs = std::fs::read_to_string(workspace_file("docs/app-toml.md")).unwrap();
    let missing: Vec<String> = faas_spec::schema::key_paths()
        .into_iter()
        .filter(|path| !docs.contains(&format!("`{path}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/app-toml.md does not document: {missing:?}"
    );
}

#[test]
fn the_schema_describes_every_key() {
    // Editors show these descriptions on hover; a key without one is a gap in the model's docs.
    fn visit(node: &serde_json::Value, path: &str, out: &mut Vec<String>) {
        if let Some(props) = node.get("properties").and_then(|p| p.as_object()) {
            for (k, v) in props {
                if v.get("description").is_none() {
                    out.push(format!("{path}.{k}"));
                }
            }
        }
    }
    let schema = faas_spec::schema::app_schema();
    let mut missing = Vec::new();
    visit(schema, "", &mut missing);
    for (name, def) in schema["definitions"].as_object().unwrap() {
        visit(def, name, &mut missing);
    }
    assert!(
        missing.is_empty(),
        "keys without a description: {missing:?}"
    );
}
