//! `faas billing show` against the local platform, over charges in the shape the platform's
//! pricing posts them (cost on `usage`, quantity on `metered`): the table by cost with
//! subtotals and one rounding at the total, JSON with a schema version, CSV one row per group
//! and resource, hidden rows counted; mistakes say what is wrong. The metering and pricing of
//! real containers are proven in platform-api/tests/billing.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::platform::DevBox;
use common::{code, stderr, stdout, succeeded};

const TENANT: &str = "ada@example.com";

/// A charge and its quantity, as pricing posts them.
fn charge(service: &str, resource: &str, day: &str, cost: i64, micros: i64, key: &str) -> String {
    let aux = format!(
        r#"{{"service": "{service}", "env": "prod", "release": "r1", "resource": "{resource}", "day": "{day}", "version": "standard v1"}}"#
    );
    let at = format!("{day}T10:00:00Z");
    format!(
        r#"{{"account": {{"type": "usage", "key": {{"tenant": "{TENANT}", "currency": "EUR"}}}}, "aux": {aux}, "amount": {cost}, "effective_at": "{at}", "idempotency_key": "{key}"}}
{{"account": {{"type": "metered", "key": {{"tenant": "{TENANT}"}}}}, "aux": {aux}, "amount": {micros}, "effective_at": "{at}", "idempotency_key": "{key}"}}
"#
    )
}

fn setup() -> DevBox {
    let d = DevBox::new();
    succeeded(&d.run(&["platform", "start"]));
    succeeded(&d.run(&[
        "tariff",
        "create",
        "standard",
        "--currency",
        "EUR",
        "--vcpu-second",
        "0.00002",
        "--gib-second",
        "0.000003",
        "--from",
        "2026-01-01",
    ]));
    let events = [
        charge(
            "api",
            "vcpu",
            "2026-11-03",
            2_469_130_000,
            123_456_500_000,
            "c1",
        ),
        charge(
            "api",
            "memory",
            "2026-11-04",
            15_000_000,
            5_000_000_000,
            "c2",
        ),
        charge("web", "vcpu", "2026-11-20", 20_000_000, 1_000_000_000, "c3"),
        // October: a row with no usage in November.
        charge("web", "memory", "2026-10-20", 3_000, 1_000_000, "c4"),
    ]
    .concat();
    let file = d.work().join("charges.ndjson");
    std::fs::write(&file, events).unwrap();
    succeeded(&d.run(&["ledger", "write", file.to_str().unwrap()]));
    d
}

#[test]
fn the_bill_by_service_as_a_table_as_json_and_as_csv() {
    let d = setup();
    let show = |extra: &[&str]| {
        let mut args = vec!["billing", "show", "--tenant", TENANT, "--month", "2026-11"];
        args.extend_from_slice(extra);
        d.run(&args)
    };
    let out = show(&["--by", "service"]);
    succeeded(&out);
    insta::assert_snapshot!("billing_by_service", stdout(&out));

    let out = show(&["--by", "service", "--json"]);
    let bill: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(bill["schema_version"], 1);
    assert_eq!(bill["totals"][0]["cost_nanos"], 2_504_130_000i64);
    assert_eq!(bill["totals"][0]["amount"], "2.50");
    assert_eq!(bill["totals"][0]["rounding_nanos"], -4_130_000);
    assert_eq!(bill["hidden_rows"], 1);
    assert_eq!(bill["rows"][0]["group"]["service"], "api");

    let out = show(&["--by", "service,day", "--csv", "--all"]);
    let csv = stdout(&out);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "service,day,resource,tariff,version,quantity,unit,unit_price,price_unit,currency,cost,cost_nanos"
    );
    assert_eq!(
        lines[1],
        "api,2026-11-03,vcpu,standard,1,123456.5,vCPU-s,0.00002,vCPU-s,EUR,2.46913,2469130000"
    );
    assert_eq!(
        lines.len(),
        5,
        "three rows with usage and the October one: {csv}"
    );
}

