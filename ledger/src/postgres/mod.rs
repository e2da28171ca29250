//! One PostgreSQL shard of the ledger: the same tables and answers as the SQLite file, with
//! batches written by set-based statements (one round trip per table, not per event), events
//! partitioned by month ([`schema`]), and everything that must be serialised (the sequencer,
//! the aggregator, a lock, a state) serialised by row locks or advisory locks, since several
//! platform processes may share a shard.
//!
//! [`crate::sharded::Sharded`] places accounts, locks and states over several shards.

pub mod schema;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use deadpool_postgres::{Client, Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

use crate::error::{LedgerError, Result};
use crate::model::{
    AccountId, Attributes, Event, EventPage, LockMode, Micros, State, Totals, Written,
};
use crate::storage::{
    EventFilter, Groupings, LockCheck, Prepared, SeriesKey, add, attributes, fold_round,
    group_rows, project, round_deltas,
};

impl From<tokio_postgres::Error> for LedgerError {
    fn from(e: tokio_postgres::Error) -> Self {
        // The server's message says what went wrong; the client's Display alone says "db error".
        match e.as_db_error() {
            Some(db) => Self::Storage(format!("{}: {}", db.code().code(), db.message())),
            None => Self::Storage(e.to_string()),
        }
    }
}

impl From<deadpool_postgres::PoolError> for LedgerError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Self::Storage(format!("cannot reach the ledger's PostgreSQL: {e}"))
    }
}

fn to_json(a: &Attributes) -> String {
    serde_json::to_string(a).unwrap_or_else(|_| "{}".into())
}

const EVENT_COLUMNS: &str =
    "e.id, e.seq, a.kind, a.key, e.aux, e.amount, e.effective_at, e.idem, e.info";

fn event_from(r: &tokio_postgres::Row) -> Event {
    let key: String = r.get(3);
    let aux: String = r.get(4);
    let info: String = r.get(8);
    Event {
        id: r.get(0),
        seq: r.get::<_, Option<i64>>(1).map(|s| s as u64),
        shard: 0,
        account: AccountId {
            kind: r.get(2),
            key: attributes(&key),
        },
        aux: attributes(&aux),
        amount: r.get(5),
        effective_at: r.get(6),
        idempotency_key: r.get(7),
        info: serde_json::from_str(&info).unwrap_or(serde_json::Value::Null),
    }
}

/// The months of partitions kept ahead of now.
pub const PARTITIONS_AHEAD: u32 = 3;

pub struct PgShard {
    pool: Pool,
    /// Account ids by (type, canonical key), once committed (accounts are never deleted).
    accounts: Mutex<HashMap<(String, String), i64>>,
    /// Rows the aggregator deleted from `pending` since it last vacuumed it.
    dead_pending: std::sync::atomic::AtomicU64,
}

/// How many rows the aggregator deletes from `pending` before it vacuums it (it also does when
/// it has caught up and deleted a thousand or more since).
const VACUUM_PENDING_AFTER: u64 = 50_000;

