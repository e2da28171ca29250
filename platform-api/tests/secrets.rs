//! Secrets: set, deployed, read by the service; never shown by the API or written in clear;
//! a rollback brings back the matching value; another tenant cannot even list the names.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

/// Serves the value of $TOKEN at `/`.
fn secret_reader(name: &str) -> String {
    format!(
        r#"name = "{name}"
owner = "{OWNER}"
[run]
port = 8080
command = ["sh", "-c", "mkdir -p /tmp/www && echo ok > /tmp/www/_info && echo token=$TOKEN > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"]
[health]
path = "/_info"
interval = "500ms"
[scale]
replicas = 2
"#
    )
}

#[test]
fn a_secret_reaches_every_instance_stays_sealed_and_rolls_back_with_its_release() {
    let d = Daemon::start();
    d.create_service("vault");
    let set = |value: &str| {
        let r = d
            .http
            .put(d.api("/v1/services/vault/secrets"))
            .bearer_auth(&d.token)
            .json(&json!({ "env": "prod", "values": { "TOKEN": value } }))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json::<serde_json::Value>().unwrap()
    };
    let changed = set("first-secret-value");
    assert_eq!(changed["version"], 1);
    assert_eq!(changed["secrets"][0]["name"], "TOKEN");
    assert!(!changed.to_string().contains("first-secret-value"));

    let v1 = d.deploy_and_wait("vault", "prod", &secret_reader("vault"));
    assert_eq!(v1["state"], "succeeded", "{v1:#}");
    for _ in 0..4 {
        assert_eq!(
            d.route("vault", "prod", "/"),
            (200, "token=first-secret-value\n".into()),
            "every instance has it"
        );
    }

    // A change takes effect on the next deploy, which makes a new release.
    set("second-secret-value");
    assert_eq!(
        d.route("vault", "prod", "/").1,
        "token=first-secret-value\n",
        "not before a deploy"
    );
    let v2 = d.deploy_and_wait("vault", "prod", &secret_reader("vault"));
    assert_eq!(v2["state"], "succeeded");
    assert_eq!(
        v2["version"], 2,
        "same image and manifest, new secrets: a new release"
    );
    assert_eq!(
        d.route("vault", "prod", "/").1,
        "token=second-secret-value\n"
    );

    // Rollback brings back the value of its release.
    let (status, dep) = d.post("/v1/services/vault/rollback", json!({ "env": "prod" }));
    assert_eq!(status, 202, "{dep}");
    d.wait_deployment(
        "vault",
        dep["id"].as_str().unwrap(),
        Duration::from_secs(60),
    );
    assert_eq!(
        d.route("vault", "prod", "/").1,
        "token=first-secret-value\n"
    );

    // Never in the API's answers, the daemon's log, or the store in clear.
    let (_, list) = d.get("/v1/services/vault/secrets?env=prod");
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(list[0]["updated_at"].is_string());
    for path in [
        "/v1/services/vault",
        "/v1/services/vault/releases",
        "/v1/services/vault/deployments",
        "/v1/services/vault/secrets?env=prod",
    ] {
        let text = d.get(path).1.to_string();
        assert!(
            !text.contains("secret-value"),
            "{path} shows a value: {text}"
        );
    }
    assert!(!d.log().contains("secret-value"), "the log shows a value");
    let db = std::fs::read(d.data_dir().join("platform.db")).unwrap();
    let wal = std::fs::read(d.data_dir().join("platform.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(12).any(|w| w == b"secret-value"),
            "a value is stored in clear"
        );
    }

    // Unset, then a bad name and an unknown one.
    let r = d
        .http
        .delete(d.api("/v1/services/vault/secrets"))
        .bearer_auth(&d.token)
        .json(&json!({ "env": "prod", "names": ["TOKEN"] }))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, list) = d.get("/v1/services/vault/secrets?env=prod");
    assert!(list.as_array().unwrap().is_empty());
    let r = d
        .http
        .put(d.api("/v1/services/vault/secrets"))
        .bearer_auth(&d.token)
        .json(&json!({ "env": "prod", "values": { "BAD-NAME": "hidden-value" } }))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let text = r.text().unwrap();
    assert!(
        text.contains("BAD-NAME") && !text.contains("hidden-value"),
        "{text}"
    );
}

#[test]
fn another_tenant_cannot_read_the_secret_names() {
    let d = Daemon::start();
    let (_, a) = d.post(
        "/v1/tokens",
        json!({ "tenant": "a@example.com", "role": "member" }),
    );
    let (_, b) = d.post(
        "/v1/tokens",
        json!({ "tenant": "b@example.com", "role": "member" }),
    );
    let (a, b) = (
        a["token"].as_str().unwrap().to_owned(),
        b["token"].as_str().unwrap().to_owned(),
    );
    assert_eq!(
        d.post_as(&a, "/v1/services", json!({ "name": "mine" })).0,
        201
    );
    let r = d
        .http
        .put(d.api("/v1/services/mine/secrets"))
        .bearer_auth(&a)
        .json(&json!({ "env": "prod", "values": { "API_KEY": "x" } }))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, _) = d.get_as(&b, "/v1/services/mine/secrets?env=prod");
    assert_eq!(status, 404);
    let (status, list) = d.get_as(&a, "/v1/services/mine/secrets?env=prod");
    assert_eq!(status, 200);
    assert_eq!(list[0]["name"], "API_KEY");
}
