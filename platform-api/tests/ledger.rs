//! The ledger through the platform API, as an admin uses it: a batch written atomically and
//! idempotently, balances and turnovers per group, events a page at a time, the NDJSON export
//! from a watermark once the daemon's own sequencer has stamped the events; members get 403.
//! On the SQLite file in the data directory, and on PostgreSQL (`--ledger postgres://…`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Daemon, wait_until};
use serde_json::{Value, json};

fn account(tenant: &str) -> Value {
    json!({ "type": "usage", "key": { "tenant": tenant, "currency": "EUR" } })
}

fn usage(tenant: &str, service: &str, amount: i64, day: u32, key: &str) -> Value {
    json!({
        "account": account(tenant),
        "aux": { "service": service, "resource": "vcpu" },
        "amount": amount,
        "effective_at": format!("2026-11-{day:02}T12:00:00Z"),
        "idempotency_key": key,
        "info": { "record": key },
    })
}

fn export(d: &Daemon, token: &str, after: u64) -> (u16, Vec<Value>) {
    let r = d
        .http
        .get(d.api(&format!("/v1/ledger/export?after={after}")))
        .bearer_auth(token)
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().unwrap();
    (
        status,
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
    )
}

fn the_ledger_answers_an_admin(d: &Daemon) {
    let batch = json!({ "events": [
        usage("ada@example.com", "api", 300, 2, "r1"),
        usage("ada@example.com", "web", 50, 3, "r2"),
        usage("ada@example.com", "api", -100, 9, "refund"),
        usage("bob@example.com", "api", 7, 2, "b1"),
    ]});
    let (status, written) = d.post("/v1/ledger/batches", batch.clone());
    assert_eq!(status, 200, "{written}");
    assert!(
        written
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["status"] == "new")
    );
    let (status, again) = d.post("/v1/ledger/batches", batch);
    assert_eq!(status, 200);
    assert!(
        again
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["status"] == "already_written")
    );
    assert_eq!(again[0]["id"], written[0]["id"]);
    let (status, p) = d.post(
        "/v1/ledger/batches",
        json!({ "events": [usage("ada@example.com", "api", 1, 4, "new-one"), usage("ada@example.com", "api", 999, 2, "r1")] }),
    );
    assert_eq!(
        (status, p["code"].as_str()),
        (409, Some("idempotency-conflict")),
        "{p}"
    );

    let (status, b) = d.post(
        "/v1/ledger/balances",
        json!({ "account": account("ada@example.com"), "group_by": ["service"], "at": "2026-12-01" }),
    );
    assert_eq!(status, 200, "{b}");
    assert_eq!(
        b["balances"],
        json!([{ "group": { "service": "api" }, "balance": 200 }, { "group": { "service": "web" }, "balance": 50 }]),
        "new-one of the refused batch was not kept"
    );
    assert_eq!(b["at"], "2026-12-01T00:00:00.000000Z");
    let (status, t) = d.post(
        "/v1/ledger/turnovers",
        json!({ "account": account("ada@example.com"), "from": "2026-11-03", "to": "2026-11-10" }),
    );
    assert_eq!(status, 200, "{t}");
    assert_eq!(
        t["turnovers"],
        json!([{ "group": {}, "opening": 300, "debit": 50, "credit": 100, "closing": 250 }])
    );
    let (status, page) = d.post(
        "/v1/ledger/events",
        json!({ "type": "usage", "key": { "tenant": "ada@example.com" }, "from": "2026-11-01", "to": "2026-12-01", "limit": 2 }),
    );
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    let (_, rest) = d.post(
        "/v1/ledger/events",
        json!({ "type": "usage", "key": { "tenant": "ada@example.com" }, "from": "2026-11-01", "to": "2026-12-01", "after": page["next"] }),
    );
    assert_eq!(rest["events"][0]["idempotency_key"], "refund");
    assert!(rest.get("next").is_none());

    // Bad input: a clear problem with a stable code.
    for (path, body, status, code) in [
        (
            "/v1/ledger/balances",
            json!({ "account": account("a"), "group_by": ["env", "day"] }),
            422,
            "grouping-not-allowed",
        ),
        (
            "/v1/ledger/balances",
            json!({ "account": { "type": "usgae", "key": {} } }),
            422,
            "unknown-account-type",
        ),
        (
            "/v1/ledger/balances",
            json!({ "account": { "type": "usage", "key": { "tenant": "a" } } }),
            422,
            "missing-key-attribute",
        ),
        (
            "/v1/ledger/balances",
            json!({ "account": account("a"), "at": "yesterday" }),
            400,
            "invalid-time",
        ),
        (
            "/v1/ledger/turnovers",
            json!({ "account": account("a"), "from": "2026-11-10", "to": "2026-11-01" }),
            422,
            "invalid-period",
        ),
        (
            "/v1/ledger/batches",
            json!({ "events": [{ "account": account("a"), "amount": 1.5, "effective_at": "2026-11-01", "idempotency_key": "x" }] }),
            422,
            "invalid-body",
        ),
    ] {
        let (s, p) = d.post(path, body);
        assert_eq!((s, p["code"].as_str()), (status, Some(code)), "{path}: {p}");
    }

    // The daemon's sequencer stamps what was written; the export resumes from a watermark.
    let mut all = Vec::new();
    wait_until(
        "the sequencer stamps 4 events",
        Duration::from_secs(20),
        || {
            all = export(d, &d.token, 0).1;
            all.len() == 4
        },
    );
    let seqs: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    let (status, rest) = export(d, &d.token, 2);
    assert_eq!(status, 200);
    assert_eq!(rest, all[2..].to_vec());

    // Members do not see the ledger.
    let (_, t) = d.post(
        "/v1/tokens",
        json!({ "tenant": "ada@example.com", "role": "member" }),
    );
    let member = t["token"].as_str().unwrap();
    let (status, p) = d.post_as(
        member,
        "/v1/ledger/balances",
        json!({ "account": account("ada@example.com") }),
    );
    assert_eq!((status, p["code"].as_str()), (403, Some("forbidden")));
    let (status, _) = d.post_as(
        member,
        "/v1/ledger/batches",
        json!({ "events": [usage("ada@example.com", "api", 1, 1, "m")] }),
    );
    assert_eq!(status, 403);
    assert_eq!(export(d, member, 0).0, 403);
}

