//! Problems recorded from the real engine and router: an OOM kill (a container over its memory
//! limit), a crash loop (a container that exits at start again and again), a release answering
//! 500 to a third of its requests that clears after a rollback; the daemon killed and started
//! again in between loses none of them. Also the metrics kept per release, and another
//! tenant's member seeing none of it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Daemon, Load, OWNER, flaky_release, wait_until};
use serde_json::{Value, json};

const WINDOW: (&str, &str) = ("FAAS_PLATFORM_PROBLEM_WINDOW", "8s");

/// Serves its health for 6 s, then its process outgrows the 32 MiB limit (again after every
/// restart).
fn oom_manifest(name: &str) -> String {
    format!(
        r#"name = "{name}"
owner = "{OWNER}"
[run]
port = 8080
command = ["sh", "-c", "echo booting; mkdir -p /tmp/www && echo ok > /tmp/www/_info && httpd -p 8080 -h /tmp/www; sleep 6; echo 'loading the whole cache into memory'; exec dd if=/dev/zero of=/dev/null bs=200M count=1"]
[health]
path = "/_info"
interval = "500ms"
grace = "20s"
[size]
cpu = 0.1
memory = "32Mi"
"#
    )
}

/// Serves its health for 6 s and exits; every later start exits at once.
fn crash_manifest(name: &str) -> String {
    format!(
        r#"name = "{name}"
owner = "{OWNER}"
[run]
port = 8080
command = ["sh", "-c", "if [ -e /tmp/booted ]; then echo 'fatal: the config file is gone'; exit 3; fi; touch /tmp/booted; mkdir -p /tmp/www && echo ok > /tmp/www/_info && httpd -p 8080 -h /tmp/www; sleep 6; exit 1"]
[health]
path = "/_info"
interval = "500ms"
grace = "20s"
[size]
cpu = 0.1
"#
    )
}

/// Serves its health while holding 30 MiB of its 32 MiB in memory (a file in /dev/shm).
fn hungry_manifest(name: &str) -> String {
    format!(
        r#"name = "{name}"
owner = "{OWNER}"
[run]
port = 8080
command = ["sh", "-c", "dd if=/dev/zero of=/dev/shm/fill bs=1M count=30 2>/dev/null; mkdir -p /tmp/www && echo ok > /tmp/www/_info && exec httpd -f -p 8080 -h /tmp/www"]
[health]
path = "/_info"
interval = "500ms"
grace = "20s"
[size]
cpu = 0.1
memory = "32Mi"
"#
    )
}

fn problems(d: &Daemon, service: &str) -> Vec<Value> {
    let (status, body) = d.get(&format!("/v1/services/{service}/problems"));
    assert_eq!(status, 200, "{body}");
    body["problems"].as_array().cloned().unwrap_or_default()
}

fn find(d: &Daemon, service: &str, kind: &str) -> Option<Value> {
    problems(d, service).into_iter().find(|p| p["kind"] == kind)
}

fn wait_problem(d: &Daemon, service: &str, kind: &str, what: &str) -> Value {
    let mut found = None;
    wait_until(what, Duration::from_secs(90), || {
        found = find(d, service, kind);
        found.is_some()
    });
    found.unwrap()
}

