//! Services calling services through the real router on the real Docker Engine: a dependency's
//! address injected as `<NAME>_URL` and reachable from inside the caller's container; the
//! caller named by the router in `X-Source` from its connection (a forged one replaced, an
//! outside one removed); a callee that takes only declared callers refusing another with 403; a
//! dependency that does not exist refused at deploy; calls counted per caller.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{Daemon, OWNER};
use serde_json::{Value, json};

const PYTHON: &str = "python:3.11-slim";

/// A server that answers every GET with the `X-Source` it got, as JSON.
fn echo(name: &str, extra: &str) -> String {
    format!(
        r#"name = "{name}"
owner = "{OWNER}"
[run]
port = 8080
command = ["python3", "-c", "import http.server, json\nclass H(http.server.BaseHTTPRequestHandler):\n    def do_GET(self):\n        b = json.dumps({{'service': '{name}', 'x_source': self.headers.get('X-Source')}}).encode()\n        self.send_response(200)\n        self.send_header('Content-Length', str(len(b)))\n        self.end_headers()\n        self.wfile.write(b)\n    def log_message(self, *a):\n        pass\nhttp.server.ThreadingHTTPServer(('', 8080), H).serve_forever()"]
[health]
path = "/_info"
interval = "500ms"
grace = "30s"
[size]
cpu = 0.1
{extra}"#
    )
}

fn deploy(d: &Daemon, service: &str, manifest: &str) -> Value {
    let (status, body) = d.post(
        &format!("/v1/services/{service}/deployments"),
        json!({ "env": "prod", "image": PYTHON, "manifest": manifest }),
    );
    assert_eq!(status, 202, "{body}");
    let end = d.wait_deployment(
        service,
        body["id"].as_str().unwrap(),
        std::time::Duration::from_secs(90),
    );
    assert_eq!(end["state"], "succeeded", "{end:#}");
    end
}

/// Runs python code in the service's running container; returns its stdout.
fn run_in(d: &Daemon, service: &str, code: &str) -> String {
    let (name, _, _) = d
        .containers()
        .into_iter()
        .find(|(n, _, running)| *running && n.starts_with(&format!("faas-{service}-prod-")))
        .expect("a running container");
    let out = Command::new("docker")
        .args(["exec", &name, "python3", "-c", code])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A GET from inside `service` to `url` with the given headers: "status body".
fn call_from(d: &Daemon, service: &str, url: &str, headers: &str) -> (u16, String) {
    let code = format!(
        "import urllib.request, urllib.error\nr = urllib.request.Request({url}, headers={headers})\ntry:\n    a = urllib.request.urlopen(r, timeout=10)\n    print(a.status, a.read().decode())\nexcept urllib.error.HTTPError as e:\n    print(e.code, e.read().decode())"
    );
    let out = run_in(d, service, &code);
    let (status, body) = out.split_once(' ').unwrap();
    (status.parse().unwrap(), body.to_owned())
}

#[test]
fn dependencies_are_reached_with_x_source_stamped_by_the_router_and_declared_only_holds() {
    let d = Daemon::start();
    for name in ["back", "front", "other", "idle"] {
        d.create_service(name);
    }
    // Nothing is recorded for a dependency that does not exist.
    let (status, p) = d.post(
        "/v1/services/front/deployments",
        json!({ "env": "prod", "image": PYTHON, "manifest": echo("front", "[[dependencies]]\nservice = \"nope\"\n") }),
    );
    assert_eq!(
        (status, p["code"].as_str()),
        (422, Some("dependency-not-found")),
        "{p}"
    );
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("`nope` is not a service"),
        "{p}"
    );
    // Nor for one that serves no such environment, without a fallback.
    let (status, p) = d.post(
        "/v1/services/front/deployments",
        json!({ "env": "prod", "image": PYTHON, "manifest": echo("front", "[[dependencies]]\nservice = \"idle\"\n") }),
    );
    assert_eq!(status, 422, "{p}");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("serves no environment `prod`"),
        "{p}"
    );

    deploy(
        &d,
        "back",
        &echo("back", "[access]\ncallers = \"declared\"\n"),
    );
    deploy(
        &d,
        "front",
        &echo("front", "[[dependencies]]\nservice = \"back\"\n"),
    );
    deploy(&d, "other", &echo("other", ""));

    // front's container has BACK_URL and reaches back there; back sees who called, whatever was sent.
    let url = run_in(&d, "front", "import os; print(os.environ['BACK_URL'])");
    assert_eq!(url, format!("http://back.localhost:{}", d.router_port));
    let (status, body) = call_from(
        &d,
        "front",
        "__import__('os').environ['BACK_URL'] + '/hello'",
        "{'X-Source': 'evil/prod'}",
    );
    assert_eq!(status, 200, "{body}");
    let seen: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen, json!({ "service": "back", "x_source": "front/prod" }));

    // From outside the platform: no X-Source, even a forged one.
    let r = d
        .http
        .get(format!("http://127.0.0.1:{}/", d.router_port))
        .header("host", "back.localhost")
        .header("x-source", "front/prod")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen: Value = r.json().unwrap();
    assert_eq!(seen["x_source"], Value::Null);

    // other does not declare back, which takes declared callers only: 403 that says why.
    let gateway = run_in(
        &d,
        "front",
        "import socket; print(socket.gethostbyname('back.localhost'))",
    );
    let (status, body) = call_from(
        &d,
        "other",
        &format!("'http://{gateway}:{}/'", d.router_port),
        "{'Host': 'back.localhost'}",
    );
    assert_eq!(status, 403, "{body}");
    let problem: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["error"]["code"], "caller-not-declared");
    assert!(
        problem["error"]["message"]
            .as_str()
            .unwrap()
            .contains("other (prod) may not call back"),
        "{problem}"
    );
    // other takes any caller: front calls it undeclared, and other sees front.
    let (status, body) = call_from(
        &d,
        "front",
        &format!("'http://{gateway}:{}/'", d.router_port),
        "{'Host': 'other.localhost'}",
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"x_source\": \"front/prod\""), "{body}");

    // The router counts calls per caller.
    let metrics = d.text("/metrics");
    assert!(
        metrics.contains(
            "faas_router_calls_total{service=\"back\",env=\"prod\",caller=\"front/prod\"} 1"
        ),
        "{metrics}"
    );
    assert!(metrics.contains(
        "faas_router_calls_total{service=\"back\",env=\"prod\",caller=\"other/prod\"} 1"
    ));
}
