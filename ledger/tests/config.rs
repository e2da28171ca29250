//! A bad ledger configuration is reported like a bad app.toml: every problem at once, each at
//! its file:line:column with what was expected and a hint.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use faas_ledger::LedgerConfig;

#[test]
fn every_problem_of_a_bad_config_at_once() {
    let text = r#"[accounts.credits]
key = ["tenant", "tenant"]
aux = ["grant", "tenant"]
group_by = [["grant"], ["colour"]]
kye = 1

[accounts.Bad]
key = ["x"]

[locks.payout]

[aggregation]
interval = "7h"

[acounts]
"#;
    let report = LedgerConfig::with_overrides("ledger.toml", text).unwrap_err();
    let codes: Vec<&str> = report.diagnostics.iter().map(|d| d.code).collect();
    for code in [
        "duplicate-attribute",
        "unknown-attribute",
        "unknown-key",
        "invalid-name",
        "missing-key",
        "invalid-interval",
    ] {
        assert!(codes.contains(&code), "missing {code} in {codes:?}");
    }
    let colour = report
        .located()
        .into_iter()
        .find(|d| d.diagnostic.code == "unknown-attribute")
        .map(|d| (d.line, d.column));
    assert_eq!(colour, Some((4, 25)), "the span of `colour`");
    insta::assert_snapshot!(report.render(false));
}

#[test]
fn a_config_that_is_not_toml_says_where() {
    let report = LedgerConfig::with_overrides("ledger.toml", "[accounts.usage\n").unwrap_err();
    assert_eq!(report.diagnostics[0].code, "toml-syntax");
    assert_eq!(report.located()[0].line, 1);
}

#[test]
fn shards_must_cover_the_hash_space_once() {
    let good = r#"[[storage.shards]]
url = "postgres://ledger@db-a/ledger"
from = "00"
to = "8"

[[storage.shards]]
url = "postgres://ledger@db-b/ledger"
from = "8"
"#;
    let c = LedgerConfig::with_overrides("ledger.toml", good).unwrap();
    assert_eq!(c.shards.len(), 2);
    assert_eq!((c.shards[1].from, c.shards[1].to), (1 << 63, None));
    let gap = r#"[[storage.shards]]
url = "postgres://ledger@db-a/ledger"
from = "00"
to = "7"

[[storage.shards]]
url = "mysql://ledger@db-b/ledger"
from = "8"
to = "zz"
"#;
    let report = LedgerConfig::with_overrides("ledger.toml", gap).unwrap_err();
    let codes: Vec<&str> = report.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(
        codes,
        ["invalid-url", "invalid-hash-bound"],
        "{}",
        report.render(false)
    );
    let gap = gap
        .replace("mysql", "postgres")
        .replace("to = \"zz\"\n", "");
    let report = LedgerConfig::with_overrides("ledger.toml", &gap).unwrap_err();
    assert_eq!(report.diagnostics[0].code, "gap-between-shards");
    assert_eq!(report.located()[0].line, 6, "at the shard after the gap");
    insta::assert_snapshot!(report.render(false));
}
