//! `faas` against a local platform on the Kubernetes runtime (the test cluster of
//! scripts/setup-kubernetes.sh): `faas platform start --runtime kubernetes`, `faas launch`
//! served through the router from a pod, `faas service status` with the pod, its node and its
//! readiness, and a restart of the platform that keeps the runtime it was started with.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::platform::DevBox;
use common::{stdout, succeeded};

fn kubeconfig() -> String {
    let path = std::env::var("FAAS_TEST_KUBECONFIG")
        .unwrap_or_else(|_| "/var/lib/faas-test/k8s/kubeconfig".into());
    assert!(
        std::path::Path::new(&path).exists(),
        "no test cluster at {path}: run `scripts/setup-kubernetes.sh start` (the test command does)"
    );
    path
}

/// Deletes the platform's namespace when the test ends.
struct Namespace(Option<String>);

impl Drop for Namespace {
    fn drop(&mut self) {
        if let Some(ns) = &self.0 {
            let _ = Command::new("kubectl")
                .args([
                    "--kubeconfig",
                    &kubeconfig(),
                    "delete",
                    "namespace",
                    ns,
                    "--wait=false",
                ])
                .output();
        }
    }
}

#[test]
fn launch_status_and_restart_on_a_local_cluster() {
    let d = DevBox::new();
    let mut ns = Namespace(None);
    let config = kubeconfig();
    let out = d.run(&[
        "platform",
        "start",
        "--runtime",
        "kubernetes",
        "--kubeconfig",
        &config,
    ]);
    succeeded(&out);
    let info: serde_json::Value =
        reqwest::blocking::get(format!("http://127.0.0.1:{}/_info", d.api_port))
            .unwrap()
            .json()
            .unwrap();
    ns.0 = Some(format!("faas-{}", info["id"].as_str().unwrap()));
    assert!(
        info["docker"]["version"]
            .as_str()
            .unwrap()
            .contains("Kubernetes v1.20"),
        "{info}"
    );

    let out = d.run(&[
        "launch",
        "kube-site",
        "--template",
        "static",
        "--no-input",
        "--owner",
        "me@example.com",
    ]);
    succeeded(&out);
    assert_eq!(
        stdout(&out).trim(),
        format!("http://kube-site.localhost:{}", d.router_port)
    );
    d.wait_route("kube-site", "/", "kube-site");

    let status = |d: &DevBox| {
        let out = d.run_in(&d.work().join("kube-site"), &["service", "status"]);
        succeeded(&out);
        stdout(&out)
    };
    let wait_ready = |d: &DevBox| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let text = status(d);
            if text.contains("on node localhost, ready") {
                return text;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no ready pod in:\n{text}"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    let text = wait_ready(&d);
    assert!(text.contains("pod faas-kube-site-prod-"), "{text}");

    // Stopped and started again without flags: still on the cluster, its pod adopted.
    succeeded(&d.run(&["platform", "stop"]));
    succeeded(&d.run(&["platform", "start"]));
    let info: serde_json::Value =
        reqwest::blocking::get(format!("http://127.0.0.1:{}/_info", d.api_port))
            .unwrap()
            .json()
            .unwrap();
    assert!(
        info["docker"]["version"]
            .as_str()
            .unwrap()
            .contains("Kubernetes"),
        "{info}"
    );
    d.wait_route("kube-site", "/", "kube-site");
    let again = wait_ready(&d);
    let pod = |t: &str| t.lines().find(|l| l.contains("pod ")).map(str::to_owned);
    assert_eq!(
        pod(&text),
        pod(&again),
        "the same pod, adopted:\n{text}\n{again}"
    );
}
