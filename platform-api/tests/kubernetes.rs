//! The Kubernetes runtime on a real cluster (scripts/setup-kubernetes.sh: an API server,
//! controllers, scheduler and a kubelet on the local Docker Engine): deployments served through
//! the router from pod IPs, a rolling deploy under load without a failed request, a release
//! that crashes or cannot be placed failing fast while the old one serves, logs across a
//! container restart, and a daemon killed mid-deploy converging with no orphaned Deployment.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::seam::kubeconfig;
use common::*;
use serde_json::Value;

fn env() -> Vec<(&'static str, String)> {
    vec![
        ("FAAS_PLATFORM_RUNTIME", "kubernetes".into()),
        ("FAAS_PLATFORM_KUBECONFIG", kubeconfig()),
    ]
}

/// A daemon on the Kubernetes runtime; its namespace is deleted when the test ends.
struct OnCluster {
    d: Daemon,
}

impl OnCluster {
    fn start() -> Self {
        Self::start_with(&[])
    }

    fn start_with(extra: &[(&str, &str)]) -> Self {
        let env = env();
        let mut pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        pairs.extend_from_slice(extra);
        Self {
            d: Daemon::start_with(&pairs),
        }
    }

    fn restart(&mut self, extra: &[(&str, &str)]) {
        let env = env();
        let mut pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        pairs.extend_from_slice(extra);
        self.d.restart(&pairs);
    }

    fn namespace(&self) -> String {
        format!("faas-{}", self.d.platform_id)
    }

    fn kubectl(&self, args: &[&str]) -> Value {
        let out = Command::new("kubectl")
            .args(["--kubeconfig", &kubeconfig(), "-n", &self.namespace()])
            .args(args)
            .args(["-o", "json"])
            .output()
            .expect("kubectl runs");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The Deployments of a service: (name, release label, ready replicas).
    fn deployments(&self, service: &str) -> Vec<(String, String, i64)> {
        let list = self.kubectl(&[
            "get",
            "deployments",
            "-l",
            &format!("io.faas.service={service}"),
        ]);
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["metadata"]["name"].as_str().unwrap().to_owned(),
                    d["metadata"]["labels"]["io.faas.release"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                    d["status"]["readyReplicas"].as_i64().unwrap_or(0),
                )
            })
            .collect()
    }

    fn pods(&self, service: &str) -> Vec<Value> {
        let list = self.kubectl(&["get", "pods", "-l", &format!("io.faas.service={service}")]);
        list["items"].as_array().unwrap().clone()
    }
}

impl Drop for OnCluster {
    fn drop(&mut self) {
        self.d.kill();
        // Its namespace, or its tenants' (all labelled with the platform).
        let _ = Command::new("kubectl")
            .args([
                "--kubeconfig",
                &kubeconfig(),
                "delete",
                "namespace",
                "--wait=false",
            ])
            .args(["-l", &format!("io.faas.platform={}", self.d.platform_id)])
            .output();
    }
}

/// The test node has 2 CPUs: instances ask for a twentieth of one each.
fn small(manifest: String) -> String {
    format!("{manifest}\n[size]\ncpu = 0.05\nmemory = \"64Mi\"\n")
}

/// Waits until only `release`'s Deployments are left, `n` of them.
fn wait_only(k: &OnCluster, service: &str, release: &str, n: usize) {
    wait_until(
        &format!("only {n} Deployments of {release}"),
        Duration::from_secs(60),
        || {
            let ds = k.deployments(service);
            ds.len() == n && ds.iter().all(|(_, r, _)| r == release)
        },
    );
}