#[test]
fn mistakes_say_what_is_wrong() {
    let d = setup();
    let out = d.run(&["billing", "show", "--by", "colour"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("service, env, resource, release, day"),
        "{}",
        stderr(&out)
    );
    let out = d.run(&["billing", "show", "--month", "2026-13"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("YYYY-MM"), "{}", stderr(&out));
    let out = d.run(&[
        "billing",
        "show",
        "--month",
        "2026-11",
        "--from",
        "2026-11-01",
    ]);
    assert_eq!(code(&out), 2);
}

#[test]
fn an_admin_closes_a_month_and_lists_its_invoices() {
    let d = setup();
    let close = |extra: &[&str]| {
        let mut args = vec![
            "billing", "invoice", "close", "--month", "2026-11", "--tenant", TENANT,
        ];
        args.extend_from_slice(extra);
        d.run(&args)
    };
    let out = close(&[]);
    let err = succeeded(&out);
    assert!(
        stdout(&out).contains("2.50 EUR  due"),
        "{}{err}",
        stdout(&out)
    );
    let again: serde_json::Value = serde_json::from_slice(&close(&["--json"]).stdout).unwrap();
    assert_eq!(again["closed_now"], 0, "closing again changes nothing");
    assert_eq!(
        again["invoices"][0]["total_nanos"],
        2_504_130_000i64 + 3_000
    );
    assert_eq!(
        again["invoices"][0]["adjustment_nanos"], 3_000,
        "October's usage, never invoiced, is carried"
    );
    let out = d.run(&["billing", "invoices", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let out = d.run(&["billing", "notifications"]);
    succeeded(&out);
    let out = d.run(&["billing", "invoice", "close", "--month", "2999-01"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("not over"), "{}", stderr(&out));
}

#[test]
fn status_and_releases_show_what_a_deployed_service_cost_this_month() {
    let d = DevBox::new();
    succeeded(&d.run(&[
        "launch",
        "priced",
        "--template",
        "static",
        "--no-input",
        "--owner",
        TENANT,
    ]));
    let dir = d.work().join("priced");
    // Nothing is priced above zero: the meter's own records of this container cost nothing,
    // so the charge below is the whole cost.
    succeeded(&d.run(&[
        "tariff",
        "create",
        "standard",
        "--currency",
        "EUR",
        "--from",
        "2026-01-01",
    ]));
    let out = d.run_in(&dir, &["service", "releases", "--json"]);
    succeeded(&out);
    let releases: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let release = releases[0]["id"].as_str().unwrap();
    let now = std::process::Command::new("date")
        .args(["-u", "+%FT%TZ"])
        .output()
        .unwrap();
    let now = String::from_utf8(now.stdout).unwrap().trim().to_owned();
    let day = &now[..10];
    let aux = format!(
        r#"{{"service": "priced", "env": "prod", "release": "{release}", "resource": "vcpu", "day": "{day}", "version": "standard v1"}}"#
    );
    let event = format!(
        r#"{{"account": {{"type": "usage", "key": {{"tenant": "{TENANT}", "currency": "EUR"}}}}, "aux": {aux}, "amount": 1234567890, "effective_at": "{now}", "idempotency_key": "status-1"}}
"#
    );
    let file = d.work().join("charge.ndjson");
    std::fs::write(&file, event).unwrap();
    succeeded(&d.run(&["ledger", "write", file.to_str().unwrap()]));

    let out = d.run_in(&dir, &["service", "status"]);
    succeeded(&out);
    let status = stdout(&out);
    assert!(
        status.contains("this month so far: 1.23 EUR (accrued, not forecast)"),
        "{status}"
    );
    let out = d.run_in(&dir, &["service", "releases"]);
    succeeded(&out);
    let listed = stdout(&out);
    assert!(listed.contains("cost 1.23 EUR"), "{listed}");
}
