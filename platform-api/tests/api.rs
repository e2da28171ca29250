//! The API's contract: tokens and tenants, services, images, problem documents, a Docker
//! Engine that does not answer, a store that cannot be used, the OpenAPI document, metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::json;

#[test]
fn the_first_start_writes_an_admin_token_readable_by_its_owner_only() {
    let d = Daemon::start();
    let path = d.data_dir().join("admin-token");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(
        d.log().contains(&path.display().to_string()),
        "the log says where it is"
    );
    let (status, who) = d.get("/v1/whoami");
    assert_eq!(status, 200);
    assert_eq!(who["role"], "admin");
}

#[test]
fn requests_without_a_valid_token_get_401_problems() {
    let d = Daemon::start();
    let r = d.http.get(d.api("/v1/services")).send().unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let request_id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let p: serde_json::Value = r.json().unwrap();
    assert_eq!(p["code"], "unauthenticated");
    assert_eq!(p["request_id"], request_id.as_str());
    assert!(p["hint"].as_str().unwrap().contains("admin-token"));
    let (status, p) = d.get_as("faas_not-a-token", "/v1/services");
    assert_eq!((status, p["code"].as_str()), (401, Some("invalid-token")));
}

#[test]
fn members_see_and_change_only_their_tenants_services() {
    let d = Daemon::start();
    let token = |tenant: &str| {
        let (status, t) = d.post("/v1/tokens", json!({ "tenant": tenant, "role": "member" }));
        assert_eq!(status, 201, "{t}");
        t["token"].as_str().unwrap().to_owned()
    };
    let (a, b) = (token("a@example.com"), token("b@example.com"));

    let (status, svc) = d.post_as(&a, "/v1/services", json!({ "name": "svc-a" }));
    assert_eq!(status, 201, "{svc}");
    assert_eq!(svc["owner"], "a@example.com");
    let (status, _) = d.post_as(&b, "/v1/services", json!({ "name": "svc-b" }));
    assert_eq!(status, 201);

    let names = |token: &str| {
        let (_, list) = d.get_as(token, "/v1/services");
        list.as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&a), ["svc-a"]);
    assert_eq!(names(&b), ["svc-b"]);
    assert_eq!(
        names(&d.token),
        ["svc-a", "svc-b"],
        "an admin sees every service"
    );

    // B cannot see, deploy to, roll back or delete A's service: to B it does not exist.
    let (status, p) = d.get_as(&b, "/v1/services/svc-a");
    assert_eq!(
        (status, p["code"].as_str()),
        (404, Some("service-not-found"))
    );
    let (status, _) = d.post_as(
        &b,
        "/v1/services/svc-a/deployments",
        json!({ "env": "prod", "image": "busybox:stable", "manifest": manifest("svc-a", "v1", 1) }),
    );
    assert_eq!(status, 404);
    let (status, _) = d.post_as(&b, "/v1/services/svc-a/rollback", json!({ "env": "prod" }));
    assert_eq!(status, 404);
    let r = d
        .http
        .delete(d.api("/v1/services/svc-a?confirm=svc-a"))
        .bearer_auth(&b)
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    let (status, _) = d.get_as(&b, "/v1/services/svc-a/releases");
    assert_eq!(status, 404);

    // A member cannot create services for another tenant, nor tokens.
    let (status, p) = d.post_as(
        &a,
        "/v1/services",
        json!({ "name": "sneaky", "owner": "b@example.com" }),
    );
    assert_eq!((status, p["code"].as_str()), (403, Some("forbidden")));
    let (status, p) = d.post_as(
        &a,
        "/v1/tokens",
        json!({ "tenant": "a@example.com", "role": "admin" }),
    );
    assert_eq!((status, p["code"].as_str()), (403, Some("forbidden")));
    // A name taken by another tenant says so without showing it.
    let (status, p) = d.post_as(&b, "/v1/services", json!({ "name": "svc-a" }));
    assert_eq!((status, p["code"].as_str()), (409, Some("name-taken")));
}

#[test]
fn deleting_a_service_needs_confirmation_and_removes_everything() {
    let d = Daemon::start();
    d.create_service("gone");
    assert_eq!(
        d.deploy_and_wait("gone", "prod", &manifest("gone", "v1", 2))["state"],
        "succeeded"
    );
    assert_eq!(d.containers().len(), 2);

    let (status, p) = d.delete("/v1/services/gone");
    assert_eq!(
        (status, p["code"].as_str()),
        (400, Some("confirm-required"))
    );
    assert!(p["hint"].as_str().unwrap().contains("confirm=gone"));
    let (status, _) = d.delete("/v1/services/gone?confirm=wrong");
    assert_eq!(status, 400);
    assert_eq!(d.containers().len(), 2, "nothing was touched");

    let (status, _) = d.delete("/v1/services/gone?confirm=gone");
    assert_eq!(status, 204);
    assert!(d.containers().is_empty(), "{:?}", d.containers());
    assert_eq!(d.get("/v1/services/gone").0, 404);
    assert_eq!(d.route("gone", "prod", "/").0, 404);
}