#[test]
fn on_the_sqlite_file_in_the_data_directory() {
    let d = Daemon::start_without_docker(&[]);
    the_ledger_answers_an_admin(&d);
    assert!(d.data_dir().join("ledger.db").exists());
    assert!(d.log().contains("the ledger is on SQLite"), "{}", d.log());
}

#[test]
fn on_postgresql_named_by_the_ledger_flag() {
    let server = std::env::var("FAAS_LEDGER_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:55432".into());
    let schema = format!("api_{}", uuid::Uuid::new_v4().simple());
    let status = std::process::Command::new("psql")
        .args([
            &format!("{server}/faas_ledger_b"),
            "-qc",
            &format!("CREATE SCHEMA {schema}"),
        ])
        .status()
        .unwrap();
    assert!(
        status.success(),
        "the test PostgreSQL (run scripts/setup-test-env.sh)"
    );
    let url = format!("{server}/faas_ledger_b?options=-csearch_path%3D{schema}");
    let d = Daemon::start_without_docker(&[("FAAS_PLATFORM_LEDGER", url.as_str())]);
    the_ledger_answers_an_admin(&d);
    assert!(
        d.log().contains("the ledger is on PostgreSQL"),
        "{}",
        d.log()
    );
    assert!(!d.data_dir().join("ledger.db").exists());
}

#[test]
fn a_bad_ledger_configuration_stops_the_daemon_with_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ledger.toml");
    std::fs::write(
        &config,
        "[accounts.usage]\nkey = []\n[aggregation]\ninterval = \"7h\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_faas-platform"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--router",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .arg("--ledger-config")
        .arg(&config)
        .env("XDG_CONFIG_HOME", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ledger.toml:2:7"), "{err}");
    assert!(err.contains("invalid-interval"), "{err}");
}