#[test]
fn a_service_is_served_from_pods_and_rolls_under_load_without_a_failed_request() {
    let k = OnCluster::start();
    let d = &k.d;
    d.create_service("kweb");
    let r = d
        .http
        .put(d.api("/v1/services/kweb/secrets"))
        .bearer_auth(&d.token)
        .json(&serde_json::json!({ "env": "prod", "values": { "TOKEN": "s3cret" } }))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let v1 = d.deploy_and_wait("kweb", "prod", &small(manifest("kweb", "v1", 2)));
    assert_eq!(v1["state"], "succeeded", "{v1:#}\n{}", d.log());
    assert_eq!(d.route("kweb", "prod", "/"), (200, "v1\n".into()));

    // Two Deployments of one ready pod each, labelled as Docker containers are; the secret in
    // a Secret, never in the Deployment; the environment's Service.
    let release = v1["release"].as_str().unwrap();
    wait_only(&k, "kweb", release, 2);
    // An instance counts as healthy only once its Deployment rolled out by kubectl's rules:
    // ready by its probe, as the router found it.
    let ds = k.deployments("kweb");
    assert!(ds.iter().all(|(_, _, ready)| *ready == 1), "{ds:?}");
    // Status shows each instance's pod, its node and its readiness.
    wait_until(
        "both pods ready in the status",
        Duration::from_secs(30),
        || {
            let (_, list) = d.get("/v1/services/kweb/instances?env=prod");
            list.as_array().unwrap().iter().all(|i| {
                i["pod"]["node"] == "localhost"
                    && i["pod"]["ready"] == true
                    && i["pod"]["name"]
                        .as_str()
                        .unwrap()
                        .starts_with("faas-kweb-prod-")
            })
        },
    );
    let name = &ds[0].0;
    let deployment = k.kubectl(&["get", "deployment", name]);
    assert!(!deployment.to_string().contains("s3cret"), "{deployment}");
    let secret = k.kubectl(&["get", "secret", name]);
    assert_eq!(secret["data"]["TOKEN"], "czNjcmV0", "{secret}");
    let service = k.kubectl(&["get", "service", "faas-kweb-prod"]);
    assert_eq!(service["spec"]["ports"][0]["port"], 8080);

    // A rolling deploy under constant load: not one failed request.
    let load = Load::start(d.router_port, d.host("kweb", "prod"));
    let v2 = d.deploy_and_wait("kweb", "prod", &small(manifest("kweb", "v2", 2)));
    let (ok, failed, errors) = load.finish();
    assert_eq!(v2["state"], "succeeded", "{v2:#}\n{}", d.log());
    assert_eq!(failed, 0, "{ok} ok, {failed} failed: {errors:?}");
    assert!(ok > 20, "too little load to prove anything: {ok}");
    assert_eq!(d.route("kweb", "prod", "/"), (200, "v2\n".into()));
    wait_only(&k, "kweb", v2["release"].as_str().unwrap(), 2);
}

#[test]
fn a_release_that_crashes_or_cannot_be_placed_fails_fast_and_the_old_one_serves() {
    let k = OnCluster::start();
    let d = &k.d;
    d.create_service("kbad");
    let v1 = d.deploy_and_wait("kbad", "prod", &small(manifest("kbad", "v1", 1)));
    assert_eq!(v1["state"], "succeeded", "{v1:#}\n{}", d.log());
    let good = v1["release"].as_str().unwrap().to_owned();

    let load = Load::start(d.router_port, d.host("kbad", "prod"));
    let started = std::time::Instant::now();
    let crashed = d.deploy_and_wait("kbad", "prod", &small(crashing_manifest("kbad", 1)));
    let crash_took = started.elapsed();
    assert_eq!(crashed["state"], "rolled_back", "{crashed:#}");
    let text = crashed.to_string();
    assert!(text.contains("code 3"), "the exit code: {crashed:#}");
    assert!(
        text.contains("fatal: no config"),
        "the pod's last lines: {crashed:#}"
    );
    // Well inside its 20 s grace: the crash is seen, not waited out.
    assert!(crash_took < Duration::from_secs(20), "took {crash_took:?}");

    // 64 CPUs: no node of this cluster has them.
    let huge = manifest_with("kbad", "v3", 1, "[size]\ncpu = 64\n");
    let unplaced = d.deploy_and_wait("kbad", "prod", &huge);
    assert_eq!(unplaced["state"], "rolled_back", "{unplaced:#}");
    assert!(
        unplaced.to_string().contains("Insufficient cpu"),
        "the scheduler's reason: {unplaced:#}"
    );
    let (ok, failed, errors) = load.finish();
    assert_eq!(failed, 0, "{ok} ok, {failed} failed: {errors:?}");
    assert_eq!(d.route("kbad", "prod", "/"), (200, "v1\n".into()));
    wait_only(&k, "kbad", &good, 1);
}