#[test]
fn images_upload_as_a_docker_save_tarball_with_a_verified_checksum() {
    let d = Daemon::start();
    let tar = d.dir.join("image.tar");
    let saved = Command::new("docker")
        .args(["save", "-o"])
        .arg(&tar)
        .arg("busybox:stable")
        .status()
        .unwrap();
    assert!(saved.success());
    let bytes = std::fs::read(&tar).unwrap();
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    let upload = |sum: &str| {
        d.http
            .post(d.api(&format!("/v1/images?sha256={sum}")))
            .bearer_auth(&d.token)
            .header("content-type", "application/x-tar")
            .body(bytes.clone())
            .send()
            .unwrap()
    };
    let r = upload(&"0".repeat(64));
    assert_eq!(r.status(), 422);
    let p: serde_json::Value = r.json().unwrap();
    assert_eq!(p["code"], "checksum-mismatch");
    let r = upload(&sha);
    assert_eq!(r.status(), 201);
    let loaded: serde_json::Value = r.json().unwrap();
    assert_eq!(loaded["sha256"], sha.as_str());
    assert_eq!(loaded["bytes"], bytes.len() as u64);
    assert!(!loaded["images"].as_array().unwrap().is_empty(), "{loaded}");
    let r = upload("not-hex");
    assert_eq!(r.status(), 400);
    let uploads = d.data_dir().join("uploads");
    assert_eq!(
        std::fs::read_dir(uploads).map(|d| d.count()).unwrap_or(0),
        0,
        "no upload is left on disk"
    );
}

#[test]
fn without_a_docker_engine_the_api_says_so_and_the_daemon_keeps_running() {
    let mut d = Daemon::start_without_docker(&[("DOCKER_HOST", "unix:///nonexistent/docker.sock")]);
    let info: serde_json::Value = d.http.get(d.api("/_info")).send().unwrap().json().unwrap();
    assert_eq!(info["docker"]["available"], false);
    assert!(info["docker"]["error"].is_string());
    d.create_service("nodocker");
    let (status, p) = d.post(
        "/v1/services/nodocker/deployments",
        json!({ "env": "prod", "image": "busybox:stable", "manifest": manifest("nodocker", "v1", 1) }),
    );
    assert_eq!(
        (status, p["code"].as_str()),
        (503, Some("docker-unavailable")),
        "{p}"
    );
    assert!(
        p["hint"]
            .as_str()
            .unwrap()
            .contains("start the Docker Engine")
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        d.http.get(d.api("/_info")).send().unwrap().status(),
        200,
        "still serving"
    );
    assert_eq!(d.stop().code(), Some(0));
}

/// Runs `faas-platform serve` on a data directory, for a start that must be refused.
fn serve_once(data_dir: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_faas-platform"))
        .arg("serve")
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--router", &format!("127.0.0.1:{}", free_port())])
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap()
}

#[test]
fn a_store_from_a_newer_version_stops_the_daemon_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let conn = rusqlite::Connection::open(data.join("platform.db")).unwrap();
    conn.pragma_update(None, "user_version", 42).unwrap();
    drop(conn);
    let out = serve_once(&data);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("newer faas-platform") && err.contains("schema version 42"),
        "{err}"
    );

    std::fs::write(
        data.join("platform.db"),
        b"garbage garbage garbage garbage garbage garbage garbage garbage",
    )
    .unwrap();
    let out = serve_once(&data);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a usable faas-platform database"), "{err}");
    assert!(
        std::fs::read(data.join("platform.db"))
            .unwrap()
            .starts_with(b"garbage"),
        "never reset silently"
    );
}

#[test]
fn a_second_daemon_on_the_same_data_directory_refuses_to_start() {
    let d = Daemon::start();
    let out = serve_once(&d.data_dir());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another faas-platform is using"));
}

#[test]
fn sigterm_stops_the_daemon_but_leaves_containers_running() {
    let mut d = Daemon::start();
    d.create_service("stays");
    assert_eq!(
        d.deploy_and_wait("stays", "prod", &manifest("stays", "v1", 1))["state"],
        "succeeded"
    );
    assert_eq!(d.stop().code(), Some(0));
    let containers = d.containers();
    assert_eq!(containers.len(), 1);
    assert!(
        containers[0].2,
        "the instance keeps running without the daemon"
    );
    d.restart(&[]);
    wait_until(
        "the adopted instance serves",
        Duration::from_secs(10),
        || d.route("stays", "prod", "/") == (200, "v1\n".into()),
    );
}

#[test]
fn the_router_counts_requests_per_release_for_prometheus() {
    let d = Daemon::start();
    d.create_service("counted");
    let dep = d.deploy_and_wait("counted", "prod", &manifest("counted", "v1", 1));
    for _ in 0..5 {
        assert_eq!(d.route("counted", "prod", "/").0, 200);
    }
    assert_eq!(d.route("counted", "prod", "/missing").0, 404);
    let text = d
        .http
        .get(d.api("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let release = dep["release"].as_str().unwrap();
    let line = format!(
        "faas_router_requests_total{{service=\"counted\",env=\"prod\",release=\"{release}\"}} 6"
    );
    assert!(text.contains(&line), "{text}");
    assert!(text.contains("faas_router_request_duration_seconds_bucket{service=\"counted\""));
    assert!(text.contains(&format!("faas_router_responses_5xx_total{{service=\"counted\",env=\"prod\",release=\"{release}\"}} 0")));
}

#[test]
fn the_openapi_document_is_committed_and_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    let generated = faas_platform::openapi_json();
    if std::env::var_os("FAAS_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "platform-api/openapi.json is stale; regenerate it with \
         `FAAS_UPDATE_OPENAPI=1 cargo test -p faas-platform --test api the_openapi` and commit it"
    );
    let doc: serde_json::Value = serde_json::from_str(&generated).unwrap();
    for path in [
        "/_info",
        "/v1/services",
        "/v1/services/{svc}/deployments",
        "/v1/services/{svc}/rollback",
        "/v1/images",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is documented");
    }
}

#[test]
fn the_daemon_serves_its_openapi_document() {
    let d = Daemon::start();
    let served = d
        .http
        .get(d.api("/openapi.json"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(served, faas_platform::openapi_json());
    let r = d
        .http
        .get(d.api("/v1/nothing-here"))
        .bearer_auth(&d.token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
}
