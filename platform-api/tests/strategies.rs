//! Canary and blue-green deployments against the real daemon, router and Docker Engine: weights
//! as configured, a faulty canary rolled back by the router's own figures, promotion without a
//! failed request, a blue-green switch and switch-back under load, and both surviving a
//! restart of the daemon.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// A busybox service whose `/` says its version, with a `[deploy]` table.
fn release(name: &str, version: &str, replicas: u32, deploy: &str) -> String {
    manifest_with(name, version, replicas, deploy)
}

fn get(d: &Daemon, host: &str, path: &str, cookie: Option<&str>) -> (u16, String) {
    let mut r = d
        .http
        .get(format!("http://127.0.0.1:{}{path}", d.router_port))
        .header("host", host);
    if let Some(c) = cookie {
        r = r.header("cookie", c);
    }
    let r = r.send().unwrap();
    (r.status().as_u16(), r.text().unwrap_or_default())
}

/// How many of `n` requests to `/` the release answering `version` took.
fn share(d: &Daemon, host: &str, version: &str, n: usize) -> usize {
    (0..n)
        .filter(|_| {
            let (status, body) = get(d, host, "/", None);
            assert_eq!(status, 200, "{body}");
            body.trim() == version
        })
        .count()
}

fn canary(d: &Daemon, service: &str) -> (u16, Value) {
    d.get(&format!("/v1/services/{service}/canary?env=prod"))
}

