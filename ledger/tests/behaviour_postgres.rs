//! The behaviour suite on PostgreSQL with two shards: two databases of the test server
//! (`scripts/setup-test-env.sh` starts it), each case in fresh schemas of both.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod suite;

use faas_ledger::placement::ShardSpec;
use faas_ledger::{Ledger, LedgerConfig};

/// The test server (`FAAS_LEDGER_PG`, default: the one the setup starts).
fn server() -> String {
    std::env::var("FAAS_LEDGER_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:55432".into())
}

/// Two shards, each half of the hash space, in a new schema of each test database.
async fn ledger() -> (Ledger, ()) {
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut shards = Vec::new();
    for (db, from, to) in [
        ("faas_ledger_a", 0, Some(1 << 63)),
        ("faas_ledger_b", 1 << 63, None),
    ] {
        let url = format!("{}/{db}", server());
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| {
                panic!("the test PostgreSQL at {url} (run scripts/setup-test-env.sh): {e}")
            });
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .unwrap();
        shards.push(ShardSpec {
            url: format!("{url}?options=-csearch_path%3D{schema}"),
            from,
            to,
        });
    }
    let mut config = LedgerConfig::defaults();
    config.shards = shards;
    let ledger = faas_ledger::background::open(config, std::path::Path::new("/nonexistent"))
        .await
        .unwrap();
    assert_eq!(ledger.shards(), 2);
    (ledger, ())
}

suite::cases!(ledger);