#[test]
fn oom_kills_crash_loops_and_5xx_are_recorded_cleared_and_survive_a_restart() {
    let mut d = Daemon::start_with(&[WINDOW]);
    for name in ["oomer", "crasher", "flaky", "hungry"] {
        d.create_service(name);
    }
    let first = d.deploy_and_wait("oomer", "prod", &oom_manifest("oomer"));
    assert_eq!(first["state"], "succeeded", "{first:#}");
    let first = d.deploy_and_wait("crasher", "prod", &crash_manifest("crasher"));
    assert_eq!(first["state"], "succeeded", "{first:#}");
    let first = d.deploy_and_wait("hungry", "prod", &hungry_manifest("hungry"));
    assert_eq!(first["state"], "succeeded", "{first:#}");

    // The OOM kill: its own kind (not a plain exit), with the lines before it.
    let oom = wait_problem(&d, "oomer", "oom-killed", "an OOM kill of oomer");
    assert!(oom["ended_at"].is_null(), "{oom:#}");
    assert!(
        oom["summary"].as_str().unwrap().contains("OOM killer"),
        "{oom:#}"
    );
    assert!(
        oom["summary"].as_str().unwrap().contains("32 MiB"),
        "{oom:#}"
    );
    let logs = oom["logs"].to_string();
    assert!(
        logs.contains("loading the whole cache into memory"),
        "{oom:#}"
    );
    assert_eq!(oom["version"], 1);

    // The crash loop: deaths the platform did not ask for, with the reason in the logs.
    let lp = wait_problem(&d, "crasher", "crash-loop", "a crash loop of crasher");
    assert!(lp["count"].as_u64().unwrap() >= 3, "{lp:#}");
    assert!(
        lp["logs"]
            .to_string()
            .contains("fatal: the config file is gone"),
        "{lp:#}"
    );
    assert!(
        find(&d, "crasher", "oom-killed").is_none(),
        "a plain exit is no OOM kill"
    );

    // Memory near the limit, from the readings.
    let near = wait_problem(
        &d,
        "hungry",
        "memory-near-limit",
        "hungry's memory near its limit",
    );
    assert!(
        near["summary"]
            .as_str()
            .unwrap()
            .contains("of its 32 MiB memory"),
        "{near:#}"
    );

    // A release answering 500 to a third of its requests.
    let v1 = d.deploy_and_wait("flaky", "prod", &flaky_release("flaky", "v1", 0, ""));
    assert_eq!(v1["state"], "succeeded");
    let v2 = d.deploy_and_wait("flaky", "prod", &flaky_release("flaky", "v2", 33, ""));
    assert_eq!(v2["state"], "succeeded");
    let load = Load::start_path(d.router_port, d.host("flaky", "prod"), "/cgi-bin/v");
    let high = wait_problem(&d, "flaky", "high-5xx", "a 5xx problem of flaky v2");
    assert_eq!(high["version"], 2, "{high:#}");
    assert!(
        high["summary"].as_str().unwrap().contains("5xx"),
        "{high:#}"
    );

    // The daemon dies and comes back: every problem is still there, the same ones, open.
    d.kill();
    d.restart(&[WINDOW]);
    for (svc, p) in [("oomer", &oom), ("crasher", &lp), ("flaky", &high)] {
        let again = find(&d, svc, p["kind"].as_str().unwrap()).expect("kept across the restart");
        assert_eq!(again["id"], p["id"]);
        assert!(again["ended_at"].is_null(), "{again:#}");
    }
    // And it goes on counting: the OOM kills of the restarted container add to the same problem.
    let before = oom["count"].as_u64().unwrap();
    wait_until("another OOM kill counted", Duration::from_secs(60), || {
        find(&d, "oomer", "oom-killed").is_some_and(|p| p["count"].as_u64().unwrap() > before)
    });

    // A rollback to v1: the problem of v2 clears once its window has passed.
    let (status, body) = d.post("/v1/services/flaky/rollback", json!({ "env": "prod" }));
    assert_eq!(status, 202, "{body}");
    let back = d.wait_deployment(
        "flaky",
        body["id"].as_str().unwrap(),
        Duration::from_secs(60),
    );
    assert_eq!(back["state"], "succeeded");
    wait_until(
        "the 5xx problem of v2 clears",
        Duration::from_secs(60),
        || {
            problems(&d, "flaky")
                .iter()
                .any(|p| p["id"] == high["id"] && !p["ended_at"].is_null())
        },
    );
    let (ok, _failed, _) = load.finish();
    assert!(ok > 0);

    // The figures kept per release: v1 and v2 both served, v2 with its 5xx.
    let (status, m) = d.get("/v1/services/flaky/metrics?env=prod&since=15m");
    assert_eq!(status, 200, "{m}");
    let releases = m["releases"].as_array().unwrap();
    let v2 = releases
        .iter()
        .find(|r| r["version"] == 2)
        .expect("v2 measured");
    assert!(v2["requests"].as_u64().unwrap() > 0, "{m:#}");
    assert!(v2["error_ratio"].as_f64().unwrap() > 0.1, "{m:#}");
    assert!(v2["p99_ms"].as_f64().is_some(), "{m:#}");
    let v1 = releases
        .iter()
        .find(|r| r["version"] == 1)
        .expect("v1 measured");
    assert_eq!(v1["current"], true);
    assert!(v1["memory_bytes"].as_u64().unwrap() > 0, "{m:#}");
    assert!(v1["memory_percent"].as_f64().unwrap() > 0.0, "{m:#}");
    assert!(!m["series"].as_array().unwrap().is_empty());

    // Bad input is refused with a reason.
    let (status, p) = d.get("/v1/services/flaky/metrics?since=forever");
    assert_eq!((status, p["code"].as_str()), (400, Some("invalid-since")));
    let (status, p) = d.get("/v1/services/nope/problems");
    assert_eq!(
        (status, p["code"].as_str()),
        (404, Some("service-not-found"))
    );

    // Another tenant's member sees none of it, and cannot restart its instances.
    let (status, t) = d.post(
        "/v1/tokens",
        json!({ "tenant": "other@example.com", "role": "member" }),
    );
    assert_eq!(status, 201, "{t}");
    let other = t["token"].as_str().unwrap();
    for path in ["/v1/services/flaky/problems", "/v1/services/flaky/metrics"] {
        let (status, _) = d.get_as(other, path);
        assert_eq!(status, 404, "{path}");
    }
    let (_, instances) = d.get("/v1/services/flaky/instances?env=prod");
    let id = instances[0]["id"].as_str().unwrap();
    let (status, _) = d.post_as(
        other,
        &format!("/v1/services/flaky/instances/{id}/restart"),
        json!({}),
    );
    assert_eq!(status, 404);
    // Its owner can.
    let (status, body) = d.post(
        &format!("/v1/services/flaky/instances/{id}/restart"),
        json!({}),
    );
    assert_eq!(status, 200, "{body}");
}
