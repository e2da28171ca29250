//! `faas ledger` as an admin runs it against the local platform: a batch written from NDJSON
//! (again: nothing new), balances per group as a table and as JSON, turnovers over a period,
//! events through every page; bad flags and a member's token say what is wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::platform::DevBox;
use common::{code, stderr, stdout, succeeded};

const EVENTS: &str = r#"{"account": {"type": "usage", "key": {"tenant": "ada@example.com", "currency": "EUR"}}, "aux": {"service": "api"}, "amount": 3000000000, "effective_at": "2026-11-02T10:00:00Z", "idempotency_key": "u1"}
{"account": {"type": "usage", "key": {"tenant": "ada@example.com", "currency": "EUR"}}, "aux": {"service": "web"}, "amount": 500000000, "effective_at": "2026-11-05T10:00:00Z", "idempotency_key": "u2"}

{"account": {"type": "usage", "key": {"tenant": "ada@example.com", "currency": "EUR"}}, "aux": {"service": "api"}, "amount": -1000000000, "effective_at": "2026-11-20T10:00:00Z", "idempotency_key": "credit-1", "info": {"why": "outage"}}
"#;

const ADA: [&str; 4] = ["--key", "tenant=ada@example.com", "--key", "currency=EUR"];

fn ledger(d: &DevBox, args: &[&str]) -> std::process::Output {
    let mut all = vec!["ledger"];
    all.extend_from_slice(args);
    d.run(&all)
}

#[test]
fn an_admin_writes_and_reads_the_ledger() {
    let d = DevBox::new();
    succeeded(&d.run(&["platform", "start"]));
    let file = d.work().join("usage.ndjson");
    std::fs::write(&file, EVENTS).unwrap();
    let path = file.to_str().unwrap();
    let err = succeeded(&ledger(&d, &["write", path]));
    assert!(err.contains("3 new events, 0 already written"), "{err}");
    let err = succeeded(&ledger(&d, &["write", path]));
    assert!(err.contains("0 new events, 3 already written"), "{err}");

    let mut args = vec!["balance"];
    args.extend(ADA);
    args.extend(["--group-by", "service", "--at", "2026-12-01"]);
    let out = ledger(&d, &args);
    succeeded(&out);
    assert_eq!(
        stdout(&out),
        "service     balance\napi      2000000000\nweb       500000000\n"
    );
    args.push("--json");
    let json: serde_json::Value = serde_json::from_slice(&ledger(&d, &args).stdout).unwrap();
    assert_eq!(json["balances"][0]["balance"], 2_000_000_000i64);

    let mut args = vec!["turnovers"];
    args.extend(ADA);
    args.extend(["--from", "2026-11-03", "--to", "2026-12-01"]);
    let out = ledger(&d, &args);
    assert_eq!(
        succeeded_stdout(&out),
        "   opening      debit      credit     closing\n3000000000  500000000  1000000000  2500000000\n"
    );

    // Every page of events through the cursor (the API returns at most `limit` per call).
    let out = ledger(
        &d,
        &[
            "events",
            "--key",
            "tenant=ada@example.com",
            "--from",
            "2026-11-01",
            "--to",
            "2026-12-01",
            "--json",
        ],
    );
    let events: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let keys: Vec<&str> = events
        .iter()
        .map(|e| e["idempotency_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["u1", "u2", "credit-1"]);
    let out = ledger(
        &d,
        &[
            "events",
            "--aux",
            "service=api",
            "--from",
            "2026-11-01",
            "--to",
            "2026-12-01",
            "--limit",
            "1",
        ],
    );
    let text = succeeded_stdout(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains("2026-11-02T10:00:00") && text.contains("u1"),
        "{text}"
    );

    // Mistakes say what is wrong and what to do.
    let out = ledger(&d, &["balance", "--key", "tenant"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("is not NAME=VALUE"),
        "{}",
        stderr(&out)
    );
    let out = ledger(&d, &["balance", "--key", "tenant=ada@example.com"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("currency"), "{}", stderr(&out));
    let mut args = vec!["balance"];
    args.extend(ADA);
    args.extend(["--group-by", "colour"]);
    let err = stderr(&ledger(&d, &args));
    assert!(err.contains("may not be grouped by `colour`"), "{err}");

    // A member's token is refused.
    let token = std::fs::read_to_string(d.data_dir().join("admin-token")).unwrap();
    let member = created_member(&d, token.trim());
    let out = d
        .cmd_in(&d.work())
        .args([
            "ledger",
            "balance",
            "--key",
            "tenant=a",
            "--key",
            "currency=EUR",
        ])
        .env("FAAS_TOKEN", member)
        .output()
        .unwrap();
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("admin token"), "{}", stderr(&out));
}

fn succeeded_stdout(out: &std::process::Output) -> String {
    succeeded(out);
    stdout(out)
}

fn created_member(d: &DevBox, admin: &str) -> String {
    let r = reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{}/v1/tokens", d.api_port))
        .bearer_auth(admin)
        .json(&serde_json::json!({ "tenant": "ada@example.com", "role": "member" }))
        .send()
        .unwrap();
    let body: serde_json::Value = r.json().unwrap();
    body["token"].as_str().unwrap().to_owned()
}
