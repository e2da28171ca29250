//! The ledger's behaviour, as one suite every storage backend passes (`behaviour_sqlite.rs`,
//! `behaviour_postgres.rs`): idempotent atomic batches, balances at any date and turnovers per
//! group, late events, the sequencer and an exactly-once consumer, locks, compare-and-set
//! state, and bad input with stable codes. Each case takes a fresh, empty ledger.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeSet;
use std::sync::Arc;

use faas_ledger::storage::EventFilter;
use faas_ledger::*;
use serde_json::json;

const DAY: i64 = 86_400 * 1_000_000;
/// 2026-11-01T00:00:00Z in microseconds.
const NOV: i64 = 1_793_491_200 * 1_000_000;

fn attrs(pairs: &[(&str, &str)]) -> Attributes {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn usage(tenant: &str) -> AccountId {
    AccountId {
        kind: "usage".into(),
        key: attrs(&[("tenant", tenant), ("currency", "EUR")]),
    }
}

fn event(tenant: &str, service: &str, amount: i64, at: i64, key: &str) -> NewEvent {
    NewEvent {
        account: usage(tenant),
        aux: attrs(&[("service", service), ("resource", "vcpu")]),
        amount,
        effective_at: at,
        idempotency_key: key.into(),
        info: json!({ "record": key }),
    }
}

fn total(q: &BalanceQuery) -> BalanceQuery {
    q.clone()
}

fn by(tenant: &str, group_by: &[&str]) -> BalanceQuery {
    BalanceQuery {
        account: usage(tenant),
        group_by: group_by.iter().map(|s| s.to_string()).collect(),
    }
}

async fn balance_of(l: &Ledger, q: &BalanceQuery, at: i64) -> i64 {
    l.balance(q, at)
        .await
        .unwrap()
        .iter()
        .map(|b| b.balance)
        .sum()
}

/// Sequences and aggregates everything written so far.
async fn settle(l: &Ledger) {
    while l.sequence("test", 60_000_000).await.unwrap().unwrap() > 0 {}
    while l.aggregate().await.unwrap() > 0 {}
}

pub async fn the_same_key_and_content_is_already_written_other_content_conflicts_and_nothing_of_that_batch_is_kept(
    l: Ledger,
) {
    let first = l
        .write(&[event("t", "a", 5, NOV, "k1"), event("t", "a", 7, NOV, "k2")])
        .await
        .unwrap();
    assert!(matches!(first[..], [Written::New(_), Written::New(_)]));
    let again = l.write(&[event("t", "a", 5, NOV, "k1")]).await.unwrap();
    assert_eq!(
        again,
        vec![Written::AlreadyWritten(match first[0] {
            Written::New(id) => id,
            Written::AlreadyWritten(id) => id,
        })]
    );
    let err = l
        .write(&[event("t", "a", 1, NOV, "k3"), event("t", "a", 6, NOV, "k1")])
        .await
        .unwrap_err();
    assert_eq!(err.code(), "idempotency-conflict", "{err}");
    assert_eq!(
        balance_of(&l, &by("t", &[]), NOV + DAY).await,
        12,
        "k3 was not written either"
    );
    let page = l
        .events(&EventFilter {
            kind: "usage".into(),
            from: NOV,
            to: NOV + DAY,
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.events.len(), 2);
}

pub async fn balances_at_any_date_and_turnovers_per_group_with_and_without_aggregates(l: Ledger) {
    let mut batch = Vec::new();
    for day in 0..10 {
        batch.push(event(
            "t",
            "api",
            100,
            NOV + day * DAY + 3600,
            &format!("a{day}"),
        ));
        batch.push(event(
            "t",
            "web",
            10,
            NOV + day * DAY + 7200,
            &format!("w{day}"),
        ));
    }
    batch.push(event("t", "api", -50, NOV + 5 * DAY, "refund"));
    batch.push(event("other", "api", 999, NOV, "o1"));
    l.write(&batch).await.unwrap();
    for settled in [false, true] {
        if settled {
            settle(&l).await;
        }
        assert_eq!(balance_of(&l, &by("t", &[]), NOV).await, 0);
        assert_eq!(balance_of(&l, &by("t", &[]), NOV + 3 * DAY).await, 330);
        assert_eq!(balance_of(&l, &by("t", &[]), NOV + 10 * DAY).await, 1050);
        let per_service = l
            .balance(&by("t", &["service"]), NOV + 10 * DAY)
            .await
            .unwrap();
        assert_eq!(
            per_service,
            vec![
                Balance {
                    group: attrs(&[("service", "api")]),
                    balance: 950
                },
                Balance {
                    group: attrs(&[("service", "web")]),
                    balance: 100
                },
            ],
            "settled: {settled}"
        );
        let t = l
            .turnovers(&by("t", &["service"]), NOV + 2 * DAY, NOV + 7 * DAY)
            .await
            .unwrap();
        let api = t.iter().find(|t| t.group["service"] == "api").unwrap();
        assert_eq!(
            (api.opening, api.debit, api.credit, api.closing),
            (200, 500, 50, 650)
        );
        // Against the plain sum of the raw events.
        let raw = l
            .raw_balance(&by("t", &["service"]), NOV + 10 * DAY)
            .await
            .unwrap();
        assert_eq!(raw, per_service);
    }
    let total_q = total(&by("t", &[]));
    assert_eq!(balance_of(&l, &total_q, NOV + 100 * DAY).await, 1050);
}

pub async fn a_late_event_corrects_the_aggregated_interval_it_falls_in(l: Ledger) {
    for day in 0..5 {
        l.write(&[event("t", "api", 10, NOV + day * DAY, &format!("d{day}"))])
            .await
            .unwrap();
    }
    settle(&l).await;
    assert_eq!(balance_of(&l, &by("t", &[]), NOV + 3 * DAY).await, 30);
    // Dated on day 1, arriving after day 4 was aggregated.
    l.write(&[event("t", "api", 1000, NOV + DAY + 5, "late")])
        .await
        .unwrap();
    assert_eq!(
        balance_of(&l, &by("t", &[]), NOV + 3 * DAY).await,
        1030,
        "before aggregation"
    );
    settle(&l).await;
    assert_eq!(
        balance_of(&l, &by("t", &[]), NOV + 3 * DAY).await,
        1030,
        "after aggregation"
    );
    assert_eq!(balance_of(&l, &by("t", &[]), NOV + DAY).await, 10);
    assert_eq!(
        balance_of(&l, &by("t", &["service"]), NOV + 5 * DAY).await,
        1050
    );
}

pub async fn the_export_stream_is_in_sequence_order_and_resumes_from_a_watermark(l: Ledger) {
    for i in 0..25 {
        l.write(&[event("t", "api", 1, NOV + i, &format!("e{i}"))])
            .await
            .unwrap();
    }
    for shard in 0..l.shards() {
        assert!(
            l.export(shard, 0, 100).await.unwrap().is_empty(),
            "nothing sequenced yet"
        );
    }
    assert_eq!(l.sequence("a", 1_000_000).await.unwrap(), Some(25));
    assert_eq!(
        l.sequence("b", 1_000_000).await.unwrap(),
        None,
        "a holds the lease"
    );
    // One account: every event on one shard, in that shard's sequence.
    let mut shard = 0;
    while l.export(shard, 0, 1).await.unwrap().is_empty() {
        shard += 1;
    }
    assert_eq!(
        l.export(l.shards(), 0, 1).await.unwrap_err().code(),
        "no-such-shard"
    );
    let first = l.export(shard, 0, 10).await.unwrap();
    assert!(first.iter().all(|e| e.shard == shard));
    let seqs: Vec<u64> = first.iter().map(|e| e.seq.unwrap()).collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
    let rest = l.export(shard, 10, 100).await.unwrap();
    assert_eq!(rest.len(), 15);
    assert_eq!(rest[0].seq, Some(11));
}

pub async fn concurrent_writers_with_duplicates_a_restarted_sequencer_and_consumer_deliver_exactly_once(
    l: Ledger,
) {
    let l = Arc::new(l);
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let l = l.clone();
            tokio::spawn(async move {
                for i in 0..200 {
                    // Every writer also writes the keys of the writer before it: duplicates.
                    let key = format!("k{}-{i}", w % 2);
                    l.write(&[event("t", "api", 1, NOV + i, &key)])
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    // A sequencer that dies mid-run, and one that takes over when its lease ends.
    let seq_a = {
        let l = l.clone();
        tokio::spawn(async move {
            loop {
                let _ = l.sequence("a", 200_000).await;
                tokio::task::yield_now().await;
            }
        })
    };
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    let consumer = faas_ledger::EntityId {
        kind: "consumer".into(),
        key: attrs(&[("name", "test")]),
    };
    for w in writers {
        w.await.unwrap();
        // The consumer, restarted each time from its stored watermark.
        consume(&l, &consumer, &mut seen, &mut order).await;
    }
    seq_a.abort();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match l.sequence("b", 200_000).await.unwrap() {
            Some(0) => break,
            Some(_) => {}
            None => assert!(
                std::time::Instant::now() < deadline,
                "a's lease never ended"
            ),
        }
        tokio::task::yield_now().await;
    }
    consume(&l, &consumer, &mut seen, &mut order).await;
    assert_eq!(seen.len(), 400, "two writers' 200 keys each, once");
    for shard in 0..l.shards() {
        let seqs: Vec<u64> = order
            .iter()
            .filter(|(s, _)| *s == shard)
            .map(|(_, q)| *q)
            .collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "strictly increasing on shard {shard}"
        );
    }
    assert_eq!(balance_of(&l, &by("t", &[]), NOV + DAY).await, 400);
}

/// Reads the export after the stored watermark, and stores the new one by compare-and-set.
async fn consume(
    l: &Ledger,
    consumer: &EntityId,
    seen: &mut BTreeSet<String>,
    order: &mut Vec<(usize, u64)>,
) {
    // One watermark per shard: `{"after": [n0, n1, ...]}`.
    for shard in 0..l.shards() {
        loop {
            let state = l.state(consumer).await.unwrap();
            let mut marks: Vec<u64> = (0..l.shards())
                .map(|s| state.value["after"][s].as_u64().unwrap_or(0))
                .collect();
            let batch = l.export(shard, marks[shard], 50).await.unwrap();
            let Some(last) = batch.last().and_then(|e| e.seq) else {
                break;
            };
            for e in &batch {
                assert!(
                    seen.insert(e.idempotency_key.clone()),
                    "{} twice",
                    e.idempotency_key
                );
                order.push((shard, e.seq.unwrap()));
            }
            marks[shard] = last;
            l.put_state(consumer, state.version, &json!({ "after": marks }))
                .await
                .unwrap();
        }
    }
}

pub async fn locks_shared_blocks_exclusive_a_dead_holders_lease_expires_and_writes_can_need_one(
    l: Ledger,
) {
    let invoice = EntityId {
        kind: "invoice".into(),
        key: attrs(&[("tenant", "t"), ("month", "2026-11")]),
    };
    l.lock(&invoice, "reader-1", LockMode::Shared, 60_000_000)
        .await
        .unwrap();
    l.lock(&invoice, "reader-2", LockMode::Shared, 60_000_000)
        .await
        .unwrap();
    let err = l
        .lock(&invoice, "closer", LockMode::Exclusive, 60_000_000)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "lock-held");
    assert!(l.unlock(&invoice, "reader-1").await.unwrap());
    assert!(l.unlock(&invoice, "reader-2").await.unwrap());
    // A holder that dies: its short lease ends, and the next one takes the lock.
    l.lock(&invoice, "dead", LockMode::Exclusive, 50_000)
        .await
        .unwrap();
    assert_eq!(
        l.lock(&invoice, "closer", LockMode::Exclusive, 60_000_000)
            .await
            .unwrap_err()
            .code(),
        "lock-held"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while l
        .lock(&invoice, "closer", LockMode::Exclusive, 60_000_000)
        .await
        .is_err()
    {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let batch = [event("t", "api", 5, NOV, "inv")];
    assert_eq!(
        l.write_locked(&batch, &invoice, "someone-else")
            .await
            .unwrap_err()
            .code(),
        "lock-not-held"
    );
    assert!(l.write_locked(&batch, &invoice, "closer").await.is_ok());
}

pub async fn lock_contention_from_parallel_tasks_has_one_holder_at_a_time(l: Ledger) {
    let l = Arc::new(l);
    let invoice = EntityId {
        kind: "invoice".into(),
        key: attrs(&[("tenant", "t"), ("month", "2026-12")]),
    };
    let inside = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (l, invoice, inside) = (l.clone(), invoice.clone(), inside.clone());
            tokio::spawn(async move {
                let me = format!("task-{i}");
                let mut held = 0;
                while held < 5 {
                    if l.lock(&invoice, &me, LockMode::Exclusive, 10_000_000)
                        .await
                        .is_ok()
                    {
                        let n = inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        assert_eq!(n, 0, "two holders of an exclusive lock");
                        tokio::task::yield_now().await;
                        inside.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                        assert!(l.unlock(&invoice, &me).await.unwrap());
                        held += 1;
                    }
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

pub async fn a_concurrent_compare_and_set_loses_cleanly_with_a_conflict(l: Ledger) {
    let c = EntityId {
        kind: "consumer".into(),
        key: attrs(&[("name", "billing")]),
    };
    assert_eq!(l.state(&c).await.unwrap().version, 0);
    assert_eq!(l.put_state(&c, 0, &json!({"after": 1})).await.unwrap(), 1);
    // Two writers read version 1; the second to write loses.
    assert_eq!(l.put_state(&c, 1, &json!({"after": 2})).await.unwrap(), 2);
    let err = l.put_state(&c, 1, &json!({"after": 3})).await.unwrap_err();
    assert_eq!(err.code(), "state-conflict", "{err}");
    assert_eq!(l.state(&c).await.unwrap().value, json!({"after": 2}));
}

pub async fn bad_input_is_a_clear_error_with_a_stable_code(l: Ledger) {
    let mut e = event("t", "api", 1, NOV, "x");
    e.account.kind = "usgae".into();
    assert_eq!(
        l.write(&[e]).await.unwrap_err().code(),
        "unknown-account-type"
    );
    let mut e = event("t", "api", 1, NOV, "x");
    e.account.key.remove("currency");
    let err = l.write(&[e]).await.unwrap_err();
    assert_eq!(err.code(), "missing-key-attribute");
    assert!(err.to_string().contains("currency"), "{err}");
    let mut e = event("t", "api", 1, NOV, "x");
    e.aux.insert("colour".into(), "red".into());
    assert_eq!(l.write(&[e]).await.unwrap_err().code(), "unknown-attribute");
    let err = l.balance(&by("t", &["env", "day"]), NOV).await.unwrap_err();
    assert_eq!(err.code(), "grouping-not-allowed");
    assert!(err.to_string().contains("[service, env]"), "{err}");
    assert_eq!(
        l.turnovers(&by("t", &[]), NOV + DAY, NOV)
            .await
            .unwrap_err()
            .code(),
        "invalid-period"
    );
    // An amount that is not an integer does not even parse.
    let text = r#"{"account": {"type": "usage", "key": {"tenant": "t", "currency": "EUR"}},
                   "amount": 1.5, "effective_at": 0, "idempotency_key": "f"}"#;
    assert!(serde_json::from_str::<NewEvent>(text).is_err());
    assert_eq!(
        l.write(&[event("t", "api", 1, NOV, "")])
            .await
            .unwrap_err()
            .code(),
        "empty-idempotency-key"
    );
}

pub async fn accounts_spread_over_shards_answer_every_query_and_a_batch_across_them_is_atomic(
    l: Ledger,
) {
    let tenants: Vec<String> = (0..40).map(|i| format!("tenant-{i}")).collect();
    // One batch over every tenant (on a sharded ledger: every shard, by two-phase commit).
    let batch: Vec<NewEvent> = tenants
        .iter()
        .enumerate()
        .flat_map(|(i, t)| {
            (0..3).map(move |j| {
                event(
                    t,
                    "api",
                    (i * 10 + j) as i64,
                    NOV + j as i64 * DAY,
                    &format!("{t}-{j}"),
                )
            })
        })
        .collect();
    l.write(&batch).await.unwrap();
    // A batch over every tenant with one conflicting key at its end: nothing of it anywhere.
    let mut bad: Vec<NewEvent> = tenants
        .iter()
        .map(|t| event(t, "web", 1_000, NOV, &format!("{t}-new")))
        .collect();
    bad.push(event(&tenants[0], "api", 99, NOV, "tenant-0-0"));
    assert_eq!(
        l.write(&bad).await.unwrap_err().code(),
        "idempotency-conflict"
    );
    for settled in [false, true] {
        if settled {
            settle(&l).await;
        }
        for (i, t) in tenants.iter().enumerate() {
            let expected = (i * 30 + 3) as i64;
            assert_eq!(
                balance_of(&l, &by(t, &[]), NOV + 10 * DAY).await,
                expected,
                "{t}"
            );
            let turn = l
                .turnovers(&by(t, &["service"]), NOV + DAY, NOV + 10 * DAY)
                .await
                .unwrap();
            assert_eq!(
                turn.len(),
                1,
                "{t}: only `api`, the `web` batch was not kept"
            );
            assert_eq!(turn[0].opening, (i * 10) as i64);
            assert_eq!(turn[0].debit, (i * 20 + 3) as i64);
        }
    }
    // Every event once, through the cursor, a page at a time.
    let mut seen = BTreeSet::new();
    let mut shards = BTreeSet::new();
    let mut after = 0;
    loop {
        let page = l
            .events(&EventFilter {
                kind: "usage".into(),
                from: NOV,
                to: NOV + 10 * DAY,
                after,
                limit: 7,
                ..Default::default()
            })
            .await
            .unwrap();
        for e in &page.events {
            assert!(
                seen.insert(e.idempotency_key.clone()),
                "{} twice",
                e.idempotency_key
            );
            shards.insert(e.shard);
        }
        match page.next {
            Some(n) => after = n,
            None => break,
        }
    }
    assert_eq!(seen.len(), 120);
    assert_eq!(
        shards.len(),
        l.shards(),
        "the accounts spread over every shard"
    );
    // One account's events: its shard alone, filtered by an auxiliary attribute too.
    let page = l
        .events(&EventFilter {
            kind: "usage".into(),
            key: usage("tenant-7").key,
            aux: attrs(&[("service", "api")]),
            from: NOV,
            to: NOV + 2 * DAY,
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let keys: Vec<&str> = page
        .events
        .iter()
        .map(|e| e.idempotency_key.as_str())
        .collect();
    assert_eq!(keys, ["tenant-7-0", "tenant-7-1"]);
}

/// The suite's cases as tests, each on a fresh ledger from `$make` (an async fn returning the
/// ledger and whatever must live as long as it).
macro_rules! cases {
    ($make:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn the_same_key_and_content_is_already_written_other_content_conflicts_and_nothing_of_that_batch_is_kept() {
            let (l, _keep) = $make().await;
            suite::the_same_key_and_content_is_already_written_other_content_conflicts_and_nothing_of_that_batch_is_kept(l).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn balances_at_any_date_and_turnovers_per_group_with_and_without_aggregates() {
            let (l, _keep) = $make().await;
            suite::balances_at_any_date_and_turnovers_per_group_with_and_without_aggregates(l).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_late_event_corrects_the_aggregated_interval_it_falls_in() {
            let (l, _keep) = $make().await;
            suite::a_late_event_corrects_the_aggregated_interval_it_falls_in(l).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn the_export_stream_is_in_sequence_order_and_resumes_from_a_watermark() {
            let (l, _keep) = $make().await;
            suite::the_export_stream_is_in_sequence_order_and_resumes_from_a_watermark(l).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn concurrent_writers_with_duplicates_a_restarted_sequencer_and_consumer_deliver_exactly_once() {
            let (l, _keep) = $make().await;
            suite::concurrent_writers_with_duplicates_a_restarted_sequencer_and_consumer_deliver_exactly_once(l).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn locks_shared_blocks_exclusive_a_dead_holders_lease_expires_and_writes_can_need_one() {
            let (l, _keep) = $make().await;
            suite::locks_shared_blocks_exclusive_a_dead_holders_lease_expires_and_writes_can_need_one(l).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn lock_contention_from_parallel_tasks_has_one_holder_at_a_time() {
            let (l, _keep) = $make().await;
            suite::lock_contention_from_parallel_tasks_has_one_holder_at_a_time(l).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_concurrent_compare_and_set_loses_cleanly_with_a_conflict() {
            let (l, _keep) = $make().await;
            suite::a_concurrent_compare_and_set_loses_cleanly_with_a_conflict(l).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn bad_input_is_a_clear_error_with_a_stable_code() {
            let (l, _keep) = $make().await;
            suite::bad_input_is_a_clear_error_with_a_stable_code(l).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn accounts_spread_over_shards_answer_every_query_and_a_batch_across_them_is_atomic() {
            let (l, _keep) = $make().await;
            suite::accounts_spread_over_shards_answer_every_query_and_a_batch_across_them_is_atomic(l).await;
        }
    };
}
pub(crate) use cases;
