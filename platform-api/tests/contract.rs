//! The API keeps to its document: errors are problem documents of their own content type, a
//! request body with an unknown field is refused (naming it), whole numbers written `3.0` are
//! whole numbers, and rejected parameters are problem documents too. The fuzzer
//! (tests/api-contract/run.sh) covers every operation; these pin the rules down one by one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};

fn send(d: &Daemon, r: reqwest::blocking::RequestBuilder) -> (u16, String, Value) {
    let r = r.bearer_auth(&d.token).send().unwrap();
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, r.json().unwrap_or(Value::Null))
}

#[test]
fn an_unknown_field_is_refused_by_name_as_a_problem_document() {
    let d = Daemon::start_without_docker(&[]);
    let (status, content_type, body) = send(
        &d,
        d.http.post(d.api("/v1/services")).json(&json!({
            "name": "typo", "owner": "team@example.com", "ower": "x"
        })),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(body["code"], "invalid-body");
    assert!(body["detail"].as_str().unwrap().contains("ower"), "{body}");
    let (status, _) = d.get("/v1/services/typo");
    assert_eq!(status, 404, "nothing of a refused request is kept");
}

#[test]
fn whole_numbers_may_be_written_with_a_zero_fraction() {
    let d = Daemon::start_without_docker(&[]);
    d.create_service("whole");
    // `3.0` is the integer 3: the request goes on to find that there is no release v3.
    let (status, body) = d.post(
        "/v1/services/whole/rollback",
        json!({ "env": "prod", "release": 3.0 }),
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("release-not-found")),
        "{body}"
    );
    // A fraction is not.
    let (status, body) = d.post(
        "/v1/services/whole/rollback",
        json!({ "env": "prod", "release": 2.5 }),
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("invalid-body")),
        "{body}"
    );
    // A version no database could hold is simply absent, not a failure.
    let (status, body) = d.post(
        "/v1/services/whole/rollback",
        json!({ "env": "prod", "release": 9_223_372_036_854_775_808u64 }),
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("release-not-found")),
        "{body}"
    );
}

#[test]
fn rejected_parameters_and_paths_are_problem_documents() {
    let d = Daemon::start_without_docker(&[]);
    d.create_service("params");
    for path in [
        "/v1/services/params/secrets",               // `env` is required
        "/v1/services/params/logs?env=prod&tail=-1", // not a count
        "/v1/services/params/releases?env=",         // not an environment name
        "/v1/services/params/instances?env=Prod",
    ] {
        let (status, content_type, body) = send(&d, d.http.get(d.api(path)));
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(content_type, "application/problem+json", "{path}");
        assert!(body["code"].is_string(), "{path}: {body}");
    }
    let (status, content_type, _) = send(
        &d,
        d.http
            .post(d.api("/v1/services"))
            .header("content-type", "text/plain")
            .body("name=x"),
    );
    assert_eq!(
        (status, content_type.as_str()),
        (415, "application/problem+json")
    );
}

#[test]
fn the_document_lists_each_operations_errors_with_their_content_type() {
    let doc: Value = serde_json::from_str(&faas_platform::openapi_json()).unwrap();
    let op = &doc["paths"]["/v1/services/{svc}/deployments"]["post"];
    for status in ["400", "401", "404", "409", "413", "415", "422", "500"] {
        let response = &op["responses"][status];
        assert_eq!(
            response["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/Problem",
            "{status}: {response:#}"
        );
    }
    assert_eq!(
        doc["components"]["schemas"]["CreateDeployment"]["additionalProperties"],
        false
    );
    assert!(
        doc["components"]["schemas"]["CreateService"]["properties"]["name"]["pattern"].is_string()
    );
    let public = &doc["paths"]["/_info"]["get"]["responses"];
    assert!(public.get("401").is_none(), "/_info needs no token");
}