#[test]
fn logs_follow_a_pod_across_a_container_restart() {
    let k = OnCluster::start();
    let d = &k.d;
    d.create_service("klog");
    // It says hello at each start; /cgi-bin/die ends its process once.
    let m = small(manifest("klog", "v1", 1)).replace(
        "command = [\"sh\", \"-c\", \"",
        "command = [\"sh\", \"-c\", \"echo hello from a start && mkdir -p /tmp/www/cgi-bin && printf '#!/bin/sh\\\\nkillall httpd\\\\n' > /tmp/www/cgi-bin/die && chmod +x /tmp/www/cgi-bin/die && ",
    );
    let v1 = d.deploy_and_wait("klog", "prod", &m);
    assert_eq!(v1["state"], "succeeded", "{v1:#}\n{}", d.log());
    let hellos = |d: &Daemon| {
        d.text("/v1/services/klog/logs?env=prod")
            .lines()
            .filter(|l| l.contains("hello from a start"))
            .count()
    };
    wait_until("the first start's line", Duration::from_secs(30), || {
        hellos(d) == 1
    });
    let _ = d.route("klog", "prod", "/cgi-bin/die");
    wait_until("the restarted container", Duration::from_secs(60), || {
        k.pods("klog").iter().any(|p| {
            p["status"]["containerStatuses"][0]["restartCount"]
                .as_i64()
                .unwrap_or(0)
                >= 1
                && p["status"]["containerStatuses"][0]["state"]["running"].is_object()
        })
    });
    wait_until("the second start's line", Duration::from_secs(30), || {
        hellos(d) == 2
    });
}

#[test]
fn a_daemon_killed_mid_deploy_converges_with_no_orphan() {
    let mut k = OnCluster::start();
    k.d.create_service("kcrash");
    let v1 =
        k.d.deploy_and_wait("kcrash", "prod", &small(manifest("kcrash", "v1", 2)));
    assert_eq!(v1["state"], "succeeded", "{v1:#}\n{}", k.d.log());

    k.restart(&[("FAAS_PLATFORM_CRASH_AT", "instance-starting")]);
    let id =
        k.d.deploy("kcrash", "prod", &small(manifest("kcrash", "v2", 2)));
    assert!(
        k.d.wait_exit(Duration::from_secs(60)),
        "the daemon did not crash:\n{}",
        k.d.log()
    );
    k.restart(&[]);
    let dep = k.d.wait_deployment("kcrash", &id, Duration::from_secs(120));
    assert_eq!(dep["state"], "succeeded", "{dep:#}\n{}", k.d.log());
    assert_eq!(k.d.route("kcrash", "prod", "/"), (200, "v2\n".into()));
    // Exactly v2's two instances: the Deployment started before the crash adopted or removed.
    wait_only(&k, "kcrash", dep["release"].as_str().unwrap(), 2);
    wait_until("exactly two pods", Duration::from_secs(60), || {
        k.pods("kcrash").len() == 2
    });
}

#[test]
fn a_replaced_pod_is_followed_to_its_new_address() {
    let k = OnCluster::start();
    let d = &k.d;
    d.create_service("kmove");
    let v1 = d.deploy_and_wait("kmove", "prod", &small(manifest("kmove", "v1", 2)));
    assert_eq!(v1["state"], "succeeded", "{v1:#}\n{}", d.log());
    let addresses = || -> Vec<(String, String, bool)> {
        let (_, list) = d.get("/v1/services/kmove/instances?env=prod");
        list.as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["id"].as_str().unwrap().to_owned(),
                    i["address"].as_str().unwrap_or_default().to_owned(),
                    i["healthy"] == true,
                )
            })
            .collect()
    };
    let before = addresses();
    assert_eq!(before.len(), 2, "{before:?}");

    // Someone deletes a pod: its Deployment makes another, on another address.
    let pod = k.pods("kmove")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = Command::new("kubectl")
        .args([
            "--kubeconfig",
            &kubeconfig(),
            "-n",
            &k.namespace(),
            "delete",
            "pod",
            &pod,
        ])
        .args(["--grace-period=1", "--wait=false"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until(
        "the router at the new pod's address, healthy",
        Duration::from_secs(60),
        || {
            let now = addresses();
            now.len() == 2 && now.iter().all(|(_, _, healthy)| *healthy) && now != before
        },
    );
    let now = addresses();
    let ips: Vec<String> = k
        .pods("kmove")
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| format!("{}:8080", p["status"]["podIP"].as_str().unwrap_or_default()))
        .collect();
    assert!(
        now.iter().all(|(_, addr, _)| ips.contains(addr)),
        "every instance at a live pod's address: {now:?} vs {ips:?}"
    );
    assert!(d.log().contains("the router follows it"), "{}", d.log());
    for _ in 0..10 {
        assert_eq!(d.route("kmove", "prod", "/"), (200, "v1\n".into()));
    }
}

