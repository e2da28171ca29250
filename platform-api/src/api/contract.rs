//! What every operation of the API may answer besides its own results, written into the OpenAPI
//! document in one place so that the document and the server cannot drift apart:
//!
//! - every error is a problem document of content type `application/problem+json`;
//! - an operation under `/v1/` may answer 401 (no valid bearer token); one with parameters 400
//!   (a parameter the server refuses) and, with a path, 404 (no such service, or one of another
//!   tenant); one with a JSON body 400 (not JSON), 413 (too large), 415 (not
//!   `application/json`) and 422 (JSON that is not the schema's); any may answer 500;
//! - request bodies refuse unknown properties (`additionalProperties: false`, and
//!   `deny_unknown_fields` on the wire types), so a misspelt field is an error, not ignored;
//! - names carry the patterns the server checks them by ([`faas_spec::names`]).

use serde_json::{Map, Value, json};

const PROBLEM: &str = "#/components/schemas/Problem";
const PROBLEM_TYPE: &str = "application/problem+json";

/// Request bodies, each refusing unknown properties.
const REQUEST_SCHEMAS: [&str; 14] = [
    "CreateService",
    "CreateDeployment",
    "Scale",
    "Rollback",
    "CanaryControl",
    "CreateToken",
    "SetSecrets",
    "UnsetSecrets",
    "RunFunction",
    "Heartbeat",
    "Claim",
    "LaunchResult",
    "RunTask",
    "Approve",
];

/// The pattern of each name the server checks, by schema and property.
fn property_patterns() -> [(&'static str, &'static str, &'static str); 18] {
    use faas_spec::api::runs::{RUN_MEMORY_PATTERN, RUN_TIMEOUT_PATTERN};
    use faas_spec::api::tasks::{ACTION_NAME_PATTERN, WORKER_PATTERN};
    use faas_spec::names::{EMAIL_PATTERN, ENV_NAME_PATTERN, SERVICE_NAME_PATTERN};
    [
        ("CreateService", "name", SERVICE_NAME_PATTERN),
        ("CreateService", "owner", EMAIL_PATTERN),
        ("CreateToken", "tenant", EMAIL_PATTERN),
        ("CreateTariff", "name", SERVICE_NAME_PATTERN),
        ("CreateTariff", "currency", "^[A-Z]{3}$"),
        ("CreateDeployment", "env", ENV_NAME_PATTERN),
        ("Scale", "env", ENV_NAME_PATTERN),
        ("Rollback", "env", ENV_NAME_PATTERN),
        ("CanaryControl", "env", ENV_NAME_PATTERN),
        ("SetSecrets", "env", ENV_NAME_PATTERN),
        ("UnsetSecrets", "env", ENV_NAME_PATTERN),
        ("RunFunction", "email", EMAIL_PATTERN),
        ("RunFunction", "tenant", EMAIL_PATTERN),
        ("RunFunction", "memory", RUN_MEMORY_PATTERN),
        ("RunFunction", "timeout", RUN_TIMEOUT_PATTERN),
        ("Heartbeat", "name", ACTION_NAME_PATTERN),
        ("Heartbeat", "worker", WORKER_PATTERN),
        ("Claim", "worker", WORKER_PATTERN),
    ]
}

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": { PROBLEM_TYPE: { "schema": { "$ref": PROBLEM } } }
    })
}

/// Completes the document as the module's comment says.
pub fn complete(doc: &mut Value) {
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, op) in item.iter_mut() {
                if matches!(
                    method.as_str(),
                    "get" | "put" | "post" | "delete" | "patch" | "head" | "options"
                ) {
                    complete_operation(path, op);
                }
            }
        }
    }
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        complete_schemas(schemas);
    }
}