/// Waits until the canary takes `weight` percent; returns its status.
fn wait_weight(d: &Daemon, service: &str, weight: u64) -> Value {
    let mut last = Value::Null;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let (status, body) = canary(d, service);
        if status == 200 && body["report"]["canary"]["weight"] == weight {
            return body;
        }
        last = body;
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the canary did not reach {weight}%: {last:#}\n{}", d.log());
}

fn kinds(dep: &Value) -> Vec<String> {
    dep["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap().to_owned())
        .collect()
}

fn has_step(dep: &Value, kind: &str) -> bool {
    kinds(dep).iter().any(|k| k == kind)
}

fn steps_of(d: &Daemon, service: &str, id: &str) -> Vec<String> {
    let (_, dep) = d.get(&format!("/v1/services/{service}/deployments/{id}"));
    kinds(&dep)
}

/// Deploys to prod and waits; the deployment must succeed.
fn deployed(d: &Daemon, service: &str, manifest: &str) -> Value {
    let dep = d.deploy_and_wait(service, "prod", manifest);
    assert_eq!(dep["state"], "succeeded", "{dep:#}");
    dep
}

/// Only the release `dep` deployed runs, on its two containers.
fn only_running(d: &Daemon, dep: &Value) {
    let release = dep["release"].as_str().unwrap().to_owned();
    assert_eq!(releases_running(d), vec![release.clone(), release]);
}

fn releases_running(d: &Daemon) -> Vec<String> {
    let mut r: Vec<String> = d
        .containers()
        .into_iter()
        .filter(|(_, _, running)| *running)
        .map(|(_, release, _)| release)
        .collect();
    r.sort();
    r
}

#[test]
fn canary_weights_hold_at_each_step_until_promoted() {
    let d = Daemon::start();
    d.create_service("weights");
    deployed(&d, "weights", &release("weights", "v1", 2, ""));
    let host = d.host("weights", "prod");

    let deploy = canary_table("[10, 50, 100]", "1s", 1, false);
    let id = d.deploy("weights", "prod", &release("weights", "v2", 2, &deploy));
    for weight in [10u64, 50] {
        let status = wait_weight(&d, "weights", weight);
        assert_eq!(status["auto"], false);
        let (_, svc) = d.get("/v1/services/weights");
        assert_eq!(svc["environments"][0]["canary_weight"], weight, "{svc:#}");
        let n = 2000;
        let got = share(&d, &host, "v2", n);
        let observed = got as f64 * 100.0 / n as f64;
        assert!(
            (observed - weight as f64).abs() <= 3.0,
            "{weight}% configured, {observed:.1}% observed"
        );
        // The router's own figures count the same requests.
        let (_, status) = canary(&d, "weights");
        let counted = status["report"]["canary"]["requests"].as_u64().unwrap();
        assert!(counted >= got as u64, "{status:#}");
        // A client with a session stays on one side.
        let sides: std::collections::HashSet<String> = (0..30)
            .map(|_| get(&d, &host, "/", Some("theme=dark; session=4f2a9c")).1)
            .collect();
        assert_eq!(sides.len(), 1, "{sides:?}");
        // Held: the step does not move by itself.
        wait_until("the step holds", Duration::from_secs(20), || {
            steps_of(&d, "weights", &id).contains(&"canary-holding".to_owned())
                && canary(&d, "weights").1["holding"] == true
        });
        let (code, body) = d.post(
            "/v1/services/weights/canary/promote",
            json!({ "env": "prod" }),
        );
        assert_eq!(code, 202, "{body}");
        assert_eq!(body["pending"], "promote");
    }
    let dep = d.wait_deployment("weights", &id, Duration::from_secs(60));
    assert_eq!(dep["state"], "succeeded", "{dep:#}");
    let k = kinds(&dep);
    assert_eq!(k.iter().filter(|k| *k == "canary-step").count(), 2, "{k:?}");
    assert_eq!(
        k.iter().filter(|k| *k == "canary-promoted").count(),
        2,
        "{k:?}"
    );
    assert!(k.contains(&"canary-complete".to_owned()), "{k:?}");
    // Each step records its weights and figures.
    let held = dep["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "canary-holding")
        .unwrap();
    assert_eq!(held["canary"]["canary"]["weight"], 10);
    assert_eq!(held["canary"]["baseline"]["weight"], 90);
    assert_eq!(held["canary"]["baseline"]["version"], 1);
    assert_eq!(share(&d, &host, "v2", 100), 100);
    only_running(&d, &dep);
    // No canary any more.
    assert_eq!(canary(&d, "weights").0, 409);
}

#[test]
fn a_faulty_canary_is_rolled_back_by_the_routers_figures() {
    let d = Daemon::start();
    d.create_service("faulty");
    let v1 = deployed(&d, "faulty", &flaky_release("faulty", "v1", 0, ""));
    let host = d.host("faulty", "prod");
    assert_eq!(get(&d, &host, "/cgi-bin/v", None), (200, "v1\n".into()));

    // Clients in the background, each answer with its time.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (stop, port, host) = (stop.clone(), d.router_port, host.clone());
        std::thread::spawn(move || {
            let client = reqwest::blocking::Client::new();
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let r = client
                    .get(format!("http://127.0.0.1:{port}/cgi-bin/v"))
                    .header("host", &host)
                    .send()
                    .unwrap();
                let status = r.status().as_u16();
                seen.push((Instant::now(), status, r.text().unwrap_or_default()));
            }
            seen
        })
    };
    let interval = Duration::from_secs(10);
    let deploy = canary_table("[50, 100]", "10s", 40, true);
    let started = Instant::now();
    let id = d.deploy(
        "faulty",
        "prod",
        &flaky_release("faulty", "v2", 30, &deploy),
    );
    let dep = d.wait_deployment("faulty", &id, Duration::from_secs(90));
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = load.join().unwrap();

    assert_eq!(dep["state"], "rolled_back", "{dep:#}");
    let reason = dep["reason"].as_str().unwrap();
    assert!(reason.contains("5xx ratio"), "{reason}");
    assert!(reason.contains("max_error_rate 5.0%"), "{reason}");
    let failed = dep["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "analysis-failed")
        .unwrap_or_else(|| panic!("{dep:#}"));
    let report = &failed["canary"];
    assert_eq!(report["canary"]["weight"], 50);
    assert!(
        report["canary"]["requests"].as_u64().unwrap() >= 40,
        "{report:#}"
    );
    assert!(
        report["canary"]["error_rate"].as_f64().unwrap() > 0.1,
        "{report:#}"
    );
    assert_eq!(report["baseline"]["errors_5xx"], 0, "{report:#}");
    let k = kinds(&dep);
    assert!(
        !k.contains(&"canary-passed".to_owned()),
        "judged before the step passed: {k:?}"
    );

    // Every 5xx came from the canary, within one interval, and none after the rollback.
    let errors: Vec<&(Instant, u16, String)> = seen.iter().filter(|(_, s, _)| *s >= 500).collect();
    assert!(!errors.is_empty());
    assert!(
        errors
            .iter()
            .all(|(_, s, body)| *s == 500 && body == "v2 failed\n"),
        "{errors:?}"
    );
    let first = errors.first().unwrap().0;
    let last = errors.last().unwrap().0;
    assert!(last - first <= interval, "5xx for {:?}", last - first);
    assert!(first > started);
    assert!(seen.iter().any(|(_, s, _)| *s == 200));
    for _ in 0..100 {
        assert_eq!(get(&d, &host, "/cgi-bin/v", None), (200, "v1\n".into()));
    }
    only_running(&d, &v1);
}

#[test]
fn a_healthy_canary_promotes_through_every_step_without_a_failed_request() {
    let d = Daemon::start();
    d.create_service("smooth");
    deployed(&d, "smooth", &release("smooth", "v1", 2, ""));
    let load = Load::start(d.router_port, d.host("smooth", "prod"));
    let deploy = canary_table("[10, 50, 100]", "2500ms", 20, true);
    let id = d.deploy("smooth", "prod", &release("smooth", "v2", 2, &deploy));
    // Followed, the deployment also sends its figures so far while a step is measured.
    let events: Vec<Value> = d
        .http
        .get(d.api(&format!("/v1/services/smooth/deployments/{id}/events")))
        .bearer_auth(&d.token)
        .send()
        .unwrap()
        .text()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let dep = d.wait_deployment("smooth", &id, Duration::from_secs(60));
    let (ok, failed, errors) = load.finish();
    let progress: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "canary-progress")
        .collect();
    assert!(progress.len() >= 2, "{events:#?}");
    assert!(
        progress
            .iter()
            .all(|e| e["seq"] == 0 && e["canary"]["canary"]["requests"].is_u64())
    );
    assert!(
        !has_step(&dep, "canary-progress"),
        "not kept in the history"
    );
    assert_eq!(dep["state"], "succeeded", "{dep:#}");
    assert_eq!(failed, 0, "{errors:?}");
    assert!(ok > 100, "only {ok} requests");
    let k = kinds(&dep);
    assert_eq!(
        k.iter().filter(|k| *k == "canary-passed").count(),
        2,
        "{k:?}"
    );
    let passed: Vec<&Value> = dep["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "canary-passed")
        .collect();
    assert_eq!(passed[0]["canary"]["canary"]["weight"], 10);
    assert_eq!(passed[1]["canary"]["canary"]["weight"], 50);
    assert!(
        passed
            .iter()
            .all(|s| s["canary"]["canary"]["requests"].as_u64().unwrap() >= 20)
    );
    assert_eq!(d.route("smooth", "prod", "/"), (200, "v2\n".into()));
    only_running(&d, &dep);
}

#[test]
fn bluegreen_previews_switches_and_switches_back_under_load() {
    let d = Daemon::start();
    d.create_service("bg");
    let v1 = deployed(
        &d,
        "bg",
        &bluegreen_release("bg", "v1", "10m", "/cgi-bin/smoke", 0),
    );
    assert!(has_step(&v1, "no-baseline"), "{:?}", kinds(&v1));
    let main = d.host("bg", "prod");
    let (green, blue) = ("bg-prod-green.localhost", "bg-prod-blue.localhost");
    let (code, body) = get(&d, green, "/", None);
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("no-preview-set"), "{body}");

    let load = Load::start(d.router_port, main.clone());
    // The smoke check takes 3 s on each instance: the green set waits at its preview host
    // meanwhile.
    let id = d.deploy(
        "bg",
        "prod",
        &bluegreen_release("bg", "v2", "10m", "/cgi-bin/smoke", 3),
    );
    wait_until("the green set is ready", Duration::from_secs(60), || {
        steps_of(&d, "bg", &id).contains(&"green-ready".to_owned())
    });
    assert_eq!(get(&d, green, "/", None), (200, "v2\n".into()));
    assert_eq!(get(&d, blue, "/", None), (200, "v1\n".into()));
    let before_switch = share(&d, &main, "v1", 100);
    if !steps_of(&d, "bg", &id).contains(&"switched".to_owned()) {
        assert_eq!(
            before_switch, 100,
            "no request reaches green before the switch"
        );
    }
    let dep = d.wait_deployment("bg", &id, Duration::from_secs(60));
    assert_eq!(dep["state"], "succeeded", "{dep:#}");
    let k = kinds(&dep);
    assert!(
        k.contains(&"smoke-passed".to_owned()) && k.contains(&"switched".to_owned()),
        "{k:?}"
    );
    assert_eq!(share(&d, &main, "v2", 200), 200);
    // The previous set stays warm, reachable at the blue host only.
    assert_eq!(get(&d, blue, "/", None), (200, "v1\n".into()));
    assert_eq!(get(&d, green, "/", None), (200, "v2\n".into()));
    assert_eq!(releases_running(&d).len(), 4);
    let (_, svc) = d.get("/v1/services/bg");
    let prod = &svc["environments"][0];
    assert!(prod["standby_until"].is_string(), "{prod:#}");
    let mut roles: Vec<(u64, String)> = prod["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["version"].as_u64().unwrap(),
                i["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    roles.sort();
    assert_eq!(
        roles,
        [(1, "standby"), (1, "standby"), (2, "live"), (2, "live")].map(|(v, r)| (v, r.to_owned()))
    );

    // Rollback within keep_previous: a switch, no container started.
    let before: Vec<String> = d.containers().into_iter().map(|c| c.0).collect();
    let asked = Instant::now();
    let (code, rb) = d.post("/v1/services/bg/rollback", json!({ "env": "prod" }));
    assert_eq!(code, 202, "{rb}");
    wait_until("v1 serves again", Duration::from_secs(10), || {
        get(&d, &main, "/", None).1 == "v1\n"
    });
    let switched_back = asked.elapsed();
    let rb = d.wait_deployment("bg", rb["id"].as_str().unwrap(), Duration::from_secs(60));
    let (ok, failed, errors) = load.finish();
    assert_eq!(rb["state"], "succeeded", "{rb:#}");
    assert_eq!(rb["strategy"], "bluegreen");
    let k = kinds(&rb);
    assert!(!k.contains(&"instance-starting".to_owned()), "{k:?}");
    assert!(!k.contains(&"smoke-passed".to_owned()), "{k:?}");
    assert_eq!(failed, 0, "{errors:?}");
    assert!(ok > 100);
    assert_eq!(share(&d, &main, "v1", 200), 200);
    let after: Vec<String> = d.containers().into_iter().map(|c| c.0).collect();
    assert!(
        after.iter().all(|c| before.contains(c)),
        "a container was started: {after:?}"
    );
    only_running(&d, &v1);
    eprintln!("switch back seen by a client after {switched_back:?}");
}

#[test]
fn bluegreen_smoke_failure_keeps_the_old_set_and_the_warm_set_expires() {
    let d = Daemon::start();
    d.create_service("bgx");
    let v1 = deployed(
        &d,
        "bgx",
        &bluegreen_release("bgx", "v1", "2s", "/cgi-bin/smoke", 0),
    );

    // A smoke path that answers 404: no switch.
    let bad = d.deploy_and_wait(
        "bgx",
        "prod",
        &bluegreen_release("bgx", "v2", "2s", "/missing", 0),
    );
    assert_eq!(bad["state"], "rolled_back", "{bad:#}");
    assert!(
        bad["reason"]
            .as_str()
            .unwrap()
            .contains("smoke check GET /missing"),
        "{bad:#}"
    );
    assert_eq!(d.route("bgx", "prod", "/"), (200, "v1\n".into()));
    only_running(&d, &v1);

    // A good one switches; its previous set stops when keep_previous ends.
    let good = deployed(
        &d,
        "bgx",
        &bluegreen_release("bgx", "v3", "2s", "/cgi-bin/smoke", 0),
    );
    assert_eq!(d.route("bgx", "prod", "/"), (200, "v3\n".into()));
    let v3_release = good["release"].as_str().unwrap().to_owned();
    wait_until("the warm set stops", Duration::from_secs(40), || {
        releases_running(&d) == vec![v3_release.clone(), v3_release.clone()]
    });
    let (code, _) = get(&d, "bgx-prod-blue.localhost", "/", None);
    assert_eq!(code, 404);
    // Rolling back now deploys v1 again as a new blue-green set.
    let (code, rb) = d.post("/v1/services/bgx/rollback", json!({ "env": "prod" }));
    assert_eq!(code, 202, "{rb}");
    let rb = d.wait_deployment("bgx", rb["id"].as_str().unwrap(), Duration::from_secs(60));
    assert_eq!(rb["state"], "succeeded", "{rb:#}");
    assert!(has_step(&rb, "instance-starting"));
    assert_eq!(d.route("bgx", "prod", "/"), (200, "v1\n".into()));
}

#[test]
fn a_restarted_daemon_resumes_the_canary_at_its_step_and_weight() {
    let mut d = Daemon::start();
    d.create_service("resume");
    deployed(&d, "resume", &release("resume", "v1", 2, ""));
    let host = d.host("resume", "prod");
    let deploy = canary_table("[10, 50, 100]", "1s", 1, false);
    let id = d.deploy("resume", "prod", &release("resume", "v2", 2, &deploy));
    wait_weight(&d, "resume", 10);
    let (code, body) = d.post(
        "/v1/services/resume/canary/promote",
        json!({ "env": "prod" }),
    );
    assert_eq!(code, 202, "{body}");
    wait_weight(&d, "resume", 50);

    d.restart(&[]);
    let status = wait_weight(&d, "resume", 50);
    assert_eq!(status["report"]["step"], 2);
    assert_eq!(status["deployment"], id.as_str());
    let got = share(&d, &host, "v2", 1000);
    assert!((450..=550).contains(&got), "{got} of 1000 at 50%");
    let k = steps_of(&d, "resume", &id);
    assert!(k.contains(&"resumed".to_owned()), "{k:?}");
    // The 409 rule holds across the restart.
    let (code, body) = d.post(
        "/v1/services/resume/deployments",
        json!({ "env": "prod", "image": "busybox:stable", "manifest": release("resume", "v3", 1, "") }),
    );
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["deployment"], id.as_str());

    let (code, body) = d.post(
        "/v1/services/resume/canary/promote",
        json!({ "env": "prod" }),
    );
    assert_eq!(code, 202, "{body}");
    let dep = d.wait_deployment("resume", &id, Duration::from_secs(60));
    assert_eq!(dep["state"], "succeeded", "{dep:#}");
    assert_eq!(share(&d, &host, "v2", 100), 100);
}

#[test]
fn a_restarted_daemon_finishes_a_bluegreen_switch_and_aborts_work() {
    let mut d = Daemon::start();
    d.create_service("bgc");
    deployed(
        &d,
        "bgc",
        &bluegreen_release("bgc", "v1", "10m", "/cgi-bin/smoke", 0),
    );
    d.restart(&[("FAAS_PLATFORM_CRASH_AT", "green-ready")]);
    let id = d.deploy(
        "bgc",
        "prod",
        &bluegreen_release("bgc", "v2", "10m", "/cgi-bin/smoke", 0),
    );
    assert!(
        d.wait_exit(Duration::from_secs(60)),
        "the crash hook did not fire"
    );
    d.restart(&[]);
    let dep = d.wait_deployment("bgc", &id, Duration::from_secs(60));
    assert_eq!(dep["state"], "succeeded", "{dep:#}");
    let k = kinds(&dep);
    assert!(
        k.contains(&"resumed".to_owned()) && k.contains(&"switched".to_owned()),
        "{k:?}"
    );
    assert_eq!(d.route("bgc", "prod", "/"), (200, "v2\n".into()));
    assert_eq!(
        get(&d, "bgc-prod-blue.localhost", "/", None),
        (200, "v1\n".into())
    );

    // A rolling deployment ends v1's warm window and replaces v2 without a failed request.
    let load = Load::start(d.router_port, d.host("bgc", "prod"));
    let dep = d.deploy_and_wait("bgc", "prod", &release("bgc", "v3", 2, ""));
    let (ok, failed, errors) = load.finish();
    assert_eq!(dep["state"], "succeeded", "{dep:#}");
    assert!(has_step(&dep, "standby-ended"), "{:?}", kinds(&dep));
    assert_eq!(failed, 0, "{errors:?}");
    assert!(ok > 10);
    assert_eq!(share(&d, &d.host("bgc", "prod"), "v3", 100), 100);
    only_running(&d, &dep);

    // A canary aborted by hand rolls back at once.
    let deploy = canary_table("[50, 100]", "30s", 1, true);
    let id = d.deploy("bgc", "prod", &release("bgc", "v4", 2, &deploy));
    wait_weight(&d, "bgc", 50);
    let (code, body) = d.post("/v1/services/bgc/canary/abort", json!({ "env": "prod" }));
    assert_eq!(code, 202, "{body}");
    let dep = d.wait_deployment("bgc", &id, Duration::from_secs(30));
    assert_eq!(dep["state"], "rolled_back", "{dep:#}");
    assert!(
        dep["reason"].as_str().unwrap().contains("aborted by hand"),
        "{dep:#}"
    );
    assert_eq!(share(&d, &d.host("bgc", "prod"), "v3", 100), 100);
}