#[test]
fn a_faulty_canary_is_rolled_back_and_bluegreen_switches_under_load_on_the_cluster() {
    let k = OnCluster::start();
    let d = &k.d;

    // Canary: v2 fails 30% of its requests; the router's own figures roll it back.
    d.create_service("kcanary");
    let v1 = d.deploy_and_wait(
        "kcanary",
        "prod",
        &small(flaky_release("kcanary", "v1", 0, "")),
    );
    assert_eq!(v1["state"], "succeeded", "{v1:#}\n{}", d.log());
    let load = Load::start_path(d.router_port, d.host("kcanary", "prod"), "/cgi-bin/v");
    let deploy = canary_table("[50, 100]", "5s", 20, true);
    let v2 = d.deploy_and_wait(
        "kcanary",
        "prod",
        &small(flaky_release("kcanary", "v2", 30, &deploy)),
    );
    let (ok, failed, _) = load.finish();
    assert_eq!(v2["state"], "rolled_back", "{v2:#}");
    assert!(
        v2["reason"].as_str().unwrap().contains("5xx ratio"),
        "{v2:#}"
    );
    assert!(
        ok > 0 && failed > 0,
        "the canary took its share: {ok} ok, {failed} failed"
    );
    for _ in 0..20 {
        assert_eq!(
            d.route("kcanary", "prod", "/cgi-bin/v"),
            (200, "v1\n".into())
        );
    }
    wait_only(&k, "kcanary", v1["release"].as_str().unwrap(), 2);

    // Blue-green: the green set waits at its preview host, the switch and the switch back
    // lose no request.
    d.create_service("kbg");
    let bg = |v: &str| small(bluegreen_release("kbg", v, "10m", "/cgi-bin/smoke", 0));
    let v1 = d.deploy_and_wait("kbg", "prod", &bg("v1"));
    assert_eq!(v1["state"], "succeeded", "{v1:#}\n{}", d.log());
    let load = Load::start(d.router_port, d.host("kbg", "prod"));
    let v2 = d.deploy_and_wait("kbg", "prod", &bg("v2"));
    assert_eq!(v2["state"], "succeeded", "{v2:#}");
    assert_eq!(d.route("kbg", "prod", "/"), (200, "v2\n".into()));
    let (code, rb) = d.post(
        "/v1/services/kbg/rollback",
        serde_json::json!({ "env": "prod" }),
    );
    assert_eq!(code, 202, "{rb}");
    let rb = d.wait_deployment("kbg", rb["id"].as_str().unwrap(), Duration::from_secs(60));
    let (ok, failed, errors) = load.finish();
    assert_eq!(rb["state"], "succeeded", "{rb:#}");
    assert_eq!(failed, 0, "{ok} ok, {failed} failed: {errors:?}");
    assert!(ok > 50, "{ok}");
    assert_eq!(d.route("kbg", "prod", "/"), (200, "v1\n".into()));
}

#[test]
fn the_in_cluster_manifests_are_accepted_by_the_api_server() {
    let manifests = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/kubernetes/platform.yaml"
    );
    let kubectl = |args: &[&str]| {
        Command::new("kubectl")
            .args(["--kubeconfig", &kubeconfig()])
            .args(args)
            .output()
            .unwrap()
    };
    // A server-side dry run checks every object as the API server would store it, but a
    // namespaced object needs its namespace to exist: those two are made for real first.
    for ns in ["faas-system", "faas"] {
        // One left by an earlier run may still be terminating.
        wait_until(
            &format!("namespace {ns} gone"),
            Duration::from_secs(90),
            || !kubectl(&["get", "namespace", ns]).status.success(),
        );
        let _ = kubectl(&["create", "namespace", ns]);
    }
    let out = kubectl(&["apply", "--dry-run=server", "-f", manifests]);
    for ns in ["faas-system", "faas"] {
        let _ = kubectl(&["delete", "namespace", ns, "--wait=false"]);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for object in [
        "clusterrole.rbac.authorization.k8s.io/faas-platform",
        "role.rbac.authorization.k8s.io/faas-platform",
        "deployment.apps/faas-platform",
        "service/faas-router",
        "persistentvolumeclaim/faas-platform-data",
    ] {
        assert!(text.contains(object), "{object} missing from:\n{text}");
    }
}

