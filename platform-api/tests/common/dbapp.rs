//! The databases' end-to-end helpers: a service (tests/fixtures/dbapp.py on
//! faas-test/dbclient:1, with the engines' Python drivers) that really uses its databases, and
//! ways to look at what it was given.
#![allow(dead_code)] // each test crate uses a part of these helpers

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Daemon, OWNER};

const APP: &str = include_str!("../fixtures/dbapp.py");
pub const IMAGE: &str = "faas-test/dbclient:1";

pub fn manifest(name: &str, databases: &[(&str, &str)]) -> String {
    let mut m = format!(
        r#"name = "{name}"
owner = "{OWNER}"
[run]
port = 8080
command = ["python3", "-c", '''{APP}''']
[health]
path = "/_info"
interval = "500ms"
grace = "30s"
[deploy.rolling]
max_unavailable = 1
[scale]
replicas = 1
"#
    );
    for (db, engine) in databases {
        m.push_str(&format!("[databases.{db}]\nengine = \"{engine}\"\n"));
    }
    m
}

pub fn deploy(d: &Daemon, service: &str, manifest: &str) -> Value {
    let (status, body) = d.post(
        &format!("/v1/services/{service}/deployments"),
        json!({ "env": "prod", "image": IMAGE, "manifest": manifest }),
    );
    assert_eq!(status, 202, "{body}");
    d.wait_deployment(
        service,
        body["id"].as_str().unwrap(),
        Duration::from_secs(120),
    )
}

pub fn succeeded(d: &Daemon, service: &str, manifest: &str) -> Value {
    let dep = deploy(d, service, manifest);
    assert_eq!(dep["state"], "succeeded", "{dep:#}\n{}", d.log());
    dep
}

pub fn steps(d: &Daemon, service: &str, dep: &Value) -> Vec<String> {
    let (_, body) = d.get(&format!(
        "/v1/services/{service}/deployments/{}",
        dep["id"].as_str().unwrap()
    ));
    body["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// What the service answers at `path` (its status, its body).
pub fn ask(d: &Daemon, service: &str, path: &str) -> (u16, String) {
    d.route(service, "prod", path)
}

pub fn ok(d: &Daemon, service: &str, path: &str) -> String {
    let (status, body) = ask(d, service, path);
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// The variables of the service's running instance, read from its container.
pub fn instance_env(d: &Daemon, service: &str) -> Vec<(String, String)> {
    let name = d
        .containers()
        .into_iter()
        .find(|(n, _, running)| *running && n.starts_with(&format!("faas-{service}-prod-")))
        .unwrap()
        .0;
    let out = Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{range .Config.Env}}{{println .}}{{end}}",
            &name,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

pub fn var(env: &[(String, String)], name: &str) -> String {
    env.iter()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("no {name} in {env:?}"))
        .1
        .clone()
}

/// A service URL with its host (the managed server's name on the platform's network) made
/// the server container's address, which the test reaches from the host.
pub fn from_host(url: &str, d: &Daemon, engine: &str) -> String {
    let container = d.server_container(engine);
    let ip = String::from_utf8(
        Command::new("docker")
            .args([
                "inspect",
                "-f",
                "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                &container,
            ])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    url.replace(&container, ip.trim())
}

pub fn databases(d: &Daemon, service: &str) -> Vec<Value> {
    let (status, body) = d.get(&format!("/v1/services/{service}/databases?env=prod"));
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().clone()
}
