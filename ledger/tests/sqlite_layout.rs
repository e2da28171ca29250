//! A ledger file of the first SQLite layout (aux JSON in each event row, sequence numbers
//! stamped per row) opens in the current one with nothing lost: the same balances, events,
//! export and watermarks, and a rewrite of an old event is "already written".
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use faas_ledger::sqlite::SqliteStorage;
use faas_ledger::storage::EventFilter;
use faas_ledger::*;
use rusqlite::{Connection, params};
use serde_json::json;

const DAY: i64 = 86_400 * 1_000_000;
/// 2026-11-01T00:00:00Z in microseconds.
const NOV: i64 = 1_793_491_200 * 1_000_000;

/// The first layout's tables, as that version created them.
const LAYOUT_ONE: &str = r#"
CREATE TABLE accounts (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, key TEXT NOT NULL, UNIQUE (kind, key));
CREATE TABLE events (
    id INTEGER PRIMARY KEY, seq INTEGER UNIQUE, account INTEGER NOT NULL REFERENCES accounts(id),
    aux TEXT NOT NULL, amount INTEGER NOT NULL, effective_at INTEGER NOT NULL, idem TEXT NOT NULL,
    hash BLOB NOT NULL, info TEXT NOT NULL, UNIQUE (account, idem)
);
CREATE INDEX events_by_account_time ON events (account, effective_at, seq, amount, aux);
CREATE INDEX events_unsequenced ON events (id) WHERE seq IS NULL;
CREATE TABLE snapshots (
    account INTEGER NOT NULL, grouping TEXT NOT NULL, vals TEXT NOT NULL, boundary INTEGER NOT NULL,
    debit INTEGER NOT NULL, credit INTEGER NOT NULL, PRIMARY KEY (account, grouping, vals, boundary)
) WITHOUT ROWID;
CREATE TABLE progress (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at INTEGER NOT NULL);
CREATE TABLE locks (kind TEXT NOT NULL, key TEXT NOT NULL, holder TEXT NOT NULL, mode TEXT NOT NULL,
    expires_at INTEGER NOT NULL, PRIMARY KEY (kind, key, holder));
CREATE TABLE states (kind TEXT NOT NULL, key TEXT NOT NULL, version INTEGER NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (kind, key));
"#;

/// An event row as both layouts hold it: id, account key, aux, amount, effective time,
/// idempotency key, hash, info.
type Row = (i64, String, String, i64, i64, String, Vec<u8>, String);

fn event(service: &str, amount: i64, at: i64, key: &str) -> NewEvent {
    NewEvent {
        account: AccountId {
            kind: "usage".into(),
            key: [("tenant", "t@example.com"), ("currency", "EUR")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        },
        aux: [("service", service), ("resource", "vcpu")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        amount,
        effective_at: at,
        idempotency_key: key.into(),
        info: json!({ "record": key }),
    }
}

fn by_service() -> BalanceQuery {
    BalanceQuery {
        account: event("a", 0, 0, "k").account,
        group_by: vec!["service".into()],
    }
}

fn open(path: &std::path::Path) -> Ledger {
    Ledger::new(
        LedgerConfig::defaults(),
        Arc::new(SqliteStorage::open(path).unwrap()),
    )
}

#[tokio::test]
async fn a_first_layout_file_opens_with_nothing_lost() {
    let dir = tempfile::tempdir().unwrap();
    let batch = vec![
        event("api", 500, NOV + 3_600_000_000, "r1"),
        event("web", 700, NOV + DAY + 60_000_000, "r2"),
        event("api", -200, NOV + 2 * DAY, "r3"),
        event("web", 40, NOV + 2 * DAY + 1, "r4"),
    ];

    // The rows the current code writes for these events (their hashes are what "the same
    // content" means), then the same rows in a file of the first layout: the first three
    // sequenced (sequence number = id, as that layout stamped them), none aggregated yet.
    let reference = dir.path().join("reference.db");
    open(&reference).write(&batch).await.unwrap();
    let rows: Vec<Row> = {
        let c = Connection::open(&reference).unwrap();
        let mut q = c
            .prepare(
                "SELECT e.id, a.key, d.aux, e.amount, e.effective_at, e.idem, e.hash, e.info
                 FROM events e JOIN accounts a ON a.id = e.account JOIN dims d ON d.id = e.dim
                 ORDER BY e.id",
            )
            .unwrap();
        q.query_map([], |r| r.try_into())
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    };
    let old = dir.path().join("ledger.db");
    {
        let c = Connection::open(&old).unwrap();
        c.execute_batch(LAYOUT_ONE).unwrap();
        c.execute(
            "INSERT INTO accounts (id, kind, key) VALUES (1, 'usage', ?1)",
            [&rows[0].1],
        )
        .unwrap();
        for (id, _, aux, amount, at, idem, hash, info) in &rows {
            let seq = (*id <= 3).then_some(*id);
            c.execute(
                "INSERT INTO events (id, seq, account, aux, amount, effective_at, idem, hash, info)
                 VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![id, seq, aux, amount, at, idem, hash, info],
            )
            .unwrap();
        }
        c.execute_batch(
            "INSERT INTO progress (name, value) VALUES ('sequenced', 3), ('aggregated', 0)",
        )
        .unwrap();
    }

    let l = open(&old);
    let at = NOV + 3 * DAY;
    let mut balances: Vec<(String, i64)> = l
        .balance(&by_service(), at)
        .await
        .unwrap()
        .into_iter()
        .map(|b| (b.group["service"].clone(), b.balance))
        .collect();
    balances.sort();
    assert_eq!(balances, [("api".into(), 300), ("web".into(), 740)]);

    // The export goes on from the watermarks the file had: three sequenced, the fourth next.
    let exported = l.export(0, 0, 10).await.unwrap();
    let seqs: Vec<Option<u64>> = exported.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [Some(1), Some(2), Some(3)]);
    assert_eq!(exported[1].aux["service"], "web");
    assert_eq!(exported[2].info["record"], "r3");
    assert_eq!(l.sequence("test", 60_000_000).await.unwrap(), Some(1));
    let page = l
        .events(&EventFilter {
            kind: "usage".into(),
            from: 0,
            to: i64::MAX,
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.events.len(), 4);
    assert_eq!(page.events[3].seq, Some(4));

    // Old events are still "already written"; a new one takes the next id.
    let again = l.write(&batch).await.unwrap();
    assert!(
        again
            .iter()
            .all(|w| matches!(w, Written::AlreadyWritten(_)))
    );
    let new = l
        .write(&[event("api", 1, NOV + 2 * DAY + 2, "r5")])
        .await
        .unwrap();
    assert_eq!(new, [Written::New(5)]);
    while l.sequence("test", 60_000_000).await.unwrap().unwrap() > 0 {}
    while l.aggregate().await.unwrap() > 0 {}
    let raw = l.raw_balance(&by_service(), at).await.unwrap();
    let snap = l.balance(&by_service(), at).await.unwrap();
    assert_eq!(raw, snap);
    let user_version: i64 = Connection::open(&old)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(user_version, faas_ledger::sqlite::schema::VERSION);
}
