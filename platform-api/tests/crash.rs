//! A daemon killed at any step of a deployment: after a restart the deployment resumes (or
//! finishes its rollback), the service converges and serves, and no container is orphaned.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;

/// Deploys v1, then v2 with the daemon set to abort right after the step `crash_at`; restarts
/// it and checks that v2 converges with exactly its instances.
fn crash_during_rollout(service: &str, crash_at: &str) {
    let mut d = Daemon::start();
    d.create_service(service);
    assert_eq!(
        d.deploy_and_wait(service, "prod", &manifest(service, "v1", 2))["state"],
        "succeeded"
    );

    d.restart(&[("FAAS_PLATFORM_CRASH_AT", crash_at)]);
    let id = d.deploy(service, "prod", &manifest(service, "v2", 2));
    assert!(
        d.wait_exit(Duration::from_secs(60)),
        "the daemon did not crash at {crash_at}:\n{}",
        d.log()
    );

    d.restart(&[]);
    let dep = d.wait_deployment(service, &id, Duration::from_secs(90));
    assert_eq!(
        dep["state"],
        "succeeded",
        "crash at {crash_at}: {dep:#}\n{}",
        d.log()
    );
    let kinds: Vec<&str> = dep["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"resumed"), "{kinds:?}");
    assert_eq!(d.route(service, "prod", "/"), (200, "v2\n".into()));

    let release = dep["release"].as_str().unwrap();
    let containers = d.containers();
    assert_eq!(
        containers.len(),
        2,
        "crash at {crash_at}: exactly the replicas, no orphan: {containers:?}"
    );
    assert!(
        containers
            .iter()
            .all(|(_, r, running)| r == release && *running),
        "{containers:?}"
    );
    let (_, instances) = d.get(&format!("/v1/services/{service}/instances?env=prod"));
    assert_eq!(instances.as_array().unwrap().len(), 2, "{instances}");
}

#[test]
fn crash_right_after_the_deployment_started() {
    crash_during_rollout("crash-started", "started");
}

#[test]
fn crash_right_after_a_new_instance_started() {
    crash_during_rollout("crash-starting", "instance-starting");
}

#[test]
fn crash_right_after_a_new_instance_turned_healthy() {
    crash_during_rollout("crash-healthy", "instance-healthy");
}

#[test]
fn crash_right_after_an_old_instance_stopped() {
    crash_during_rollout("crash-stopped", "instance-stopped");
}

#[test]
fn crash_after_the_second_new_instance_started() {
    crash_during_rollout("crash-second", "instance-starting:2");
}

#[test]
fn crash_during_a_rollback_finishes_the_rollback() {
    let mut d = Daemon::start();
    d.create_service("crash-back");
    assert_eq!(
        d.deploy_and_wait("crash-back", "prod", &manifest("crash-back", "v1", 1))["state"],
        "succeeded"
    );

    d.restart(&[("FAAS_PLATFORM_CRASH_AT", "rolling-back")]);
    let id = d.deploy("crash-back", "prod", &crashing_manifest("crash-back", 1));
    assert!(
        d.wait_exit(Duration::from_secs(60)),
        "the daemon did not crash:\n{}",
        d.log()
    );

    d.restart(&[]);
    let dep = d.wait_deployment("crash-back", &id, Duration::from_secs(60));
    assert_eq!(dep["state"], "rolled_back", "{dep:#}");
    assert!(
        dep["reason"]
            .as_str()
            .unwrap()
            .contains("exited with code 3"),
        "{dep:#}"
    );
    assert_eq!(d.route("crash-back", "prod", "/"), (200, "v1\n".into()));
    let containers = d.containers();
    assert_eq!(containers.len(), 1, "{containers:?}");
}

#[test]
fn a_real_sigkill_mid_deploy_converges_and_the_lock_does_not_block() {
    let mut d = Daemon::start();
    d.create_service("killed");
    assert_eq!(
        d.deploy_and_wait("killed", "prod", &manifest("killed", "v1", 2))["state"],
        "succeeded"
    );

    // Slow to turn healthy, so the kill lands mid-rollout.
    let slow =
        manifest("killed", "v2", 2).replace("mkdir -p /tmp/www", "sleep 1 && mkdir -p /tmp/www");
    let id = d.deploy("killed", "prod", &slow);
    wait_until(
        "the first new instance starts",
        Duration::from_secs(30),
        || {
            let (_, dep) = d.get(&format!("/v1/services/killed/deployments/{id}"));
            dep["steps"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["kind"] == "instance-starting"))
        },
    );
    d.kill();

    d.restart(&[]);
    // The dead daemon's deployment still holds the environment, but this daemon drives it on:
    // a new deployment is refused only while that one runs, then goes through.
    let dep = d.wait_deployment("killed", &id, Duration::from_secs(90));
    assert_eq!(dep["state"], "succeeded", "{dep:#}");
    assert_eq!(d.route("killed", "prod", "/"), (200, "v2\n".into()));
    assert_eq!(
        d.deploy_and_wait("killed", "prod", &manifest("killed", "v3", 2))["state"],
        "succeeded"
    );
    assert_eq!(d.containers().len(), 2, "{:?}", d.containers());
}

#[test]
fn a_restarted_daemon_adopts_running_instances_and_removes_strays() {
    let mut d = Daemon::start();
    d.create_service("adopt");
    assert_eq!(
        d.deploy_and_wait("adopt", "prod", &manifest("adopt", "v1", 2))["state"],
        "succeeded"
    );
    let before = d.containers();

    // A container with this platform's label that no instance accounts for.
    let stray = std::process::Command::new("docker")
        .args(["run", "-d", "--name", &format!("stray-{}", d.platform_id)])
        .args(["--label", &format!("io.faas.platform={}", d.platform_id)])
        .args(["busybox:stable", "sleep", "300"])
        .output()
        .unwrap();
    assert!(stray.status.success());
    d.kill();
    d.restart(&[]);
    wait_until(
        "the stray container is removed",
        Duration::from_secs(30),
        || d.containers().len() == 2,
    );
    assert_eq!(
        d.containers(),
        before,
        "the service's own containers were adopted, not replaced"
    );
    wait_until(
        "the adopted instances serve",
        Duration::from_secs(10),
        || d.route("adopt", "prod", "/") == (200, "v1\n".into()),
    );
}
