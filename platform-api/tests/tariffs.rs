//! Tariffs through the API, as an admin manages them: created with prices as decimal strings
//! kept exactly, versioned from a date on, one the default, another assigned to a tenant,
//! archived; bad prices, currencies and dates refused with a clear code; members get 403.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Daemon;
use serde_json::json;

#[test]
fn an_admin_manages_tariffs_and_members_only_read_their_own() {
    let d = Daemon::start_without_docker(&[]);
    let (status, t) = d.post(
        "/v1/tariffs",
        json!({
            "name": "standard", "currency": "EUR", "effective_from": "2026-01-01",
            "prices": { "vcpu_second": "0.000012", "gib_second": "0.0000015", "million_requests": "0.4" }
        }),
    );
    assert_eq!(status, 201, "{t}");
    assert_eq!(t["default"], true, "the first tariff is the default");
    assert_eq!(t["versions"][0]["prices"]["vcpu_second"], "0.000012");
    assert_eq!(t["versions"][0]["prices"]["instance_second"], "0");
    assert_eq!(
        t["versions"][0]["effective_from"],
        "2026-01-01T00:00:00.000000Z"
    );

    // A new version from a date on; the previous one ends there.
    let (status, t) = d.post(
        "/v1/tariffs/standard/versions",
        json!({ "effective_from": "2026-11-15T12:00:00Z", "prices": { "vcpu_second": "0.00001" } }),
    );
    assert_eq!(status, 201, "{t}");
    assert_eq!(
        t["versions"][0]["effective_to"],
        "2026-11-15T12:00:00.000000Z"
    );
    assert_eq!(t["versions"][1]["version"], 2);
    assert!(t["versions"][1].get("effective_to").is_none());
    let (status, p) = d.post(
        "/v1/tariffs/standard/versions",
        json!({ "effective_from": "2026-11-01", "prices": {} }),
    );
    assert_eq!(
        (status, p["code"].as_str()),
        (409, Some("overlapping-effective-dates")),
        "{p}"
    );

    // Bad input: each a clear error.
    for (body, status, code) in [
        (
            json!({ "name": "cheap", "currency": "EUR", "prices": { "vcpu_second": "-1" } }),
            422,
            "invalid-price",
        ),
        (
            json!({ "name": "cheap", "currency": "EUR", "prices": { "vcpu_second": "1e-5" } }),
            422,
            "invalid-price",
        ),
        (
            json!({ "name": "cheap", "currency": "EUR", "prices": { "run": "0.0000000001" } }),
            422,
            "invalid-price",
        ),
        (
            json!({ "name": "cheap", "currency": "EUX", "prices": {} }),
            422,
            "invalid-currency",
        ),
        (
            json!({ "name": "Cheap!", "currency": "EUR", "prices": {} }),
            400,
            "invalid-tariff-name",
        ),
        (
            json!({ "name": "cheap", "currency": "EUR", "prices": {}, "effective_from": "soon" }),
            400,
            "invalid-time",
        ),
        (
            json!({ "name": "standard", "currency": "EUR", "prices": {} }),
            409,
            "tariff-exists",
        ),
    ] {
        let (s, p) = d.post("/v1/tariffs", body.clone());
        assert_eq!((s, p["code"].as_str()), (status, Some(code)), "{body}: {p}");
    }

    // Another tariff, assigned to one tenant; the default for the rest.
    let (status, _) = d.post(
        "/v1/tariffs",
        json!({ "name": "startup", "currency": "EUR", "prices": { "vcpu_second": "0.000005" } }),
    );
    assert_eq!(status, 201);
    let put = |path: &str, body: serde_json::Value| {
        let r = d
            .http
            .put(d.api(path))
            .bearer_auth(&d.token)
            .json(&body)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json::<serde_json::Value>().unwrap())
    };
    let (status, a) = put(
        "/v1/tenants/ada@example.com/tariff",
        json!({ "tariff": "startup" }),
    );
    assert_eq!(status, 200, "{a}");
    let (_, a) = d.get("/v1/tenants/ada@example.com/tariff");
    assert_eq!(
        (a["tariff"].as_str(), a["by_default"].as_bool()),
        (Some("startup"), Some(false))
    );
    let (_, b) = d.get("/v1/tenants/bob@example.com/tariff");
    assert_eq!(
        (b["tariff"].as_str(), b["by_default"].as_bool()),
        (Some("standard"), Some(true))
    );
    let (status, p) = put(
        "/v1/tenants/ada@example.com/tariff",
        json!({ "tariff": "nope" }),
    );
    assert_eq!(
        (status, p["code"].as_str()),
        (404, Some("tariff-not-found"))
    );

    // The default cannot be archived; once another is the default it can, and takes no tenant.
    let (status, p) = d.post("/v1/tariffs/standard/archive", json!(null));
    assert_eq!(
        (status, p["code"].as_str()),
        (409, Some("tariff-is-default"))
    );
    let (status, _) = d.post("/v1/tariffs/startup/default", json!(null));
    assert_eq!(status, 200);
    let (status, t) = d.post("/v1/tariffs/standard/archive", json!(null));
    assert_eq!(status, 200);
    assert!(t["archived_at"].is_string());
    let (status, p) = put(
        "/v1/tenants/bob@example.com/tariff",
        json!({ "tariff": "standard" }),
    );
    assert_eq!((status, p["code"].as_str()), (409, Some("tariff-archived")));
    let (_, list) = d.get("/v1/tariffs");
    assert_eq!(list.as_array().unwrap().len(), 2);

    // Members: 403 on tariffs; their own tenant's tariff they may read, another's not.
    let (_, t) = d.post(
        "/v1/tokens",
        json!({ "tenant": "ada@example.com", "role": "member" }),
    );
    let member = t["token"].as_str().unwrap();
    let (status, _) = d.get_as(member, "/v1/tariffs");
    assert_eq!(status, 403);
    let (status, _) = d.post_as(
        member,
        "/v1/tariffs",
        json!({ "name": "mine", "currency": "EUR", "prices": {} }),
    );
    assert_eq!(status, 403);
    let (status, own) = d.get_as(member, "/v1/tenants/ada@example.com/tariff");
    assert_eq!((status, own["tariff"].as_str()), (200, Some("startup")));
    let (status, _) = d.get_as(member, "/v1/tenants/bob@example.com/tariff");
    assert_eq!(status, 403);
}
