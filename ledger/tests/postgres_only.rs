//! What only the PostgreSQL storage has: monthly partitions of the events, made ahead of time
//! and for late months out of the default partition, and transactions a crash left prepared
//! between the two phases of a commit across shards, settled by the recorded decision.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use faas_ledger::placement::ShardSpec;
use faas_ledger::postgres::schema;
use faas_ledger::sharded::Sharded;

fn server() -> String {
    std::env::var("FAAS_LEDGER_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:55432".into())
}

async fn connect(db: &str) -> tokio_postgres::Client {
    let (client, conn) =
        tokio_postgres::connect(&format!("{}/{db}", server()), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(conn);
    client
}

/// A database of its own: recovery settles every prepared transaction of its database, and
/// the other tests' commits must not be among them.
async fn own_database(name: &str) -> tokio_postgres::Client {
    let admin = connect("postgres").await;
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .unwrap()
        .is_some();
    if !exists {
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
    }
    let client = connect(name).await;
    for r in client
        .query(
            "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()",
            &[],
        )
        .await
        .unwrap()
    {
        let gid: String = r.get(0);
        client
            .batch_execute(&format!("ROLLBACK PREPARED '{gid}'"))
            .await
            .unwrap();
    }
    client
}

#[tokio::test]
async fn a_batch_left_prepared_by_a_crash_is_committed_when_decided_and_rolled_back_when_not() {
    let db = "faas_ledger_recovery";
    let client = own_database(db).await;
    let schema_name = format!("r_{}", uuid::Uuid::new_v4().simple());
    client
        .batch_execute(&format!("CREATE SCHEMA {schema_name}"))
        .await
        .unwrap();
    let url = format!("{}/{db}?options=-csearch_path%3D{schema_name}", server());
    let sharded = Sharded::connect(&[ShardSpec::whole(&url)]).await.unwrap();
    // What a coordinator that died after the first phase leaves: two prepared transactions,
    // one whose decision it recorded and one whose it did not.
    let (crashed, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    for (name, decided) in [("decided", true), ("undecided", false)] {
        let gid = format!("faas-ledger-{}-0", uuid::Uuid::new_v4());
        crashed
            .batch_execute(&format!(
                "BEGIN; INSERT INTO states (kind, key, version, value) VALUES ('consumer', '{name}', 1, '1');
                 PREPARE TRANSACTION '{gid}'"
            ))
            .await
            .unwrap();
        if decided {
            crashed
                .execute("INSERT INTO decisions (gid) VALUES ($1)", &[&gid])
                .await
                .unwrap();
        }
    }
    assert_eq!(
        sharded.recover(Duration::from_secs(3600)).await.unwrap(),
        0,
        "young prepared transactions may still be finishing"
    );
    assert_eq!(sharded.recover(Duration::ZERO).await.unwrap(), 2);
    let kept: Vec<String> = crashed
        .query("SELECT key FROM states ORDER BY key", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(kept, ["decided"]);
}

#[tokio::test]
async fn months_get_partitions_ahead_and_a_late_month_moves_out_of_the_default_one() {
    let db = "faas_ledger_a";
    let client = connect(db).await;
    let schema_name = format!("m_{}", uuid::Uuid::new_v4().simple());
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema_name}; SET search_path = {schema_name}"
        ))
        .await
        .unwrap();
    let url = format!("{}/{db}?options=-csearch_path%3D{schema_name}", server());
    let shard = faas_ledger::postgres::PgShard::connect(&url).await.unwrap();
    let partitions = || async {
        client
            .query(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = $1 AND c.relkind = 'r' AND c.relname <> 'events_default' ORDER BY 1",
                &[&schema_name],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    };
    // The month before now, this month and three ahead.
    assert_eq!(partitions().await.len(), 5, "{:?}", partitions().await);
    // An event of 2020-03 lands in the default partition, and moves when its month is made.
    let (_, _, march, _) = schema::month_of(1_583_020_800 * 1_000_000 + 5);
    client
        .execute(
            "INSERT INTO events (account, aux, amount, effective_at, idem, info) VALUES (1, '{}', 5, $1, 'old', 'null')",
            &[&(march + 10)],
        )
        .await
        .unwrap();
    let in_default = || async {
        client
            .query_one("SELECT count(*) FROM events_default", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    assert_eq!(in_default().await, 1);
    assert_eq!(
        shard.ensure_partitions(march).await.unwrap(),
        5,
        "2020-02 to 2020-06"
    );
    assert_eq!(in_default().await, 0, "moved to its month");
    let moved: i64 = client
        .query_one(
            "SELECT count(*) FROM events_2020_03 WHERE idem = 'old'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(moved, 1);
    assert_eq!(
        shard.ensure_partitions(march).await.unwrap(),
        0,
        "idempotent"
    );
    client
        .batch_execute(&format!("DROP SCHEMA {schema_name} CASCADE"))
        .await
        .unwrap();
}