impl PgShard {
    /// Connects to `url` and creates the tables and this season's partitions when missing.
    pub async fn connect(url: &str) -> Result<Self> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| LedgerError::Storage(format!("`{url}` is not a PostgreSQL URL: {e}")))?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(16)
            .build()
            .map_err(|e| LedgerError::Storage(e.to_string()))?;
        let shard = Self {
            pool,
            accounts: Mutex::new(HashMap::new()),
            dead_pending: std::sync::atomic::AtomicU64::new(0),
        };
        let mut client = shard.client().await?;
        schema::create(&mut client).await?;
        schema::ensure_partitions(&mut client, crate::now(), PARTITIONS_AHEAD).await?;
        Ok(shard)
    }

    pub async fn client(&self) -> Result<Client> {
        Ok(self.pool.get().await?)
    }

    /// Creates the partitions of the coming months (the background task calls this).
    pub async fn ensure_partitions(&self, now: Micros) -> Result<usize> {
        schema::ensure_partitions(&mut self.client().await?, now, PARTITIONS_AHEAD).await
    }

    fn cached_account(&self, kind: &str, key: &str) -> Option<i64> {
        let cache = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(&(kind.to_owned(), key.to_owned())).copied()
    }

    /// The ids of the batch's accounts, created when new. The second value lists those read
    /// inside this (uncommitted) transaction, to cache once it commits.
    async fn account_ids(
        &self,
        client: &Client,
        batch: &[Prepared],
    ) -> Result<(HashMap<(String, String), i64>, Vec<((String, String), i64)>)> {
        let mut ids = HashMap::new();
        let mut missing: Vec<(String, String)> = Vec::new();
        for e in batch {
            let k = (e.kind.clone(), e.key.clone());
            if ids.contains_key(&k) || missing.contains(&k) {
                continue;
            }
            match self.cached_account(&e.kind, &e.key) {
                Some(id) => {
                    ids.insert(k, id);
                }
                None => missing.push(k),
            }
        }
        if missing.is_empty() {
            return Ok((ids, Vec::new()));
        }
        // Sorted, so that two batches creating the same accounts take their locks in one order.
        missing.sort();
        let kinds: Vec<&str> = missing.iter().map(|(k, _)| k.as_str()).collect();
        let keys: Vec<&str> = missing.iter().map(|(_, k)| k.as_str()).collect();
        let insert = client
            .prepare_cached(
                "INSERT INTO accounts (kind, key) SELECT * FROM unnest($1::text[], $2::text[])
                 ON CONFLICT DO NOTHING",
            )
            .await?;
        client.execute(&insert, &[&kinds, &keys]).await?;
        let select = client
            .prepare_cached(
                "SELECT a.id, a.kind, a.key FROM accounts a
                 JOIN unnest($1::text[], $2::text[]) AS u(kind, key) ON a.kind = u.kind AND a.key = u.key",
            )
            .await?;
        let mut fresh = Vec::new();
        for row in client.query(&select, &[&kinds, &keys]).await? {
            let k = (row.get::<_, String>(1), row.get::<_, String>(2));
            let id: i64 = row.get(0);
            ids.insert(k.clone(), id);
            fresh.push((k, id));
        }
        Ok((ids, fresh))
    }

    /// Remembers account ids read by a transaction that has committed.
    pub fn remember(&self, fresh: Vec<((String, String), i64)>) {
        let mut cache = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        cache.extend(fresh);
    }

    /// The batch's statements inside the open transaction of `client`: the lock check, the
    /// accounts, the idempotency keys, the events. Err leaves the transaction to roll back.
    pub async fn write_in(
        &self,
        client: &Client,
        batch: &[Prepared],
        lock: Option<&LockCheck>,
        now: Micros,
    ) -> Result<(Vec<Written>, Vec<((String, String), i64)>)> {
        if let Some(l) = lock {
            let held = client
                .prepare_cached(
                    "SELECT 1 FROM locks WHERE kind = $1 AND key = $2 AND holder = $3 AND expires_at > $4
                     FOR SHARE",
                )
                .await?;
            if client
                .query_opt(&held, &[&l.kind, &l.key, &l.holder, &now])
                .await?
                .is_none()
            {
                return Err(LedgerError::LockNotHeld(format!("{} {}", l.kind, l.key)));
            }
        }
        if batch.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let (accounts, fresh) = self.account_ids(client, batch).await?;
        let account_of = |e: &Prepared| accounts[&(e.kind.clone(), e.key.clone())];
        let ids: Vec<i64> = client
            .query(
                &client
                    .prepare_cached(
                        "SELECT nextval('events_id_seq') FROM generate_series(1, $1::int)",
                    )
                    .await?,
                &[&(batch.len() as i32)],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let account: Vec<i64> = batch.iter().map(account_of).collect();
        let idem: Vec<&str> = batch.iter().map(|e| e.idempotency_key.as_str()).collect();
        let hash: Vec<&[u8]> = batch.iter().map(|e| e.hash.as_slice()).collect();
        let claim = client
            .prepare_cached(
                "INSERT INTO idempotency (account, idem, hash, event_id)
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::bytea[], $4::bigint[])
                 ON CONFLICT DO NOTHING RETURNING event_id",
            )
            .await?;
        let claimed: std::collections::HashSet<i64> = client
            .query(&claim, &[&account, &idem, &hash, &ids])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut out = Vec::with_capacity(batch.len());
        let earlier: HashMap<(i64, String), (Vec<u8>, i64)> = if claimed.len() < batch.len() {
            let (acc, keys): (Vec<i64>, Vec<&str>) = batch
                .iter()
                .zip(&ids)
                .filter(|(_, id)| !claimed.contains(id))
                .map(|(e, _)| (account_of(e), e.idempotency_key.as_str()))
                .unzip();
            let find = client
                .prepare_cached(
                    "SELECT i.account, i.idem, i.hash, i.event_id FROM idempotency i
                     JOIN unnest($1::bigint[], $2::text[]) AS u(account, idem)
                       ON i.account = u.account AND i.idem = u.idem",
                )
                .await?;
            client
                .query(&find, &[&acc, &keys])
                .await?
                .iter()
                .map(|r| ((r.get(0), r.get(1)), (r.get(2), r.get(3))))
                .collect()
        } else {
            HashMap::new()
        };
        let mut new = Vec::new();
        for (i, e) in batch.iter().enumerate() {
            if claimed.contains(&ids[i]) {
                out.push(Written::New(ids[i]));
                new.push(i);
                continue;
            }
            match earlier.get(&(account[i], e.idempotency_key.clone())) {
                Some((h, id)) if *h == e.hash => out.push(Written::AlreadyWritten(*id)),
                _ => return Err(LedgerError::IdempotencyConflict(e.idempotency_key.clone())),
            }
        }
        if !new.is_empty() {
            let pick = |f: &dyn Fn(usize) -> i64| new.iter().map(|&i| f(i)).collect::<Vec<i64>>();
            let id = pick(&|i| ids[i]);
            let acc = pick(&|i| account[i]);
            let amount = pick(&|i| batch[i].amount);
            let at = pick(&|i| batch[i].effective_at);
            let aux: Vec<&str> = new.iter().map(|&i| batch[i].aux.as_str()).collect();
            let key: Vec<&str> = new.iter().map(|&i| idem[i]).collect();
            let info: Vec<&str> = new.iter().map(|&i| batch[i].info.as_str()).collect();
            let insert = client
                .prepare_cached(
                    "INSERT INTO events (id, account, aux, amount, effective_at, idem, info)
                     SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::text[])",
                )
                .await?;
            client
                .execute(&insert, &[&id, &acc, &aux, &amount, &at, &key, &info])
                .await?;
            let pending = client
                .prepare_cached(
                    "INSERT INTO pending (id, effective_at, account)
                     SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[])",
                )
                .await?;
            client.execute(&pending, &[&id, &at, &acc]).await?;
        }
        Ok((out, fresh))
    }

    pub async fn write(
        &self,
        batch: &[Prepared],
        lock: Option<&LockCheck>,
        now: Micros,
    ) -> Result<Vec<Written>> {
        let client = self.client().await?;
        client.batch_execute("BEGIN").await?;
        match self.write_in(&client, batch, lock, now).await {
            Ok((written, fresh)) => {
                client.batch_execute("COMMIT").await?;
                self.remember(fresh);
                Ok(written)
            }
            Err(e) => {
                client.batch_execute("ROLLBACK").await?;
                Err(e)
            }
        }
    }

    pub async fn sequence(
        &self,
        holder: &str,
        lease_us: i64,
        max: usize,
        now: Micros,
    ) -> Result<Option<usize>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // The lease row stays locked until this round commits: a second sequencer waits for it,
        // then finds it renewed by this holder.
        let taken = tx
            .execute(
                "INSERT INTO leases (name, holder, expires_at) VALUES ('sequencer', $1, $2)
                 ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
                 WHERE leases.holder = EXCLUDED.holder OR leases.expires_at <= $3",
                &[&holder, &(now + lease_us), &now],
            )
            .await?;
        if taken == 0 {
            return Ok(None);
        }
        let last: i64 = tx
            .query_one(
                "SELECT value FROM progress WHERE name = 'sequenced' FOR UPDATE",
                &[],
            )
            .await?
            .get(0);
        let (ids, ats): (Vec<i64>, Vec<i64>) = tx
            .query(
                "SELECT id, effective_at FROM pending WHERE seq IS NULL ORDER BY id LIMIT $1",
                &[&(max as i64)],
            )
            .await?
            .iter()
            .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1)))
            .unzip();
        if !ids.is_empty() {
            let seqs: Vec<i64> = (0..ids.len() as i64).map(|i| last + 1 + i).collect();
            // By the whole primary key (id, effective_at): one index probe per event.
            tx.execute(
                "UPDATE events e SET seq = u.seq
                 FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS u(id, effective_at, seq)
                 WHERE e.id = u.id AND e.effective_at = u.effective_at AND e.seq IS NULL",
                &[&ids, &ats, &seqs],
            )
            .await?;
            tx.execute(
                "UPDATE pending p SET seq = u.seq FROM unnest($1::bigint[], $2::bigint[]) AS u(id, seq)
                 WHERE p.id = u.id",
                &[&ids, &seqs],
            )
            .await?;
            tx.execute(
                "UPDATE progress SET value = $1 WHERE name = 'sequenced'",
                &[&(last + ids.len() as i64)],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Some(ids.len()))
    }

    pub async fn aggregate(
        &self,
        groupings: &Groupings,
        interval: i64,
        max: usize,
    ) -> Result<usize> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // One aggregator at a time: the watermark row is locked until this round commits.
        let watermark: i64 = tx
            .query_one(
                "SELECT value FROM progress WHERE name = 'aggregated' FOR UPDATE",
                &[],
            )
            .await?
            .get(0);
        let rows = tx
            .query(
                "SELECT p.seq, e.account, a.kind, e.aux, e.amount, e.effective_at
                 FROM (SELECT id, effective_at, seq FROM pending WHERE seq > $1 ORDER BY seq LIMIT $2) p
                 CROSS JOIN LATERAL (SELECT account, aux, amount, effective_at FROM events
                                     WHERE id = p.id AND effective_at = p.effective_at) e
                 JOIN accounts a ON a.id = e.account
                 ORDER BY p.seq",
                &[&watermark, &(max as i64)],
            )
            .await?;
        let last = rows.last().map_or(watermark, |r| r.get(0));
        let deltas = round_deltas(
            rows.iter().map(|r| {
                (
                    r.get(1),
                    r.get::<_, &str>(2),
                    r.get::<_, &str>(3),
                    r.get(4),
                    r.get(5),
                )
            }),
            groupings,
            interval,
        )?;
        if !deltas.is_empty() {
            // Three statements a round, whatever its size: the series' snapshots from the
            // round's first boundary on, the one before each, and the new values of all.
            let mut acc = Vec::new();
            let mut grp = Vec::new();
            let mut vals = Vec::new();
            let mut first = Vec::new();
            for (k, d) in &deltas {
                acc.push(k.account);
                grp.push(k.grouping.as_str());
                vals.push(k.vals.as_str());
                first.push(*d.keys().next().unwrap_or(&0));
            }
            let params: [&(dyn ToSql + Sync); 4] = [&acc, &grp, &vals, &first];
            let mut existing: HashMap<SeriesKey, BTreeMap<Micros, Totals>> = HashMap::new();
            for r in tx
                .query(
                    "SELECT s.account, s.grouping, s.vals, s.boundary, s.debit, s.credit FROM snapshots s
                     JOIN unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[]) AS k(account, grouping, vals, first)
                       ON s.account = k.account AND s.grouping = k.grouping AND s.vals = k.vals AND s.boundary >= k.first",
                    &params,
                )
                .await?
            {
                existing
                    .entry(SeriesKey { account: r.get(0), grouping: r.get(1), vals: r.get(2) })
                    .or_default()
                    .insert(r.get(3), Totals { debit: r.get(4), credit: r.get(5) });
            }
            let mut base: HashMap<SeriesKey, Totals> = HashMap::new();
            for r in tx
                .query(
                    "SELECT k.account, k.grouping, k.vals, p.debit, p.credit
                     FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[]) AS k(account, grouping, vals, first)
                     JOIN LATERAL (SELECT debit, credit FROM snapshots s
                                   WHERE s.account = k.account AND s.grouping = k.grouping AND s.vals = k.vals
                                     AND s.boundary < k.first
                                   ORDER BY s.boundary DESC LIMIT 1) p ON true",
                    &params,
                )
                .await?
            {
                base.insert(
                    SeriesKey { account: r.get(0), grouping: r.get(1), vals: r.get(2) },
                    Totals { debit: r.get(3), credit: r.get(4) },
                );
            }
            let none = BTreeMap::new();
            let (mut a, mut g, mut v, mut b, mut debit, mut credit) = (
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
            );
            for (k, d) in &deltas {
                for (boundary, t) in
                    fold_round(base.get(k).copied(), existing.get(k).unwrap_or(&none), d)?
                {
                    a.push(k.account);
                    g.push(k.grouping.as_str());
                    v.push(k.vals.as_str());
                    b.push(boundary);
                    debit.push(t.debit);
                    credit.push(t.credit);
                }
            }
            tx.execute(
                "INSERT INTO snapshots (account, grouping, vals, boundary, debit, credit)
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[])
                 ON CONFLICT (account, grouping, vals, boundary)
                 DO UPDATE SET debit = EXCLUDED.debit, credit = EXCLUDED.credit",
                &[&a, &g, &v, &b, &debit, &credit],
            )
            .await?;
        }
        tx.execute(
            "UPDATE progress SET value = $1 WHERE name = 'aggregated'",
            &[&last],
        )
        .await?;
        let deleted = tx
            .execute("DELETE FROM pending WHERE seq <= $1", &[&last])
            .await?;
        tx.commit().await?;
        // `pending` is a queue: its dead rows would slow every balance until autovacuum came
        // by, so the aggregator vacuums it after every so many.
        let since = self
            .dead_pending
            .fetch_add(deleted, std::sync::atomic::Ordering::Relaxed)
            + deleted;
        if since >= VACUUM_PENDING_AFTER || (rows.len() < max && since >= 1_000) {
            self.dead_pending
                .store(0, std::sync::atomic::Ordering::Relaxed);
            client.batch_execute("VACUUM (ANALYZE) pending").await?;
        }
        Ok(rows.len())
    }

    async fn find_account(
        client: &tokio_postgres::Client,
        kind: &str,
        key: &str,
    ) -> Result<Option<i64>> {
        Ok(client
            .query_opt(
                "SELECT id FROM accounts WHERE kind = $1 AND key = $2",
                &[&kind, &key],
            )
            .await?
            .map(|r| r.get(0)))
    }

    pub async fn totals(
        &self,
        kind: &str,
        key: &str,
        grouping: &[String],
        at: Micros,
    ) -> Result<Vec<(Attributes, Totals)>> {
        let mut client = self.client().await?;
        // One snapshot of the database: the watermark, the snapshots and the events agree.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let Some(account) = tx
            .query_opt(
                "SELECT id FROM accounts WHERE kind = $1 AND key = $2",
                &[&kind, &key],
            )
            .await?
            .map(|r| r.get::<_, i64>(0))
        else {
            return Ok(Vec::new());
        };
        let watermark: i64 = tx
            .query_one("SELECT value FROM progress WHERE name = 'aggregated'", &[])
            .await?
            .get(0);
        let name = grouping.join(",");
        let snapshots = tx
            .query(
                &tx.prepare_cached(
                    "SELECT DISTINCT ON (vals) vals, boundary, debit, credit FROM snapshots
                     WHERE account = $1 AND grouping = $2 AND boundary <= $3
                     ORDER BY vals, boundary DESC",
                )
                .await?,
                &[&account, &name, &at],
            )
            .await?;
        let mut groups: BTreeMap<Attributes, Totals> = BTreeMap::new();
        let mut since: BTreeMap<Attributes, Micros> = BTreeMap::new();
        let mut scan_from = crate::storage::day_floor(at);
        for r in &snapshots {
            let g = attributes(r.get::<_, &str>(0));
            let boundary: i64 = r.get(1);
            groups.insert(
                g.clone(),
                Totals {
                    debit: r.get(2),
                    credit: r.get(3),
                },
            );
            since.insert(g, boundary);
            scan_from = scan_from.min(boundary);
        }
        let partial = tx
            .query(
                &tx.prepare_cached(
                    "SELECT amount, aux, effective_at FROM events
                     WHERE account = $1 AND effective_at >= $2 AND effective_at < $3
                       AND seq IS NOT NULL AND seq <= $4",
                )
                .await?,
                &[&account, &scan_from, &at, &watermark],
            )
            .await?;
        for r in &partial {
            let amount: i64 = r.get(0);
            let g = if grouping.is_empty() {
                Attributes::new()
            } else {
                project(&attributes(r.get::<_, &str>(1)), grouping)
            };
            let from = since.get(&g).copied().unwrap_or(i64::MIN);
            if r.get::<_, i64>(2) >= from {
                add(groups.entry(g).or_default(), amount)?;
            }
        }
        let late = tx
            .query(
                &tx.prepare_cached(
                    // From `pending` (few once aggregation keeps up), not by the account's
                    // index of events, which would walk all of its events.
                    // LATERAL: each pending event by its primary key, whatever the planner
                    // guesses of the tables' sizes.
                    "SELECT e.amount, e.aux FROM pending p
                     CROSS JOIN LATERAL (SELECT amount, aux FROM events
                                         WHERE id = p.id AND effective_at = p.effective_at) e
                     WHERE p.account = $1 AND p.effective_at < $2",
                )
                .await?,
                &[&account, &at],
            )
            .await?;
        group_rows(
            late.iter().map(|r| (r.get(0), r.get(1))),
            grouping,
            &mut groups,
        )?;
        tx.commit().await?;
        Ok(groups.into_iter().collect())
    }

    pub async fn raw_totals(
        &self,
        kind: &str,
        key: &str,
        grouping: &[String],
        at: Micros,
    ) -> Result<Vec<(Attributes, Totals)>> {
        let client = self.client().await?;
        let Some(account) = Self::find_account(&client, kind, key).await? else {
            return Ok(Vec::new());
        };
        let rows = client
            .query(
                "SELECT amount, aux FROM events WHERE account = $1 AND effective_at < $2",
                &[&account, &at],
            )
            .await?;
        let mut groups = BTreeMap::new();
        group_rows(
            rows.iter().map(|r| (r.get(0), r.get(1))),
            grouping,
            &mut groups,
        )?;
        Ok(groups.into_iter().collect())
    }

    /// Events of the filter after the local id `after`.
    pub async fn events(&self, f: &EventFilter, after: i64) -> Result<EventPage> {
        let client = self.client().await?;
        let limit = f.limit.max(1);
        let key = to_json(&f.key);
        let aux = to_json(&f.aux);
        let params: [&(dyn ToSql + Sync); 7] = [
            &f.kind,
            &f.from,
            &f.to,
            &after,
            &key,
            &aux,
            &(limit as i64 + 1),
        ];
        let mut events: Vec<Event> = client
            .query(
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM events e JOIN accounts a ON a.id = e.account
                     WHERE a.kind = $1 AND e.effective_at >= $2 AND e.effective_at < $3 AND e.id > $4
                       AND a.key::jsonb @> $5::text::jsonb AND e.aux::jsonb @> $6::text::jsonb
                     ORDER BY e.id LIMIT $7"
                ),
                &params,
            )
            .await?
            .iter()
            .map(event_from)
            .collect();
        let next = if events.len() > limit {
            events.truncate(limit);
            events.last().map(|e| e.id)
        } else {
            None
        };
        Ok(EventPage { events, next })
    }

    pub async fn export(&self, after: u64, limit: usize) -> Result<Vec<Event>> {
        let client = self.client().await?;
        Ok(client
            .query(
                &format!(
                    // Sequence numbers are dense: a closed range, which every plan reads by
                    // the index.
                    "SELECT {EVENT_COLUMNS} FROM events e JOIN accounts a ON a.id = e.account
                     WHERE e.seq BETWEEN $1::bigint + 1 AND $1::bigint + $2::bigint ORDER BY e.seq"
                ),
                &[&(after as i64), &(limit as i64)],
            )
            .await?
            .iter()
            .map(event_from)
            .collect())
    }

    pub async fn lock(
        &self,
        kind: &str,
        key: &str,
        holder: &str,
        mode: LockMode,
        lease_us: i64,
        now: Micros,
    ) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Takers of one lock entity queue here, so that "none blocks me" and "I hold it" are one step.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1 || ' ' || $2, 0))",
            &[&kind, &key],
        )
        .await?;
        tx.execute(
            "DELETE FROM locks WHERE kind = $1 AND key = $2 AND expires_at <= $3",
            &[&kind, &key, &now],
        )
        .await?;
        let mode_name = match mode {
            LockMode::Exclusive => "exclusive",
            LockMode::Shared => "shared",
        };
        let blocking: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM locks WHERE kind = $1 AND key = $2 AND holder <> $3
                   AND ($4 = 'exclusive' OR mode = 'exclusive'))",
                &[&kind, &key, &holder, &mode_name],
            )
            .await?
            .get(0);
        if blocking {
            return Err(LedgerError::LockHeld {
                entity: format!("{kind} {key}"),
                mode: mode_name,
            });
        }
        tx.execute(
            "INSERT INTO locks (kind, key, holder, mode, expires_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (kind, key, holder) DO UPDATE SET mode = EXCLUDED.mode, expires_at = EXCLUDED.expires_at",
            &[&kind, &key, &holder, &mode_name, &(now + lease_us)],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn unlock(&self, kind: &str, key: &str, holder: &str) -> Result<bool> {
        let client = self.client().await?;
        Ok(client
            .execute(
                "DELETE FROM locks WHERE kind = $1 AND key = $2 AND holder = $3",
                &[&kind, &key, &holder],
            )
            .await?
            > 0)
    }

    pub async fn state(&self, kind: &str, key: &str) -> Result<State> {
        let client = self.client().await?;
        Ok(
            match client
                .query_opt(
                    "SELECT version, value FROM states WHERE kind = $1 AND key = $2",
                    &[&kind, &key],
                )
                .await?
            {
                Some(r) => State {
                    version: r.get::<_, i64>(0) as u64,
                    value: serde_json::from_str(r.get::<_, &str>(1))
                        .unwrap_or(serde_json::Value::Null),
                },
                None => State {
                    version: 0,
                    value: serde_json::Value::Null,
                },
            },
        )
    }

    pub async fn put_state(
        &self,
        kind: &str,
        key: &str,
        expected: u64,
        value: &serde_json::Value,
    ) -> Result<u64> {
        let client = self.client().await?;
        let text = serde_json::to_string(value).map_err(|e| LedgerError::Storage(e.to_string()))?;
        let next = expected as i64 + 1;
        // One statement each way, so the version check and the write are one atomic step.
        let written = if expected == 0 {
            client
                .execute(
                    "INSERT INTO states (kind, key, version, value) VALUES ($1, $2, 1, $3)
                     ON CONFLICT DO NOTHING",
                    &[&kind, &key, &text],
                )
                .await?
        } else {
            client
                .execute(
                    "UPDATE states SET version = $3, value = $4
                     WHERE kind = $1 AND key = $2 AND version = $5",
                    &[&kind, &key, &next, &text, &(expected as i64)],
                )
                .await?
        };
        if written == 1 {
            return Ok(next as u64);
        }
        let current = self.state(kind, key).await?.version;
        Err(LedgerError::StateConflict {
            entity: format!("{kind} {key}"),
            expected,
            current,
        })
    }
}
