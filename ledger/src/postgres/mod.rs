//! One PostgreSQL shard of the ledger: the same tables and answers as the SQLite file, with
//! batches written by set-based statements (one round trip per table, not per event), events
//! partitioned by month ([`schema`]), and everything that must be serialised (the sequencer,
//! the aggregator, a lock, a state) serialised by row locks or advisory locks, since several
//! platform processes may share a shard.
//!
//! [`crate::sharded::Sharded`] places accounts, locks and states over several shards.

mod rounds;
pub mod schema;
mod write;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use deadpool_postgres::{Client, Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

use crate::error::{LedgerError, Result};
use crate::model::{AccountId, Attributes, Event, EventPage, LockMode, Micros, State, Totals};
use crate::storage::{EventFilter, add, attributes, group_rows, project};

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
        // The aggregated events after a group's snapshot all lie in the day `at` is in.
        let scan_from = crate::storage::day_floor(at);
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