#[test]
fn the_meter_reads_what_pods_use_from_their_kubelet() {
    let k = OnCluster::start_with(&[("FAAS_PLATFORM_METER_INTERVAL", "1s")]);
    let d = &k.d;
    d.create_service("kmeter");
    // It burns 2 s of CPU (200 ticks), then idles.
    let m = small(manifest("kmeter", "v1", 1)).replace(
        "exec httpd -f -p 8080 -h /tmp/www",
        "httpd -p 8080 -h /tmp/www && while :; do read -r _ _ _ _ _ _ _ _ _ _ _ _ _ u s _ < /proc/$$/stat; [ $((u+s)) -ge 200 ] && break; done; exec sleep 100000",
    );
    let v1 = d.deploy_and_wait("kmeter", "prod", &m);
    assert_eq!(v1["state"], "succeeded", "{v1:#}\n{}", d.log());
    let db = rusqlite::Connection::open(d.data_dir().join("platform.db")).unwrap();
    let used = |resource: &str| -> i64 {
        db.query_row(
            "SELECT COALESCE(SUM(quantity), 0) FROM usage_records WHERE service = 'kmeter' AND resource = ?1",
            [resource],
            |r| r.get(0),
        )
        .unwrap()
    };
    wait_until(
        "CPU and memory metered from the kubelet",
        Duration::from_secs(60),
        || used("vcpu") > 0 && used("memory") > 0 && used("instance") > 0,
    );
}

