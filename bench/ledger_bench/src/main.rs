//! The ledger's benchmark, each figure against a baseline measured in the same run:
//!
//! - writes with idempotency keys in batches, on SQLite and on PostgreSQL, against plain
//!   INSERTs of the same rows into a table without keys or indexes;
//! - the balance of an account at a random date over the whole ledger (10 million events by
//!   default), through the snapshots, against a plain `SUM` over the raw events;
//! - the turnovers of one tenant for one month grouped by service.
//!
//! `cargo run --release -p ledger-bench -- [--events N] [--pg URL | --no-pg] [--pg-events N]`
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use faas_ledger::placement::ShardSpec;
use faas_ledger::sharded::Sharded;
use faas_ledger::sqlite::SqliteStorage;
use faas_ledger::*;
use rand::{Rng, SeedableRng};

const DAY: i64 = 86_400 * 1_000_000;
/// 2026-01-01T00:00:00Z.
const YEAR: i64 = 1_767_225_600 * 1_000_000;
const TENANTS: usize = 10;
const SERVICES: usize = 5;
const BATCH: usize = 5_000;

struct Args {
    events: usize,
    pg: Option<String>,
    pg_events: usize,
}

fn args() -> Args {
    let mut a = Args {
        events: 10_000_000,
        pg: Some("postgres://postgres@127.0.0.1:55432/faas_ledger_a".into()),
        pg_events: 200_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--events" => a.events = it.next().and_then(|v| v.parse().ok()).expect("--events N"),
            "--pg-events" => {
                a.pg_events = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--pg-events N")
            }
            "--pg" => a.pg = it.next(),
            "--no-pg" => a.pg = None,
            other => panic!("unknown flag {other}; see the file's header"),
        }
    }
    a
}

fn account(tenant: usize) -> AccountId {
    AccountId {
        kind: "usage".into(),
        key: [
            ("tenant".to_string(), format!("tenant-{tenant}@example.com")),
            ("currency".to_string(), "EUR".to_string()),
        ]
        .into(),
    }
}

