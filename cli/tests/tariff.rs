//! `faas tariff` as an admin runs it against the local platform: create, update from a date
//! (prices not given carry over), assign to a tenant and as the default, archive, list as
//! JSON; mistakes say what is wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::platform::DevBox;
use common::{code, stderr, stdout, succeeded};

fn tariff(d: &DevBox, args: &[&str]) -> std::process::Output {
    let mut all = vec!["tariff"];
    all.extend_from_slice(args);
    d.run(&all)
}

#[test]
fn an_admin_creates_updates_assigns_and_archives_tariffs() {
    let d = DevBox::new();
    succeeded(&d.run(&["platform", "start"]));
    let out = tariff(
        &d,
        &[
            "create",
            "standard",
            "--currency",
            "EUR",
            "--vcpu-second",
            "0.000012",
            "--gib-second",
            "0.0000015",
            "--from",
            "2026-01-01",
        ],
    );
    let err = succeeded(&out);
    assert!(err.contains("Created"), "{err}");
    let text = stdout(&out);
    assert!(text.contains("standard — EUR (default)"), "{text}");
    assert!(text.contains("vCPU-second        0.000012 EUR"), "{text}");

    // Only the CPU price changes; the memory price carries over.
    let out = tariff(
        &d,
        &[
            "update",
            "standard",
            "--vcpu-second",
            "0.00001",
            "--from",
            "2026-11-15",
            "--json",
        ],
    );
    let t: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(t["versions"][1]["prices"]["vcpu_second"], "0.00001");
    assert_eq!(t["versions"][1]["prices"]["gib_second"], "0.0000015");
    let out = tariff(&d, &["update", "standard", "--from", "2026-11-01"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("must start after"),
        "{}",
        stderr(&out)
    );

    succeeded(&tariff(
        &d,
        &[
            "create",
            "startup",
            "--currency",
            "EUR",
            "--vcpu-second",
            "0.000005",
        ],
    ));
    let err = succeeded(&tariff(
        &d,
        &["assign", "startup", "--tenant", "ada@example.com"],
    ));
    assert!(err.contains("startup to ada@example.com"), "{err}");
    let out = tariff(&d, &["assign", "startup"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("--tenant EMAIL"), "{}", stderr(&out));
    succeeded(&tariff(&d, &["assign", "startup", "--default"]));
    succeeded(&tariff(&d, &["archive", "standard"]));

    let list: Vec<serde_json::Value> =
        serde_json::from_slice(&tariff(&d, &["list", "--json"]).stdout).unwrap();
    let names: Vec<(&str, bool, bool)> = list
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap(),
                t["default"] == true,
                t["archived_at"].is_string(),
            )
        })
        .collect();
    assert_eq!(names, [("standard", false, true), ("startup", true, false)]);
    let out = tariff(&d, &["create", "bad", "--currency", "EUR", "--run=-0.5"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("not negative"), "{}", stderr(&out));
}
