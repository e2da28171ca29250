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

/// A server that logs each request's trace id; on `/chain` it calls its dependency `back`
/// with the trace it got, and answers what both saw.
fn relay(name: &str, extra: &str) -> String {
    let code = format!(
        r#"import http.server, json, os, urllib.request
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        tp = self.headers.get('traceparent')
        print(json.dumps({{'msg': 'served', 'path': self.path, 'trace_id': tp.split('-')[1] if tp else None}}), flush=True)
        out = {{'service': '{name}', 'traceparent': tp}}
        if self.path == '/chain':
            r = urllib.request.Request(os.environ['BACK_URL'] + '/leaf', headers={{'traceparent': tp}})
            out['back'] = json.loads(urllib.request.urlopen(r, timeout=10).read())
        b = json.dumps(out).encode()
        self.send_response(200)
        self.send_header('Content-Length', str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(('', 8080), H).serve_forever()
"#
    );
    format!(
        r#"name = "{name}"
owner = "{OWNER}"
[run]
port = 8080
command = ["python3", "-c", {}]
[health]
path = "/_info"
interval = "500ms"
grace = "30s"
[size]
cpu = 0.1
{extra}"#,
        serde_json::to_string(&code).unwrap()
    )
}

#[test]
fn a_call_through_two_services_is_one_trace_of_two_hops_and_their_logs_carry_it() {
    let d = Daemon::start();
    for name in ["back", "front"] {
        d.create_service(name);
    }
    deploy(&d, "back", &relay("back", ""));
    deploy(
        &d,
        "front",
        &relay("front", "[[dependencies]]\nservice = \"back\"\n"),
    );
    let r = d
        .http
        .get(format!("http://127.0.0.1:{}/chain", d.router_port))
        .header("host", "front.localhost")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen: Value = r.json().unwrap();
    let front_tp = seen["traceparent"]
        .as_str()
        .expect("the router started a trace");
    let back_tp = seen["back"]["traceparent"].as_str().unwrap();
    let trace_id = front_tp.split('-').nth(1).unwrap().to_owned();
    assert_eq!(
        back_tp.split('-').nth(1).unwrap(),
        trace_id,
        "one trace across both hops"
    );

    let mut trace = Value::Null;
    common::wait_until(
        "the trace's two hops kept",
        std::time::Duration::from_secs(10),
        || {
            let (status, t) = d.get(&format!("/v1/traces/{trace_id}"));
            trace = t;
            status == 200 && trace["spans"].as_array().unwrap().len() == 2
        },
    );
    let spans = trace["spans"].as_array().unwrap();
    let (first, second) = (&spans[0], &spans[1]);
    assert_eq!(
        (first["service"].as_str(), second["service"].as_str()),
        (Some("front"), Some("back"))
    );
    assert!(first["parent_id"].is_null(), "{trace:#}");
    assert_eq!(
        second["parent_id"], first["span_id"],
        "back's hop is a child of front's: {trace:#}"
    );
    assert_eq!(
        front_tp.split('-').nth(2).unwrap(),
        first["span_id"].as_str().unwrap()
    );
    assert_eq!(second["caller"], "front/prod");
    assert_eq!(
        (first["status"].as_u64(), second["path"].as_str()),
        (Some(200), Some("/leaf"))
    );
    assert!(first["duration_ms"].as_f64().unwrap() >= second["duration_ms"].as_f64().unwrap());

    // Both services' log lines carry the trace id.
    for service in ["front", "back"] {
        common::wait_until(
            &format!("{service}'s line of the trace"),
            std::time::Duration::from_secs(10),
            || {
                d.text(&format!(
                    "/v1/services/{service}/logs?env=prod&grep={trace_id}"
                ))
                .contains("served")
            },
        );
    }

    // The dashboard draws the trace's hops, back's under front's.
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = http
        .post(d.api("/dashboard/login"))
        .form(&[("token", d.token.as_str())])
        .send()
        .unwrap();
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = |id: &str| {
        let r = http
            .get(d.api(&format!("/dashboard/traces?id={id}")))
            .header("cookie", &cookie)
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    let (status, html) = page(&trace_id);
    assert_eq!(status, 200);
    let back_row = format!(
        "data-service=\"back\" data-span=\"{}\" data-parent=\"{}\"",
        second["span_id"].as_str().unwrap(),
        first["span_id"].as_str().unwrap()
    );
    assert!(html.contains(&back_row), "{html}");
    assert!(
        html.contains("<span class=\"indent\"></span><a href=\"/dashboard/services/back"),
        "back is drawn under front"
    );
    assert_eq!(page("nope").0, 400);

    // Bad input, and a trace another tenant cannot see.
    let (status, p) = d.get("/v1/traces/not-a-trace");
    assert_eq!(
        (status, p["code"].as_str()),
        (400, Some("invalid-trace-id"))
    );
    let (status, p) = d.get("/v1/traces/0123456789abcdef0123456789abcdef");
    assert_eq!((status, p["code"].as_str()), (404, Some("trace-not-found")));
    let (_, t) = d.post(
        "/v1/tokens",
        json!({ "tenant": "other@example.com", "role": "member" }),
    );
    let (status, _) = d.get_as(
        t["token"].as_str().unwrap(),
        &format!("/v1/traces/{trace_id}"),
    );
    assert_eq!(status, 404);
}