/// The j-th event of a tenant: spread over the year, one in a hundred dated days earlier.
fn event(tenant: usize, j: usize, per_tenant: usize, rng: &mut impl Rng) -> NewEvent {
    let step = 365 * DAY / per_tenant as i64;
    let mut at = YEAR + j as i64 * step + rng.random_range(0..step.max(1));
    if rng.random_range(0..100) == 0 {
        at = (at - rng.random_range(1..20) * DAY).max(YEAR);
    }
    NewEvent {
        account: account(tenant),
        aux: [
            ("service".to_string(), format!("svc-{}", j % SERVICES)),
            (
                "resource".to_string(),
                ["vcpu", "memory", "egress"][j % 3].to_string(),
            ),
        ]
        .into(),
        amount: rng.random_range(1..5_000_000),
        effective_at: at,
        idempotency_key: format!("t{tenant}-{j}"),
        info: serde_json::Value::Null,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// Plain INSERTs of the same rows, in transactions of the same size, into a table without
/// keys or indexes: what the idempotent, indexed write is measured against.
fn sqlite_plain_inserts(batches: &[Vec<NewEvent>]) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = rusqlite::Connection::open(dir.path().join("plain.db")).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    conn.execute_batch(
        "CREATE TABLE plain (account TEXT, aux TEXT, amount INTEGER, effective_at INTEGER, idem TEXT, info TEXT)",
    )
    .unwrap();
    let start = Instant::now();
    for batch in batches {
        let tx = conn.transaction().unwrap();
        {
            let mut stmt = tx
                .prepare_cached("INSERT INTO plain VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
                .unwrap();
            for e in batch {
                stmt.execute(rusqlite::params![
                    serde_json::to_string(&e.account.key).unwrap(),
                    serde_json::to_string(&e.aux).unwrap(),
                    e.amount,
                    e.effective_at,
                    e.idempotency_key,
                    "null"
                ])
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    start.elapsed()
}

async fn settle(ledger: &Ledger) -> Duration {
    let start = Instant::now();
    while ledger
        .sequence("bench", 60_000_000)
        .await
        .unwrap()
        .unwrap_or(0)
        > 0
    {}
    while ledger.aggregate().await.unwrap() > 0 {}
    start.elapsed()
}

async fn sqlite(events: usize) {
    let per_tenant = events / TENANTS;
    println!(
        "== SQLite: {} events, {TENANTS} tenants, over 2026 ==",
        per_tenant * TENANTS
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let ledger = Ledger::new(
        LedgerConfig::defaults(),
        Arc::new(SqliteStorage::open(&path).unwrap()),
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    // The write benchmark: the first million (or all) events, and the same rows as plain inserts.
    let timed = per_tenant.min(100_000);
    let mut written = 0;
    let mut write_time = Duration::ZERO;
    let mut first_batches = Vec::new();
    let chunk = BATCH / TENANTS;
    for start in (0..per_tenant).step_by(chunk) {
        let batch: Vec<NewEvent> = (start..(start + chunk).min(per_tenant))
            .flat_map(|j| (0..TENANTS).map(move |t| (t, j)))
            .map(|(t, j)| event(t, j, per_tenant, &mut rng))
            .collect();
        let t0 = Instant::now();
        ledger.write(&batch).await.unwrap();
        write_time += t0.elapsed();
        written += batch.len();
        if start < timed {
            first_batches.push(batch);
        }
    }
    let timed_events: usize = first_batches.iter().map(Vec::len).sum();
    let plain = sqlite_plain_inserts(&first_batches);
    let again = Instant::now();
    for b in &first_batches {
        let w = ledger.write(b).await.unwrap();
        assert!(w.iter().all(|w| matches!(w, Written::AlreadyWritten(_))));
    }
    let again = again.elapsed();
    println!(
        "writes, batches of {BATCH}: {:.0} events/s ({written} events); plain INSERTs of the first {timed_events}: {:.0}/s; ratio {:.2}",
        rate(written, write_time),
        rate(timed_events, plain),
        rate(written, write_time) / rate(timed_events, plain)
    );
    println!(
        "the first {timed_events} written again (all \"already written\"): {:.0} events/s",
        rate(timed_events, again)
    );
    let settle_time = settle(&ledger).await;
    println!(
        "sequencing and aggregation: {:.0} events/s",
        rate(written, settle_time)
    );

    // Balances at random dates: through the snapshots, and as a plain SUM over raw events.
    let raw = rusqlite::Connection::open(&path).unwrap();
    let account_id = |t: usize| -> i64 {
        raw.query_row(
            "SELECT id FROM accounts WHERE kind = 'usage' AND key = ?1",
            [serde_json::to_string(&account(t).key).unwrap()],
            |r| r.get(0),
        )
        .unwrap()
    };
    let ids: Vec<i64> = (0..TENANTS).map(account_id).collect();
    let mut with = Vec::new();
    let mut plain_sum = Vec::new();
    for i in 0..2_000 {
        let t = rng.random_range(0..TENANTS);
        let at = YEAR + rng.random_range(0..365 * DAY);
        let q = BalanceQuery {
            account: account(t),
            group_by: Vec::new(),
        };
        let t0 = Instant::now();
        let b = ledger.balance(&q, at).await.unwrap();
        with.push(t0.elapsed());
        if i % 10 == 0 {
            let t0 = Instant::now();
            let sum: i64 = raw
                .prepare_cached(
                    "SELECT COALESCE(SUM(amount), 0) FROM events WHERE account = ?1 AND effective_at < ?2",
                )
                .unwrap()
                .query_row(rusqlite::params![ids[t], at], |r| r.get(0))
                .unwrap();
            plain_sum.push(t0.elapsed());
            assert_eq!(
                b.first().map_or(0, |b| b.balance),
                sum,
                "the snapshots agree with the raw sum"
            );
        }
    }
    with.sort();
    plain_sum.sort();
    let (m, p99) = (percentile(&with, 0.5), percentile(&with, 0.99));
    let (pm, pp99) = (percentile(&plain_sum, 0.5), percentile(&plain_sum, 0.99));
    println!(
        "balance at a random date ({} per tenant): median {} p99 {}; plain SUM median {} p99 {}; median ratio {:.0}x",
        per_tenant,
        ms(m),
        ms(p99),
        ms(pm),
        ms(pp99),
        pm.as_secs_f64() / m.as_secs_f64()
    );

    // Turnovers of one tenant for one month, grouped by service: from midnight to midnight
    // (as a month is asked for), and from and to random instants (the worst case: two partial
    // days of events read past the snapshots).
    for (what, aligned) in [("midnight to midnight", true), ("random instants", false)] {
        let mut times = Vec::new();
        for _ in 0..200 {
            let t = rng.random_range(0..TENANTS);
            let mut from = YEAR + rng.random_range(0..330) * DAY;
            if !aligned {
                from += rng.random_range(0..DAY);
            }
            let q = BalanceQuery {
                account: account(t),
                group_by: vec!["service".into()],
            };
            let t0 = Instant::now();
            let turnovers = ledger.turnovers(&q, from, from + 30 * DAY).await.unwrap();
            times.push(t0.elapsed());
            assert_eq!(turnovers.len(), SERVICES);
        }
        times.sort();
        println!(
            "turnovers, one tenant, one month, by service, {what}: median {} p99 {}",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99))
        );
    }
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!("ledger file: {:.1} GB", size as f64 / 1e9);
}

async fn postgres(server_db: &str, events: usize) {
    println!("== PostgreSQL: {events} events, one shard ==");
    let (client, conn) = tokio_postgres::connect(server_db, tokio_postgres::NoTls)
        .await
        .expect("the bench PostgreSQL (scripts/setup-test-env.sh starts one; --no-pg skips it)");
    tokio::spawn(conn);
    let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}; SET search_path = {schema};
            CREATE TABLE plain (account BIGINT, aux TEXT, amount BIGINT, effective_at BIGINT, idem TEXT, info TEXT)"))
        .await
        .unwrap();
    let sep = if server_db.contains('?') { '&' } else { '?' };
    let url = format!("{server_db}{sep}options=-csearch_path%3D{schema}");
    let ledger = Arc::new(Ledger::new(
        LedgerConfig::defaults(),
        Arc::new(Sharded::connect(&[ShardSpec::whole(&url)]).await.unwrap()),
    ));
    let per_tenant = events / TENANTS;
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let batch = 1_000;
    let batches: Vec<Vec<NewEvent>> = {
        let all: Vec<NewEvent> = (0..per_tenant)
            .flat_map(|j| (0..TENANTS).map(move |t| (t, j)))
            .map(|(t, j)| event(t, j, per_tenant, &mut rng))
            .collect();
        all.chunks(batch).map(<[NewEvent]>::to_vec).collect()
    };
    let n: usize = batches.iter().map(Vec::len).sum();
    // Plain multi-row INSERTs of the same rows, in the same batches.
    let t0 = Instant::now();
    for b in &batches {
        let acc: Vec<i64> = b.iter().map(|e| e.effective_at % 10).collect();
        let aux: Vec<String> = b
            .iter()
            .map(|e| serde_json::to_string(&e.aux).unwrap())
            .collect();
        let amount: Vec<i64> = b.iter().map(|e| e.amount).collect();
        let at: Vec<i64> = b.iter().map(|e| e.effective_at).collect();
        let idem: Vec<&str> = b.iter().map(|e| e.idempotency_key.as_str()).collect();
        let info: Vec<&str> = b.iter().map(|_| "null").collect();
        client
            .execute(
                "INSERT INTO plain SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[])",
                &[&acc, &aux, &amount, &at, &idem, &info],
            )
            .await
            .unwrap();
    }
    let plain = t0.elapsed();
    // The ledger: one writer, then four at once (each its own quarter of the batches).
    let half = batches.len() / 2;
    let t0 = Instant::now();
    for b in &batches[..half] {
        ledger.write(b).await.unwrap();
    }
    let one = t0.elapsed();
    let one_n: usize = batches[..half].iter().map(Vec::len).sum();
    let rest: Vec<Vec<NewEvent>> = batches[half..].to_vec();
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..4)
        .map(|w| {
            let (ledger, mine) = (
                ledger.clone(),
                rest.iter().skip(w).step_by(4).cloned().collect::<Vec<_>>(),
            );
            tokio::spawn(async move {
                for b in &mine {
                    ledger.write(b).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let four = t0.elapsed();
    let four_n = n - one_n;
    println!(
        "writes, batches of {batch}: one writer {:.0} events/s, four writers {:.0} events/s; plain INSERTs {:.0}/s; ratios {:.2} and {:.2}",
        rate(one_n, one),
        rate(four_n, four),
        rate(n, plain),
        rate(one_n, one) / rate(n, plain),
        rate(four_n, four) / rate(n, plain)
    );
    let settle_time = settle(&ledger).await;
    println!(
        "sequencing and aggregation: {:.0} events/s",
        rate(n, settle_time)
    );
    let mut times = Vec::new();
    for _ in 0..500 {
        let q = BalanceQuery {
            account: account(rng.random_range(0..TENANTS)),
            group_by: Vec::new(),
        };
        let t0 = Instant::now();
        ledger
            .balance(&q, YEAR + rng.random_range(0..365 * DAY))
            .await
            .unwrap();
        times.push(t0.elapsed());
    }
    times.sort();
    println!(
        "balance at a random date: median {} p99 {}",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99))
    );
    drop(ledger);
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    sqlite(a.events).await;
    if let Some(url) = &a.pg {
        postgres(url, a.pg_events).await;
    }
}
