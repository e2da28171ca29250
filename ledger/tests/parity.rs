//! The aggregates never change an answer: for random events (late ones included, written
//! between rounds of aggregation) and random cutoffs (interval boundaries and the instants
//! around them included), the balance from the snapshots equals the plain sum of the raw
//! events, grouped and not. On SQLite, and (fewer cases) on one PostgreSQL shard.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use faas_ledger::sqlite::SqliteStorage;
use faas_ledger::*;
use proptest::prelude::*;

const DAY: i64 = 86_400 * 1_000_000;
const NOV: i64 = 1_793_491_200 * 1_000_000;

#[derive(Debug, Clone)]
enum Step {
    /// An event: day offset, microseconds into the day, service, amount.
    Write(i64, i64, u8, i64),
    /// A round of the sequencer and the aggregator.
    Settle,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0i64..20, prop_oneof![Just(0i64), Just(DAY - 1), 0..DAY], 0u8..3, -1000i64..1000)
            .prop_map(|(d, t, s, a)| Step::Write(d, t, s, a)),
        1 => Just(Step::Settle),
    ]
}

fn cutoff() -> impl Strategy<Value = i64> {
    prop_oneof![
        (0i64..22).prop_map(|d| NOV + d * DAY),
        (0i64..22).prop_map(|d| NOV + d * DAY - 1),
        (0i64..22).prop_map(|d| NOV + d * DAY + 1),
        (0i64..22 * DAY).prop_map(|t| NOV + t),
    ]
}

fn query(group_by: &[&str]) -> BalanceQuery {
    BalanceQuery {
        account: AccountId {
            kind: "usage".into(),
            key: [("tenant", "t"), ("currency", "EUR")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        },
        group_by: group_by.iter().map(|s| s.to_string()).collect(),
    }
}

#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// The defaults, with snapshots every `interval_s` seconds.
fn config(interval_s: i64) -> LedgerConfig {
    LedgerConfig {
        interval_s,
        ..LedgerConfig::defaults()
    }
}

/// A fresh ledger, and on PostgreSQL the client and schema to drop after.
async fn ledger(
    backend: Backend,
    interval_s: i64,
) -> (Ledger, Option<(tokio_postgres::Client, String)>) {
    match backend {
        Backend::Sqlite => (
            Ledger::new(
                config(interval_s),
                Arc::new(SqliteStorage::in_memory().unwrap()),
            ),
            None,
        ),
        Backend::Postgres => {
            let server = std::env::var("FAAS_LEDGER_PG")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:55432".into());
            let url = format!("{server}/faas_ledger_a");
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            let schema = format!("p_{}", uuid::Uuid::new_v4().simple());
            client
                .batch_execute(&format!("CREATE SCHEMA {schema}"))
                .await
                .unwrap();
            let storage = faas_ledger::sharded::Sharded::connect(&[
                faas_ledger::placement::ShardSpec::whole(&format!(
                    "{url}?options=-csearch_path%3D{schema}"
                )),
            ])
            .await
            .unwrap();
            (
                Ledger::new(config(interval_s), Arc::new(storage)),
                Some((client, schema)),
            )
        }
    }
}

fn run(steps: &[Step], cutoffs: &[i64], backend: Backend, interval_s: i64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (l, cleanup) = ledger(backend, interval_s).await;
        for (i, s) in steps.iter().enumerate() {
            match *s {
                Step::Write(day, t, service, amount) => {
                    let e = NewEvent {
                        account: query(&[]).account,
                        aux: [("service".to_string(), format!("s{service}"))].into(),
                        amount,
                        effective_at: NOV + day * DAY + t,
                        idempotency_key: format!("e{i}"),
                        info: serde_json::Value::Null,
                    };
                    l.write(&[e]).await.unwrap();
                }
                Step::Settle => {
                    l.sequence("p", 60_000_000).await.unwrap();
                    l.aggregate().await.unwrap();
                }
            }
        }
        for &at in cutoffs {
            for g in [&[][..], &["service"][..]] {
                let q = query(g);
                assert_eq!(
                    l.balance(&q, at).await.unwrap(),
                    l.raw_balance(&q, at).await.unwrap(),
                    "at {at}, grouped by {g:?}"
                );
            }
        }
        drop(l);
        if let Some((client, schema)) = cleanup {
            client
                .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                .await
                .unwrap();
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn balance_via_aggregates_equals_the_sum_of_raw_events(
        steps in proptest::collection::vec(step(), 1..60),
        cutoffs in proptest::collection::vec(cutoff(), 1..12),
    ) {
        run(&steps, &cutoffs, Backend::Sqlite, 86_400);
    }

    /// Snapshots every 6 hours: several a day, so a group's latest one can lie inside the
    /// day a cutoff is in.
    #[test]
    fn with_snapshots_more_often_than_daily(
        steps in proptest::collection::vec(step(), 1..60),
        cutoffs in proptest::collection::vec(cutoff(), 1..12),
    ) {
        run(&steps, &cutoffs, Backend::Sqlite, 6 * 3600);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn on_postgresql_too(
        steps in proptest::collection::vec(step(), 1..60),
        cutoffs in proptest::collection::vec(cutoff(), 1..12),
    ) {
        run(&steps, &cutoffs, Backend::Postgres, 86_400);
    }
}
