//! `faas service metrics` and `faas service problems` as a developer runs them: a
//! python-function service on the real Docker Engine, called through the router; its figures per
//! release and per function (scraped from the runtime's `/_metrics`), and an unhandled exception
//! grouped by type and place with its count.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::platform::DevBox;
use common::{code, stderr, stdout, succeeded};

fn call(d: &DevBox, function: &str, body: &str) -> u16 {
    reqwest::blocking::Client::new()
        .post(format!(
            "http://127.0.0.1:{}/functions/{function}",
            d.router_port
        ))
        .header("host", "calc.localhost")
        .header("content-type", "application/json")
        .body(body.to_owned())
        .timeout(Duration::from_secs(10))
        .send()
        .unwrap()
        .status()
        .as_u16()
}

fn poll(what: &str, mut f: impl FnMut() -> Option<serde_json::Value>) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within 60 s");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn metrics_per_release_and_function_and_exceptions_grouped() {
    let d = DevBox::new();
    succeeded(&d.run(&[
        "launch",
        "calc",
        "--template",
        "python-function",
        "--no-input",
        "--owner",
        "ada@example.com",
    ]));
    let dir = d.work().join("calc");
    let functions = dir.join("app").join("functions.py");
    let mut code_text = std::fs::read_to_string(&functions).unwrap();
    code_text.push_str("\n\ndef ratio(a: float, b: float) -> float:\n    \"\"\"a over b, unguarded.\"\"\"\n    return a / b\n");
    std::fs::write(&functions, code_text).unwrap();
    succeeded(&d.deploy_prod(&dir, &[]));

    for _ in 0..5 {
        assert_eq!(call(&d, "add", r#"{"a": 1, "b": 2}"#), 200);
    }
    for _ in 0..2 {
        assert_eq!(call(&d, "ratio", r#"{"a": 1, "b": 0}"#), 500);
    }

    let metrics = poll("the functions' figures", || {
        let out = d.run_in(&dir, &["service", "metrics", "--since", "15m", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&stdout(&out)).ok()?;
        let f = v["functions"].as_array()?;
        let add = f.iter().find(|f| f["function"] == "add")?;
        let ratio = f.iter().find(|f| f["function"] == "ratio")?;
        (add["requests"].as_u64()? >= 5 && ratio["errors_5xx"].as_u64()? >= 2).then_some(v)
    });
    let release = &metrics["releases"][0];
    assert_eq!(release["current"], true, "{metrics:#}");
    assert!(release["requests"].as_u64().unwrap() >= 7, "{metrics:#}");
    assert!(release["p99_ms"].as_f64().is_some(), "{metrics:#}");
    let text = stdout(&d.run_in(&dir, &["service", "metrics", "--since", "15m"]));
    assert!(text.contains("RELEASE") && text.contains("v2*"), "{text}");
    assert!(
        text.contains("FUNCTION") && text.contains("ratio"),
        "{text}"
    );

    let problems = poll("the exception grouped", || {
        let out = d.run_in(&dir, &["service", "problems", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&stdout(&out)).ok()?;
        let group = v["errors"].as_array()?.first()?.clone();
        (group["count"].as_u64()? >= 2).then_some(v)
    });
    let group = &problems["errors"][0];
    assert_eq!(group["error_type"], "ZeroDivisionError", "{problems:#}");
    assert_eq!(group["function"], "ratio");
    assert!(
        group["location"]
            .as_str()
            .unwrap()
            .starts_with("app/functions.py:")
            && group["location"].as_str().unwrap().ends_with(" in ratio"),
        "{problems:#}"
    );
    assert!(
        problems["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["kind"] == "exception"),
        "{problems:#}"
    );
    let text = stdout(&d.run_in(&dir, &["service", "problems"]));
    assert!(
        text.contains("Exceptions, grouped:")
            && text.contains("ZeroDivisionError at app/functions.py"),
        "{text}"
    );

    let out = d.run_in(&dir, &["service", "metrics", "--since", "a while"]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("since"), "{}", stderr(&out));
}