#[test]
fn a_release_whose_image_is_gone_fails_fast_and_the_old_one_serves() {
    let mut k = OnCluster::start();
    k.d.create_service("kgone");
    let v1 =
        k.d.deploy_and_wait("kgone", "prod", &small(manifest("kgone", "v1", 1)));
    assert_eq!(v1["state"], "succeeded", "{v1:#}\n{}", k.d.log());

    // An image of its own (a new id), released, then removed before any pod could use it: the
    // daemon stops right after the deployment's first step, the image goes, the daemon resumes.
    let tag = format!("faas-test/kgone:{}", k.d.platform_id);
    let build = Command::new("docker")
        .args(["build", "-q", "-t", &tag, "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(format!("FROM busybox:stable\nLABEL gone={tag}\n").as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(build.status.success(), "docker build failed");
    k.restart(&[("FAAS_PLATFORM_CRASH_AT", "started")]);
    let (status, body) = k.d.post(
        "/v1/services/kgone/deployments",
        serde_json::json!({ "env": "prod", "image": tag, "manifest": small(manifest("kgone", "v2", 1)) }),
    );
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    assert!(k.d.wait_exit(Duration::from_secs(30)), "{}", k.d.log());
    let rmi = Command::new("docker")
        .args(["rmi", "-f", &tag])
        .output()
        .unwrap();
    assert!(
        rmi.status.success(),
        "{}",
        String::from_utf8_lossy(&rmi.stderr)
    );

    k.restart(&[]);
    // v1 adopted again (the restarted daemon serves once it reconciled), then load.
    wait_until("v1 served again", Duration::from_secs(30), || {
        k.d.route("kgone", "prod", "/") == (200, "v1\n".into())
    });
    let load = Load::start(k.d.router_port, k.d.host("kgone", "prod"));
    let started = std::time::Instant::now();
    let dep = k.d.wait_deployment("kgone", &id, Duration::from_secs(60));
    let took = started.elapsed();
    let (ok, failed, errors) = load.finish();
    assert_eq!(dep["state"], "rolled_back", "{dep:#}");
    let text = dep.to_string();
    assert!(
        [
            "ErrImagePull",
            "ImagePullBackOff",
            "InvalidImageName",
            "ErrImageNeverPull"
        ]
        .iter()
        .any(|r| text.contains(r)),
        "the kubelet's reason: {dep:#}"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}: {dep:#}");
    eprintln!("failed after {took:?}: {}", dep["reason"]);
    assert_eq!(failed, 0, "{ok} ok, {failed} failed: {errors:?}");
    assert_eq!(k.d.route("kgone", "prod", "/"), (200, "v1\n".into()));
    wait_only(&k, "kgone", v1["release"].as_str().unwrap(), 1);
}

#[test]
fn a_real_sigkill_mid_deploy_converges_with_no_orphan() {
    let mut k = OnCluster::start();
    k.d.create_service("kkill");
    let v1 =
        k.d.deploy_and_wait("kkill", "prod", &small(manifest("kkill", "v1", 2)));
    assert_eq!(v1["state"], "succeeded", "{v1:#}\n{}", k.d.log());
    let id =
        k.d.deploy("kkill", "prod", &small(manifest("kkill", "v2", 2)));
    // SIGKILL once the first new Deployment exists, as a crash would.
    wait_until("a Deployment of v2", Duration::from_secs(30), || {
        k.deployments("kkill").len() > 2
    });
    k.d.kill();
    k.restart(&[]);
    let dep = k.d.wait_deployment("kkill", &id, Duration::from_secs(120));
    assert_eq!(dep["state"], "succeeded", "{dep:#}\n{}", k.d.log());
    assert_eq!(k.d.route("kkill", "prod", "/"), (200, "v2\n".into()));
    wait_only(&k, "kkill", dep["release"].as_str().unwrap(), 2);
    wait_until("exactly two pods", Duration::from_secs(60), || {
        k.pods("kkill").len() == 2
    });
}

#[test]
fn with_a_registry_the_platform_pushes_each_release_and_pods_run_it_by_digest() {
    let registry = std::env::var("FAAS_TEST_REGISTRY").unwrap_or_else(|_| "127.0.0.1:55000".into());
    let k = OnCluster::start_with(&[("FAAS_PLATFORM_REGISTRY", &registry)]);
    let d = &k.d;
    d.create_service("kreg");
    let v1 = d.deploy_and_wait("kreg", "prod", &small(manifest("kreg", "v1", 1)));
    assert_eq!(v1["state"], "succeeded", "{v1:#}\n{}", d.log());
    assert_eq!(d.route("kreg", "prod", "/"), (200, "v1\n".into()));

    // The release names the image by the digest the registry gave it, and the pod runs that.
    let release = d.current_release("kreg", "prod");
    let image = release["image"].as_str().unwrap().to_owned();
    let prefix = format!("{registry}/faas@sha256:");
    assert!(image.starts_with(&prefix), "{release:#}");
    let name = &k.deployments("kreg")[0].0;
    let deployment = k.kubectl(&["get", "deployment", name]);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"], image,
        "{deployment}"
    );
    // The registry has it.
    let digest = &image[image.len() - 71..];
    let r = reqwest::blocking::Client::new()
        .head(format!("http://{registry}/v2/faas/manifests/{digest}"))
        .header(
            "accept",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{registry} has no {digest}");
}

#[test]
fn with_a_namespace_per_tenant_each_owner_gets_its_own_and_a_restart_finds_them() {
    let mut k = OnCluster::start_with(&[("FAAS_PLATFORM_NAMESPACE_PER_TENANT", "true")]);
    k.d.create_service("kten");
    let (status, body) = k.d.post(
        "/v1/services",
        serde_json::json!({ "name": "kother", "owner": "other@example.com" }),
    );
    assert_eq!(status, 201, "{body}");
    let other = manifest("kother", "o1", 1).replace(OWNER, "other@example.com");
    for (svc, m) in [
        ("kten", small(manifest("kten", "t1", 1))),
        ("kother", small(other)),
    ] {
        let dep = k.d.deploy_and_wait(svc, "prod", &m);
        assert_eq!(dep["state"], "succeeded", "{dep:#}\n{}", k.d.log());
    }
    let base = k.namespace();
    let in_ns = |ns: &str| -> Vec<String> {
        let out = Command::new("kubectl")
            .args([
                "--kubeconfig",
                &kubeconfig(),
                "-n",
                ns,
                "get",
                "deployments",
            ])
            .args([
                "-o",
                "jsonpath={.items[*].metadata.labels.io\\.faas\\.service}",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(in_ns(&format!("{base}-team-example-com")), ["kten"]);
    assert_eq!(in_ns(&format!("{base}-other-example-com")), ["kother"]);
    assert!(in_ns(&base).is_empty());

    // A restarted daemon finds its instances across the tenants' namespaces and adopts them.
    k.d.kill();
    k.restart(&[("FAAS_PLATFORM_NAMESPACE_PER_TENANT", "true")]);
    wait_until("both served again", Duration::from_secs(30), || {
        k.d.route("kten", "prod", "/") == (200, "t1\n".into())
            && k.d.route("kother", "prod", "/") == (200, "o1\n".into())
    });
    assert!(k.d.log().contains("adopted=2"), "{}", k.d.log());
    // And a deploy after it replaces the instance in the tenant's namespace.
    let dep =
        k.d.deploy_and_wait("kten", "prod", &small(manifest("kten", "t2", 1)));
    assert_eq!(dep["state"], "succeeded", "{dep:#}\n{}", k.d.log());
    wait_until(
        "only t2 in the tenant's namespace",
        Duration::from_secs(60),
        || in_ns(&format!("{base}-team-example-com")).len() == 1,
    );
    assert_eq!(k.d.route("kten", "prod", "/"), (200, "t2\n".into()));
}

/// On a kind cluster (a context named `kind-NAME`) the platform loads each release's image into
/// the nodes with `kind load docker-image`. kind cannot run here (its node image comes from a
/// registry): a `kind` on PATH that records its call stands in for it, while the test cluster's
/// nodes, which share the engine, run the loaded tag for real.
#[test]
fn on_a_kind_context_each_release_is_loaded_into_the_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kubeconfig");
    std::fs::copy(kubeconfig(), &config).unwrap();
    let renamed = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&config)
        .args(["config", "rename-context", "faas-test", "kind-faas"])
        .output()
        .unwrap();
    assert!(
        renamed.status.success(),
        "{}",
        String::from_utf8_lossy(&renamed.stderr)
    );
    let calls = dir.path().join("kind-calls");
    let kind = dir.path().join("kind");
    std::fs::write(
        &kind,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", calls.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&kind, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap()
    );
    let config = config.display().to_string();
    let k = OnCluster {
        d: Daemon::start_with(&[
            ("FAAS_PLATFORM_RUNTIME", "kubernetes"),
            ("FAAS_PLATFORM_KUBECONFIG", &config),
            ("PATH", &path),
        ]),
    };
    let d = &k.d;
    let (_, info) = d.get("/_info");
    assert!(
        info["docker"]["version"]
            .as_str()
            .unwrap()
            .contains("loaded into Kind cluster faas"),
        "{info}"
    );
    d.create_service("kkind");
    let v1 = d.deploy_and_wait("kkind", "prod", &small(manifest("kkind", "v1", 1)));
    assert_eq!(v1["state"], "succeeded", "{v1:#}\n{}", d.log());
    assert_eq!(d.route("kkind", "prod", "/"), (200, "v1\n".into()));
    let image = d.current_release("kkind", "prod")["image"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(image.starts_with("faas.local/image:"), "{image}");
    let recorded = std::fs::read_to_string(&calls).unwrap();
    assert_eq!(
        recorded.trim(),
        format!("load docker-image {image} --name faas")
    );
    let name = &k.deployments("kkind")[0].0;
    let deployment = k.kubectl(&["get", "deployment", name]);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        image
    );
}

#[test]
fn cron_entries_run_as_pods_and_their_output_reaches_the_logs() {
    let k = OnCluster::start();
    let d = &k.d;
    d.create_service("kcron");
    let m = small(manifest("kcron", "v1", 1));
    let m = format!(
        "{m}[[cron]]\nname = \"tick\"\nschedule = \"*/2 * * * * *\"\ncommand = [\"sh\", \"-c\", \"echo tick $FAAS_RUN\"]\n"
    );
    let dep = d.deploy_and_wait("kcron", "prod", &m);
    assert_eq!(dep["state"], "succeeded", "{dep:#}\n{}", d.log());
    let exited = || -> Vec<serde_json::Value> {
        let (status, h) = d.get("/v1/services/kcron/cron/tick/history?env=prod&limit=100");
        assert_eq!(status, 200, "{h}");
        h.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["state"] == "exited")
            .cloned()
            .collect()
    };
    wait_until("two ticks run as pods", Duration::from_secs(60), || {
        exited().len() >= 2
    });
    let run = exited()[0]["id"].as_str().unwrap().to_owned();
    wait_until(
        "a tick's output in the logs",
        Duration::from_secs(30),
        || {
            d.text("/v1/services/kcron/logs?env=prod")
                .contains(&format!("tick {run}"))
        },
    );
}