fn complete_operation(path: &str, op: &mut Value) {
    let parameters: Vec<Value> = op
        .get("parameters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let has_path = parameters.iter().any(|p| p["in"] == "path");
    let has_params = !parameters.is_empty();
    let body_types: Vec<String> = op
        .pointer("/requestBody/content")
        .and_then(Value::as_object)
        .map(|c| c.keys().cloned().collect())
        .unwrap_or_default();
    let json_body = body_types.iter().any(|t| t == "application/json");

    let mut added: Vec<(&str, &str)> = Vec::new();
    if path.starts_with("/v1/") {
        added.push(("401", "No valid bearer token was sent"));
    }
    if has_params || !body_types.is_empty() {
        added.push(("400", "A parameter or the body was refused"));
    }
    if has_path {
        added.push((
            "404",
            "No such service (another tenant's is as good as absent), or no such resource of it",
        ));
    }
    if json_body {
        added.push(("413", "The body is too large"));
        added.push(("415", "The body is not `application/json`"));
        added.push(("422", "The body is JSON, but not of the request's schema"));
    } else if !body_types.is_empty() {
        added.push(("422", "The body was refused"));
    }
    added.push((
        "500",
        "The platform failed; its log has the details under the request id",
    ));

    let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
        return;
    };
    for (status, description) in added {
        responses
            .entry(status)
            .or_insert_with(|| problem(description));
    }
    for response in responses.values_mut() {
        problem_content_type(response);
    }
    let mut sorted: Vec<(String, Value)> = std::mem::take(responses).into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    responses.extend(sorted);

    if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
        for param in params {
            if param["name"] == "limit"
                && (path == "/v1/functions/runs"
                    || path == "/v1/tasks"
                    || path.ends_with("/history"))
                && let Some(schema) = param.get_mut("schema").and_then(Value::as_object_mut)
            {
                schema.insert("minimum".into(), 1.into());
                schema.insert("maximum".into(), 1000.into());
            }
            let pattern = match param["name"].as_str() {
                Some("env") => faas_spec::names::ENV_NAME_PATTERN,
                Some("tenant") => faas_spec::names::EMAIL_PATTERN,
                Some("sha256") => "^[0-9a-fA-F]{64}$",
                _ => continue,
            };
            if let Some(schema) = param.get_mut("schema").and_then(Value::as_object_mut) {
                schema.insert("pattern".into(), pattern.into());
            }
        }
    }
}

/// A problem document is `application/problem+json`, whatever the annotation said.
fn problem_content_type(response: &mut Value) {
    let Some(content) = response.get_mut("content").and_then(Value::as_object_mut) else {
        return;
    };
    let is_problem = content
        .get("application/json")
        .is_some_and(|c| c.pointer("/schema/$ref").and_then(Value::as_str) == Some(PROBLEM));
    if is_problem && let Some(media) = content.remove("application/json") {
        content.insert(PROBLEM_TYPE.into(), media);
    }
}

fn complete_schemas(schemas: &mut Map<String, Value>) {
    for name in REQUEST_SCHEMAS {
        if let Some(schema) = schemas.get_mut(name).and_then(Value::as_object_mut) {
            schema.insert("additionalProperties".into(), false.into());
        }
    }
    for (schema, property, pattern) in property_patterns() {
        if let Some(p) = schemas
            .get_mut(schema)
            .and_then(|s| s.pointer_mut(&format!("/properties/{property}")))
            .and_then(Value::as_object_mut)
        {
            p.insert("pattern".into(), pattern.into());
        }
    }
    if let Some(replicas) = schemas
        .get_mut("Scale")
        .and_then(|s| s.pointer_mut("/properties/replicas"))
        .and_then(Value::as_object_mut)
    {
        replicas.insert("maximum".into(), faas_spec::manifest::MAX_REPLICAS.into());
    }
    let secret = faas_spec::names::SECRET_NAME_PATTERN;
    for (schema, property, min) in [("SetSecrets", "values", 1), ("RunFunction", "env", 0)] {
        if let Some(values) = schemas
            .get_mut(schema)
            .and_then(|s| s.pointer_mut(&format!("/properties/{property}")))
            .and_then(Value::as_object_mut)
        {
            values.insert("propertyNames".into(), json!({ "pattern": secret }));
            values.insert("minProperties".into(), min.into());
            values.insert(
                "additionalProperties".into(),
                json!({ "type": "string", "maxLength": faas_spec::names::MAX_SECRET_CHARS }),
            );
        }
    }
    if let Some(run) = schemas
        .get_mut("RunFunction")
        .and_then(|s| s.get_mut("properties"))
        .and_then(Value::as_object_mut)
    {
        // A name of at least one character; a command of at least one word.
        if let Some(image) = run.get_mut("image_name").and_then(Value::as_object_mut) {
            image.insert("minLength".into(), 1.into());
        }
        if let Some(command) = run.get_mut("command").and_then(Value::as_object_mut) {
            command.insert("minItems".into(), 1.into());
        }
    }
    // A heartbeat's interval and version, a task's file name and definition size.
    for (schema, property, limits) in [
        (
            "Heartbeat",
            "interval_ms",
            json!({"minimum": 100, "maximum": 60000}),
        ),
        (
            "Heartbeat",
            "version",
            json!({"minLength": 1, "maxLength": 64}),
        ),
        ("RunTask", "file", json!({"minLength": 1, "maxLength": 255})),
        ("RunTask", "definition", json!({"maxLength": 1 << 20})),
    ] {
        if let Some(p) = schemas
            .get_mut(schema)
            .and_then(|s| s.pointer_mut(&format!("/properties/{property}")))
            .and_then(Value::as_object_mut)
            && let Some(limits) = limits.as_object()
        {
            p.extend(limits.clone());
        }
    }
    if let Some(names) = schemas
        .get_mut("UnsetSecrets")
        .and_then(|s| s.pointer_mut("/properties/names/items"))
        .and_then(Value::as_object_mut)
    {
        names.insert("pattern".into(), secret.into());
    }
}
