//! A canary on a service nobody calls always ends: after `deploy.canary.max_wait` without
//! `min_requests`, `on_quiet` rolls it back (the default) or promotes it, with the figures in
//! the history; a `--manual` canary still waits to be told. Real daemon, router and Docker.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn quiet_canary(on_quiet: &str) -> String {
    format!(
        "[deploy]\nstrategy = \"canary\"\n[deploy.canary]\nsteps = [50, 100]\ninterval = \"1s\"\nmin_requests = 50\nmax_wait = \"3s\"\n{on_quiet}"
    )
}

fn step<'a>(dep: &'a Value, kind: &str) -> Option<&'a Value> {
    dep["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == kind)
}

fn at(step: &Value) -> std::time::SystemTime {
    humantime::parse_rfc3339(step["at"].as_str().unwrap()).unwrap()
}

/// Seconds between the canary's step starting and the step of `kind` that ended it.
fn waited(dep: &Value, kind: &str) -> f64 {
    let start = at(step(dep, "canary-step").expect("a canary-step"));
    let end = at(step(dep, kind).unwrap_or_else(|| panic!("no {kind} step: {dep:#}")));
    end.duration_since(start).unwrap().as_secs_f64()
}

fn running_versions(d: &Daemon, service: &str) -> Vec<u64> {
    let (_, instances) = d.get(&format!("/v1/services/{service}/instances?env=prod"));
    let mut v: Vec<u64> = instances
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["version"].as_u64().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn a_quiet_canary_is_rolled_back_after_max_wait_by_default() {
    let d = Daemon::start();
    d.create_service("hush");
    let v1 = d.deploy_and_wait("hush", "prod", &manifest("hush", "v1", 1));
    assert_eq!(v1["state"], "succeeded", "{v1:#}");

    let dep = d.deploy_and_wait(
        "hush",
        "prod",
        &manifest_with("hush", "v2", 1, &quiet_canary("")),
    );
    assert_eq!(dep["state"], "rolled_back", "{dep:#}");
    let quiet = step(&dep, "canary-quiet").unwrap_or_else(|| panic!("{dep:#}"));
    assert!(
        quiet["canary"]["canary"]["requests"].as_u64().unwrap() < 50,
        "the step keeps the figures that decided: {quiet:#}"
    );
    let reason = dep["reason"].as_str().unwrap();
    assert!(
        reason.contains("min_requests")
            && reason.contains("max_wait = 3s")
            && reason.contains("rollback"),
        "{reason}"
    );
    assert!(
        step(&dep, "canary-waiting").is_some(),
        "it waited an interval first: {dep:#}"
    );
    let waited = waited(&dep, "canary-quiet");
    assert!(
        (3.0..=4.0).contains(&waited),
        "ended after max_wait (3 s) and within one interval more, not {waited} s"
    );
    assert_eq!(d.current_release("hush", "prod")["version"], 1);
    wait_until("only v1 runs", Duration::from_secs(30), || {
        running_versions(&d, "hush") == [1]
    });
}

#[test]
fn a_quiet_canary_with_on_quiet_promote_takes_every_request_after_max_wait() {
    let d = Daemon::start();
    d.create_service("calm");
    let v1 = d.deploy_and_wait("calm", "prod", &manifest("calm", "v1", 2));
    assert_eq!(v1["state"], "succeeded", "{v1:#}");

    let table = quiet_canary("on_quiet = \"promote\"\n");
    let dep = d.deploy_and_wait("calm", "prod", &manifest_with("calm", "v2", 2, &table));
    assert_eq!(dep["state"], "succeeded", "{dep:#}");
    let waited = waited(&dep, "canary-quiet-promoted");
    assert!(
        (3.0..=4.0).contains(&waited),
        "promoted after max_wait (3 s) and within one interval more, not {waited} s"
    );
    assert!(step(&dep, "canary-complete").is_some(), "{dep:#}");
    assert_eq!(d.current_release("calm", "prod")["version"], 2);
    wait_until("both instances are v2", Duration::from_secs(30), || {
        running_versions(&d, "calm") == [2, 2]
    });
    let (status, body) = d.route("calm", "prod", "/");
    assert_eq!((status, body.trim()), (200, "v2"));
}

#[test]
fn a_manual_quiet_canary_waits_past_max_wait_until_told() {
    let d = Daemon::start();
    d.create_service("mute");
    d.deploy_and_wait("mute", "prod", &manifest("mute", "v1", 1));
    let (status, body) = d.post(
        "/v1/services/mute/deployments",
        json!({ "env": "prod", "image": "busybox:stable", "manual": true,
                "manifest": manifest_with("mute", "v2", 1, &quiet_canary("")) }),
    );
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    // Past max_wait and one interval more, it is still under way.
    wait_until("two waits past max_wait", Duration::from_secs(30), || {
        let (_, dep) = d.get(&format!("/v1/services/mute/deployments/{id}"));
        dep["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["kind"] == "canary-waiting")
            .count()
            >= 5
    });
    let (_, dep) = d.get(&format!("/v1/services/mute/deployments/{id}"));
    assert_eq!(dep["state"], "running", "{dep:#}");
    assert!(step(&dep, "canary-quiet").is_none(), "{dep:#}");
    let (status, _) = d.post("/v1/services/mute/canary/abort", json!({ "env": "prod" }));
    assert_eq!(status, 202);
    let dep = d.wait_deployment("mute", &id, Duration::from_secs(30));
    assert_eq!(dep["state"], "rolled_back", "{dep:#}");
}
