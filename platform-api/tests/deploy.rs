//! Deployments against the real daemon and the real Docker Engine: routing, rolling without a
//! failed request, failures that roll back fast with the container's logs, 409, rollback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

#[test]
fn deploy_routes_traffic_and_a_second_release_replaces_the_first() {
    let d = Daemon::start();
    d.create_service("hello");
    let dep = d.deploy_and_wait("hello", "prod", &manifest("hello", "v1", 2));
    assert_eq!(dep["state"], "succeeded", "{dep:#}");
    assert_eq!(d.route("hello", "prod", "/"), (200, "v1\n".into()));

    let dep = d.deploy_and_wait("hello", "prod", &manifest("hello", "v2", 2));
    assert_eq!(dep["state"], "succeeded", "{dep:#}");
    assert_eq!(dep["version"], 2);
    assert_eq!(dep["previous_version"], 1);
    assert_eq!(d.route("hello", "prod", "/"), (200, "v2\n".into()));

    let kinds: Vec<&str> = dep["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"started"));
    assert_eq!(kinds.last(), Some(&"succeeded"));
    assert_eq!(
        kinds.iter().filter(|k| **k == "instance-healthy").count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "instance-stopped").count(),
        2,
        "{kinds:?}"
    );

    let (_, svc) = d.get("/v1/services/hello");
    let prod = &svc["environments"][0];
    assert_eq!(prod["env"], "prod");
    assert_eq!(prod["release"]["version"], 2);
    assert_eq!(
        prod["url"],
        format!("http://hello.localhost:{}", d.router_port)
    );
    let instances = prod["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 2);
    assert!(
        instances
            .iter()
            .all(|i| i["healthy"] == true && i["version"] == 2),
        "{instances:?}"
    );

    let containers = d.containers();
    assert_eq!(
        containers.len(),
        2,
        "only the new release's containers remain: {containers:?}"
    );
    let release = dep["release"].as_str().unwrap();
    assert!(
        containers
            .iter()
            .all(|(_, r, running)| r == release && *running),
        "{containers:?}"
    );

    // Another environment is served at its own host.
    let dep = d.deploy_and_wait("hello", "staging", &manifest("hello", "s1", 1));
    assert_eq!(dep["state"], "succeeded");
    assert_eq!(d.route("hello", "staging", "/"), (200, "s1\n".into()));
    assert_eq!(d.route("hello", "prod", "/"), (200, "v2\n".into()));
    let (status, _) = d.route("nothing", "prod", "/");
    assert_eq!(status, 404);
}

#[test]
fn a_rolling_deploy_under_constant_load_fails_no_request() {
    let d = Daemon::start();
    d.create_service("steady");
    assert_eq!(
        d.deploy_and_wait("steady", "prod", &manifest("steady", "v1", 2))["state"],
        "succeeded"
    );

    let load = Load::start(d.router_port, d.host("steady", "prod"));
    std::thread::sleep(Duration::from_millis(300));
    let dep = d.deploy_and_wait("steady", "prod", &manifest("steady", "v2", 2));
    std::thread::sleep(Duration::from_millis(300));
    let (ok, failed, errors) = load.finish();
    assert_eq!(dep["state"], "succeeded", "{dep:#}");
    assert_eq!(
        failed, 0,
        "failed requests during the rolling deploy: {errors:?}"
    );
    assert!(
        ok > 50,
        "the load sent too few requests to prove anything: {ok}"
    );
    assert_eq!(d.route("steady", "prod", "/"), (200, "v2\n".into()));
}

#[test]
fn a_release_that_exits_at_start_fails_fast_and_rolls_back_with_its_logs() {
    let d = Daemon::start();
    d.create_service("crashy");
    assert_eq!(
        d.deploy_and_wait("crashy", "prod", &manifest("crashy", "v1", 1))["state"],
        "succeeded"
    );

    let load = Load::start(d.router_port, d.host("crashy", "prod"));
    let started = Instant::now();
    let id = d.deploy("crashy", "prod", &crashing_manifest("crashy", 1));
    let dep = d.wait_deployment("crashy", &id, Duration::from_secs(60));
    let elapsed = started.elapsed();
    let (ok, failed, errors) = load.finish();

    assert_eq!(dep["state"], "rolled_back", "{dep:#}");
    assert!(
        elapsed < Duration::from_secs(10),
        "it must not wait out the 20 s grace: {elapsed:?}"
    );
    let reason = dep["reason"].as_str().unwrap();
    assert!(reason.contains("exited with code 3"), "{reason}");
    let failed_step = dep["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "instance-failed")
        .unwrap();
    let logs: Vec<&str> = failed_step["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        logs.contains(&"fatal: no config"),
        "the container's last lines: {logs:?}"
    );
    assert_eq!(
        failed, 0,
        "the previous release serves throughout: {errors:?}"
    );
    assert!(ok > 0);
    assert_eq!(d.route("crashy", "prod", "/"), (200, "v1\n".into()));
    assert_eq!(d.current_release("crashy", "prod")["version"], 1);
    assert_eq!(
        d.containers().len(),
        1,
        "the failed container is gone: {:?}",
        d.containers()
    );
}

#[test]
fn a_release_that_never_turns_healthy_fails_after_its_grace() {
    let d = Daemon::start();
    d.create_service("sick");
    assert_eq!(
        d.deploy_and_wait("sick", "prod", &manifest("sick", "v1", 1))["state"],
        "succeeded"
    );

    let load = Load::start(d.router_port, d.host("sick", "prod"));
    let started = Instant::now();
    let id = d.deploy("sick", "prod", &unhealthy_manifest("sick", "3s"));
    let dep = d.wait_deployment("sick", &id, Duration::from_secs(60));
    let elapsed = started.elapsed();
    let (_, failed, errors) = load.finish();

    assert_eq!(dep["state"], "rolled_back", "{dep:#}");
    assert!(
        elapsed >= Duration::from_secs(3) && elapsed < Duration::from_secs(3 + 10),
        "{elapsed:?}"
    );
    let reason = dep["reason"].as_str().unwrap();
    assert!(
        reason.contains("did not become healthy within 3s"),
        "{reason}"
    );
    assert!(reason.contains("GET /_info"), "{reason}");
    let failed_step = dep["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "instance-failed")
        .unwrap();
    assert!(
        failed_step["logs"].as_array().unwrap().iter().any(|l| l
            .as_str()
            .unwrap()
            .contains("serving without a health endpoint")),
        "{failed_step}"
    );
    assert_eq!(
        failed, 0,
        "the previous release serves throughout: {errors:?}"
    );
    assert_eq!(d.route("sick", "prod", "/"), (200, "v1\n".into()));
}

#[test]
fn a_first_release_that_fails_leaves_nothing_running() {
    let d = Daemon::start();
    d.create_service("doomed");
    let id = d.deploy("doomed", "prod", &crashing_manifest("doomed", 2));
    let dep = d.wait_deployment("doomed", &id, Duration::from_secs(60));
    assert_eq!(dep["state"], "rolled_back", "{dep:#}");
    assert!(d.containers().is_empty(), "{:?}", d.containers());
    assert_eq!(d.current_release("doomed", "prod"), serde_json::Value::Null);
    assert_eq!(d.route("doomed", "prod", "/").0, 503);
}

#[test]
fn a_second_deployment_while_one_runs_gets_409_naming_it() {
    let d = Daemon::start();
    d.create_service("busy");
    // Slow to become healthy: the first deployment is still running when the second comes.
    let slow = manifest_with("busy", "v1", 1, "")
        .replace("mkdir -p /tmp/www", "sleep 2 && mkdir -p /tmp/www");
    let first = d.deploy("busy", "prod", &slow);
    let (status, problem) = d.post(
        "/v1/services/busy/deployments",
        json!({ "env": "prod", "image": "busybox:stable", "manifest": manifest("busy", "v2", 1) }),
    );
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["code"], "deployment-in-progress");
    assert_eq!(problem["deployment"], first);
    assert!(problem["request_id"].is_string());
    // Another environment is not blocked.
    let other = d.deploy("busy", "staging", &manifest("busy", "s1", 1));
    assert_eq!(
        d.wait_deployment("busy", &first, Duration::from_secs(60))["state"],
        "succeeded"
    );
    assert_eq!(
        d.wait_deployment("busy", &other, Duration::from_secs(60))["state"],
        "succeeded"
    );
    // Once it is done, the next one goes through.
    assert_eq!(
        d.deploy_and_wait("busy", "prod", &manifest("busy", "v2", 1))["state"],
        "succeeded"
    );
}

#[test]
fn rollback_restores_the_previous_release() {
    let d = Daemon::start();
    d.create_service("back");
    assert_eq!(
        d.deploy_and_wait("back", "prod", &manifest("back", "v1", 1))["state"],
        "succeeded"
    );
    assert_eq!(
        d.deploy_and_wait("back", "prod", &manifest("back", "v2", 1))["state"],
        "succeeded"
    );
    assert_eq!(d.route("back", "prod", "/").1, "v2\n");

    let (status, dep) = d.post("/v1/services/back/rollback", json!({ "env": "prod" }));
    assert_eq!(status, 202, "{dep}");
    assert_eq!(dep["version"], 1);
    let dep = d.wait_deployment("back", dep["id"].as_str().unwrap(), Duration::from_secs(60));
    assert_eq!(dep["state"], "succeeded", "{dep:#}");
    assert_eq!(d.route("back", "prod", "/").1, "v1\n");

    let (_, releases) = d.get("/v1/services/back/releases?env=prod");
    let releases = releases.as_array().unwrap();
    assert_eq!(
        releases.len(),
        2,
        "a rollback deploys an existing release: no new one"
    );
    let current: Vec<u64> = releases
        .iter()
        .filter(|r| r["current"] == true)
        .map(|r| r["version"].as_u64().unwrap())
        .collect();
    assert_eq!(current, [1]);
    assert_eq!(
        releases[0]["manifest"]["run"]["env"]["VERSION"], "v2",
        "releases keep their effective manifest"
    );

    // Forward again to a named release.
    let (status, dep) = d.post(
        "/v1/services/back/rollback",
        json!({ "env": "prod", "release": 2 }),
    );
    assert_eq!(status, 202, "{dep}");
    d.wait_deployment("back", dep["id"].as_str().unwrap(), Duration::from_secs(60));
    assert_eq!(d.route("back", "prod", "/").1, "v2\n");
    let (status, problem) = d.post(
        "/v1/services/back/rollback",
        json!({ "env": "prod", "release": 9 }),
    );
    assert_eq!(
        (status, problem["code"].as_str()),
        (404, Some("release-not-found"))
    );
}

#[test]
fn an_unchanged_deploy_makes_no_new_release() {
    let d = Daemon::start();
    d.create_service("same");
    let m = manifest("same", "v1", 1);
    let first = d.deploy_and_wait("same", "prod", &m);
    let again = d.deploy_and_wait("same", "prod", &m);
    assert_eq!(again["state"], "succeeded");
    assert_eq!(again["release"], first["release"]);
    let (_, releases) = d.get("/v1/services/same/releases");
    assert_eq!(releases.as_array().unwrap().len(), 1);
    assert_eq!(d.containers().len(), 1);
}

#[test]
fn invalid_deployments_are_refused_with_problem_documents() {
    let d = Daemon::start();
    d.create_service("picky");
    let post = |body: serde_json::Value| d.post("/v1/services/picky/deployments", body);

    let (status, p) = post(
        json!({ "env": "prod", "image": "busybox:stable", "manifest": "name = \"Picky\"\nowner = \"x\"\n" }),
    );
    assert_eq!(
        (status, p["code"].as_str()),
        (422, Some("invalid-manifest"))
    );
    assert!(
        p["detail"].as_str().unwrap().contains("app.toml:1:8"),
        "{p}"
    );
    let (status, p) = post(
        json!({ "env": "prod", "image": "no-such-image:1", "manifest": manifest("picky", "v1", 1) }),
    );
    assert_eq!(
        (status, p["code"].as_str()),
        (422, Some("image-not-found")),
        "{p}"
    );
    let (status, p) = post(
        json!({ "env": "Prod", "image": "busybox:stable", "manifest": manifest("picky", "v1", 1) }),
    );
    assert_eq!((status, p["code"].as_str()), (400, Some("invalid-env")));
    let (status, p) = post(
        json!({ "env": "prod", "image": "busybox:stable", "manifest": manifest("other", "v1", 1) }),
    );
    assert_eq!(
        (status, p["code"].as_str()),
        (422, Some("manifest-name-mismatch"))
    );
    let (status, p) = post(json!({ "env": "prod" }));
    assert_eq!(
        (status, p["code"].as_str()),
        (422, Some("invalid-body")),
        "{p}"
    );
    assert_eq!(p["status"], 422);
    assert!(p["type"].as_str().unwrap().starts_with("https://"));
}

#[test]
fn scale_changes_the_instance_count_of_the_current_release_until_the_next_release() {
    let d = Daemon::start();
    d.create_service("scaled");
    let first = d.deploy_and_wait("scaled", "prod", &manifest("scaled", "v1", 1));
    let scale = |n: u32| {
        let (status, dep) = d.post(
            "/v1/services/scaled/scale",
            json!({ "env": "prod", "replicas": n }),
        );
        assert_eq!(status, 202, "{dep}");
        d.wait_deployment(
            "scaled",
            dep["id"].as_str().unwrap(),
            Duration::from_secs(60),
        )
    };
    let up = scale(3);
    assert_eq!(up["state"], "succeeded", "{up:#}");
    assert_eq!(
        up["release"], first["release"],
        "scaling makes no new release"
    );
    assert_eq!(d.containers().len(), 3);
    assert_eq!(scale(2)["state"], "succeeded");
    assert_eq!(d.containers().len(), 2);
    // A new release brings its own count back.
    assert_eq!(
        d.deploy_and_wait("scaled", "prod", &manifest("scaled", "v2", 1))["state"],
        "succeeded"
    );
    assert_eq!(d.containers().len(), 1);
    let (status, p) = d.post(
        "/v1/services/scaled/scale",
        json!({ "env": "qa", "replicas": 2 }),
    );
    assert_eq!(
        (status, p["code"].as_str()),
        (409, Some("nothing-to-scale"))
    );
}

#[test]
fn an_environment_can_be_removed_alone() {
    let d = Daemon::start();
    d.create_service("envs");
    assert_eq!(
        d.deploy_and_wait("envs", "prod", &manifest("envs", "p", 1))["state"],
        "succeeded"
    );
    assert_eq!(
        d.deploy_and_wait("envs", "feature-x", &manifest("envs", "f", 1))["state"],
        "succeeded"
    );
    assert_eq!(d.route("envs", "feature-x", "/"), (200, "f\n".into()));
    let (status, _) = d.delete("/v1/services/envs/environments/feature-x");
    assert_eq!(status, 204);
    assert_eq!(d.route("envs", "feature-x", "/").0, 404);
    assert_eq!(d.route("envs", "prod", "/"), (200, "p\n".into()));
    assert_eq!(d.containers().len(), 1);
    let (_, releases) = d.get("/v1/services/envs/releases?env=feature-x");
    assert!(releases.as_array().unwrap().is_empty());
    let (status, _) = d.delete("/v1/services/envs/environments/feature-x");
    assert_eq!(status, 404);
}
