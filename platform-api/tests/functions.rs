//! Function runs on the real Docker Engine: how a run ends (its exit code, a timeout, a cancel)
//! with its output kept; what a run that burns a core costs, priced at the tenant's tariff and
//! mailed to the SMTP sink of the test setup; a daemon killed while runs go on adopts them;
//! bad input records and starts nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Daemon, wait_until};
use serde_json::{Value, json};

const SMTP: &str = "127.0.0.1:2525";
const MAIL_DIR: &str = "/var/lib/faas-test/mail";

fn start(d: &Daemon, body: Value) -> Value {
    let (status, run) = d.post("/v1/functions/run", body);
    assert_eq!(status, 201, "{run}");
    run
}

/// The run once it has ended and been priced.
fn ended(d: &Daemon, id: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let (status, run) = d.get(&format!("/v1/functions/runs/{id}?wait=10"));
        assert_eq!(status, 200, "{run}");
        if !["pending", "running"].contains(&run["state"].as_str().unwrap())
            && run["cost_nanos"].is_number()
        {
            return run;
        }
        assert!(std::time::Instant::now() < deadline, "{run}\n{}", d.log());
    }
}

fn output(d: &Daemon, id: &str) -> Vec<(String, String)> {
    let text = d.text(&format!("/v1/functions/runs/{id}/logs"));
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|r| {
            (
                r["stream"].as_str().unwrap().to_owned(),
                r["line"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn sh(script: &str) -> Value {
    json!(["sh", "-c", script])
}

#[test]
fn a_run_ends_as_its_command_does_and_its_output_is_kept() {
    let d = Daemon::start();
    let run = start(
        &d,
        json!({ "image_name": "busybox:stable", "command": sh("echo to-out; echo to-err >&2; exit 3"), "env": { "GREETING": "hi" } }),
    );
    assert_eq!(run["state"], "running", "{run}");
    let run = ended(&d, run["id"].as_str().unwrap());
    assert_eq!(run["state"], "failed", "{run}");
    assert_eq!(run["exit_code"], 3);
    assert_eq!(run["reason"], "exited with code 3");
    let out = output(&d, run["id"].as_str().unwrap());
    assert!(out.contains(&("stdout".into(), "to-out".into())), "{out:?}");
    assert!(out.contains(&("stderr".into(), "to-err".into())), "{out:?}");

    // A timeout stops it.
    let run = start(
        &d,
        json!({ "image_name": "busybox:stable", "command": sh("sleep 60"), "timeout": "1s" }),
    );
    let run = ended(&d, run["id"].as_str().unwrap());
    assert_eq!(run["state"], "timed_out", "{run}");

    // A cancel stops it; a second one is refused.
    let run = start(
        &d,
        json!({ "image_name": "busybox:stable", "command": sh("sleep 60") }),
    );
    let id = run["id"].as_str().unwrap();
    let (status, body) = d.post(&format!("/v1/functions/runs/{id}/cancel"), json!({}));
    assert_eq!(status, 202, "{body}");
    let run = ended(&d, id);
    assert_eq!(run["state"], "cancelled", "{run}");
    let (status, body) = d.post(&format!("/v1/functions/runs/{id}/cancel"), json!({}));
    assert_eq!(status, 409, "{body}");

    // Its container is gone once it has ended.
    assert!(
        !std::process::Command::new("docker")
            .args(["inspect", &format!("faas-{id}")])
            .output()
            .unwrap()
            .status
            .success()
    );
    let (_, list) = d.get("/v1/functions/runs");
    assert_eq!(list.as_array().unwrap().len(), 3, "{list}");
}

#[test]
fn a_run_is_billed_what_it_used_plus_its_price_and_mailed() {
    let d = Daemon::start_with(&[
        ("FAAS_PLATFORM_SMTP_RELAY", SMTP),
        ("FAAS_PLATFORM_METER_INTERVAL", "1s"),
    ]);
    let tenant = format!("runner-{}@example.com", std::process::id());
    let (status, body) = d.post(
        "/v1/tariffs",
        json!({ "name": "standard", "currency": "EUR", "effective_from": "2026-01-01T00:00:00Z",
                "prices": { "vcpu_second": "0.001", "gib_second": "0", "instance_second": "0",
                            "million_requests": "0", "run": "0.5" } }),
    );
    assert_eq!(status, 201, "{body}");
    // A core's worth of work for 3 s; at its end the run says how much CPU its cgroup used
    // (on a busy machine, less than 3 s).
    let run = start(
        &d,
        json!({ "image_name": "busybox:stable", "tenant": tenant, "cpu": 2,
                "command": sh("timeout 3 sh -c 'while :; do :; done'; cat /sys/fs/cgroup/cpuacct/cpuacct.usage 2>/dev/null || sed -n 's/^usage_usec //p' /sys/fs/cgroup/cpu.stat | sed 's/$/000/'") }),
    );
    let id = run["id"].as_str().unwrap().to_owned();
    let run = ended(&d, &id);
    assert_eq!(run["state"], "exited", "{run}");
    let used_ns: f64 = output(&d, &id)
        .iter()
        .find(|(stream, _)| stream == "stdout")
        .unwrap()
        .1
        .parse()
        .unwrap();
    let cost = run["cost_nanos"].as_i64().unwrap();
    // 0.5 EUR for the run, 0.001 EUR per vCPU-second (a nano-EUR per vCPU-µs).
    let billed_s = (cost - 500_000_000) as f64 / 1e6;
    let used_s = used_ns / 1e9;
    assert!(used_s > 1.0, "the loop ran {used_s} s");
    eprintln!("billed {billed_s} vCPU-s for {used_s} used");
    assert!(
        (billed_s - used_s).abs() <= 0.05 * used_s,
        "billed {billed_s} vCPU-s for {used_s} used ({cost} nano-EUR): {}",
        d.log()
    );
    assert_eq!(run["currency"], "EUR");
    // The bill shows the run.
    let (_, bill) = d.get(&format!("/v1/billing/{tenant}?by=resource"));
    assert!(bill.to_string().contains("\"run\""), "{bill}");
    // The mail, with that amount.
    let amount = format!("{} EUR", faas_spec::money::format_nanos(cost));
    wait_until("the run's report mailed", Duration::from_secs(30), || {
        std::fs::read_dir(MAIL_DIR)
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .ends_with(&format!("-{tenant}.eml"))
            })
            .any(|e| {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                text.contains(&id) && text.contains(&amount)
            })
    });
    let (_, run) = d.get(&format!("/v1/functions/runs/{id}"));
    assert_eq!(run["notified"], "sent", "{run}");
}

#[test]
fn a_daemon_killed_during_runs_adopts_them_after_its_restart() {
    let mut d = Daemon::start();
    let long = start(
        &d,
        json!({ "image_name": "busybox:stable", "command": sh("echo started; sleep 4; echo done; exit 5") }),
    );
    let short = start(
        &d,
        json!({ "image_name": "busybox:stable", "command": sh("sleep 1; exit 7") }),
    );
    d.kill();
    // The short one ends while the daemon is down.
    let short_id = short["id"].as_str().unwrap();
    wait_until(
        "the short run's container ended",
        Duration::from_secs(20),
        || {
            let out = std::process::Command::new("docker")
                .args([
                    "inspect",
                    "-f",
                    "{{.State.Running}}",
                    &format!("faas-{short_id}"),
                ])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim() == "false"
        },
    );
    d.restart(&[]);
    let short = ended(&d, short_id);
    assert_eq!(short["state"], "failed", "{short}");
    assert_eq!(short["exit_code"], 7);
    let long_id = long["id"].as_str().unwrap();
    let long = ended(&d, long_id);
    assert_eq!(long["exit_code"], 5, "{long}");
    let out = output(&d, long_id);
    let lines: Vec<&str> = out
        .iter()
        .filter(|(stream, _)| stream != "event")
        .map(|(_, l)| l.as_str())
        .collect();
    assert_eq!(lines, ["started", "done"], "each line once");
}

#[test]
fn bad_requests_record_and_start_nothing() {
    let d = Daemon::start();
    let cases = [
        (
            json!({ "image_name": "no-such-image:never" }),
            404,
            "image-not-found",
        ),
        (
            json!({ "image_name": "busybox:stable", "timeout": "soon" }),
            400,
            "invalid-timeout",
        ),
        (
            json!({ "image_name": "busybox:stable", "timeout": "25h" }),
            400,
            "invalid-timeout",
        ),
        (
            json!({ "image_name": "busybox:stable", "timeout": "1h30m" }),
            400,
            "invalid-timeout",
        ),
        (
            json!({ "image_name": "busybox:stable", "memory": "lots" }),
            400,
            "invalid-memory",
        ),
        (
            json!({ "image_name": "busybox:stable", "cpu": 0 }),
            400,
            "invalid-cpu",
        ),
        (
            json!({ "image_name": "busybox:stable", "env": { "1BAD": "x" } }),
            400,
            "invalid-env",
        ),
        (
            json!({ "image_name": "busybox:stable", "email": "not-an-address" }),
            400,
            "invalid-email",
        ),
        (
            json!({ "image_name": "busybox:stable", "command": [] }),
            400,
            "invalid-command",
        ),
    ];
    for (body, status, code) in cases {
        let (got, answer) = d.post("/v1/functions/run", body.clone());
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(answer["code"], code, "{body}: {answer}");
    }
    let (status, t) = d.post(
        "/v1/tokens",
        json!({ "tenant": "ada@example.com", "role": "member" }),
    );
    assert_eq!(status, 201, "{t}");
    let member = t["token"].as_str().unwrap();
    let (status, answer) = d.post_as(
        member,
        "/v1/functions/run",
        json!({ "image_name": "busybox:stable", "tenant": "bob@example.com" }),
    );
    assert_eq!(status, 403, "{answer}");
    let (_, list) = d.get("/v1/functions/runs");
    assert_eq!(list.as_array().unwrap().len(), 0, "{list}");
}
