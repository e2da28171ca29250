//! faas-ledger: the accounts ledger under faas's billing. Accounts are typed by configuration
//! ([`config`]); events are dated, signed integer amounts with idempotency keys, written in
//! atomic batches; a balance at any date and the turnovers of any period come from snapshots
//! kept by a background aggregator over the events a single sequencer has stamped, plus the
//! events after them, so an answer never depends on whether aggregation ran. Locks (exclusive
//! and shared, leased) and versioned JSON state live beside the accounts. No HTTP here.
//!
//! [`Ledger`] checks every request against the configuration and hands canonical rows to a
//! [`storage::Storage`] backend: one SQLite file ([`sqlite::SqliteStorage`]) or PostgreSQL
//! shards ([`sharded::Sharded`] over [`postgres::PgShard`]); [`background::open`] picks the one
//! the configuration names and [`background::run`] keeps its sequencer and aggregates going.

pub mod background;
pub mod config;
pub mod error;
pub mod model;
pub mod placement;
pub mod postgres;
pub mod sharded;
pub mod sqlite;
pub mod storage;

use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};

pub use config::LedgerConfig;
pub use error::{LedgerError, Result};
pub use model::*;
use storage::{EventFilter, Groupings, LockCheck, Prepared, Storage};

/// How many events one round of the sequencer or the aggregator takes at most.
pub const ROUND: usize = 10_000;

pub struct Ledger {
    config: LedgerConfig,
    storage: Arc<dyn Storage>,
    groupings: Groupings,
}

/// A query's account and grouping.
#[derive(Debug, Clone)]
pub struct BalanceQuery {
    pub account: AccountId,
    /// Auxiliary attributes to group by: an allowed grouping of the type, or none.
    pub group_by: Vec<String>,
}

fn canonical(a: &Attributes) -> String {
    // BTreeMap: sorted keys, so equal attributes give equal text.
    serde_json::to_string(a).unwrap_or_else(|_| "{}".into())
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        return "none".into();
    }
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Ledger {
    pub fn new(config: LedgerConfig, storage: Arc<dyn Storage>) -> Self {
        let groupings = config
            .accounts
            .iter()
            .map(|(kind, t)| {
                let mut g = vec![Vec::new()];
                g.extend(t.group_by.iter().cloned());
                (kind.clone(), g)
            })
            .collect();
        Self {
            config,
            storage,
            groupings,
        }
    }

    pub fn config(&self) -> &LedgerConfig {
        &self.config
    }

    fn account_type(&self, kind: &str) -> Result<&config::AccountType> {
        self.config
            .accounts
            .get(kind)
            .ok_or_else(|| LedgerError::UnknownAccountType(kind.to_owned()))
    }

    /// The account's key attributes, exactly those of its type.
    fn check_account(&self, account: &AccountId) -> Result<&config::AccountType> {
        let t = self.account_type(&account.kind)?;
        if let Some(missing) = t.key.iter().find(|k| !account.key.contains_key(*k)) {
            return Err(LedgerError::MissingKeyAttribute {
                kind: account.kind.clone(),
                attribute: missing.clone(),
            });
        }
        if let Some(extra) = account.key.keys().find(|k| !t.key.contains(k)) {
            return Err(self.unknown_attribute(&account.kind, extra, t));
        }
        Ok(t)
    }

    fn unknown_attribute(
        &self,
        kind: &str,
        attribute: &str,
        t: &config::AccountType,
    ) -> LedgerError {
        LedgerError::UnknownAttribute {
            kind: kind.to_owned(),
            attribute: attribute.to_owned(),
            key: list(&t.key),
            aux: list(&t.aux),
        }
    }

    fn grouping(
        &self,
        kind: &str,
        t: &config::AccountType,
        wanted: &[String],
    ) -> Result<Vec<String>> {
        t.grouping(wanted)
            .map(<[String]>::to_vec)
            .ok_or_else(|| LedgerError::GroupingNotAllowed {
                kind: kind.to_owned(),
                wanted: list(wanted),
                allowed: t
                    .group_by
                    .iter()
                    .map(|g| format!("[{}]", g.join(", ")))
                    .collect::<Vec<_>>()
                    .join(" "),
            })
    }

    fn prepare(&self, e: &NewEvent) -> Result<Prepared> {
        let t = self.check_account(&e.account)?;
        if let Some(extra) = e.aux.keys().find(|k| !t.aux.contains(k)) {
            return Err(self.unknown_attribute(&e.account.kind, extra, t));
        }
        if e.idempotency_key.is_empty() {
            return Err(LedgerError::EmptyIdempotencyKey);
        }
        let key = canonical(&e.account.key);
        let aux = canonical(&e.aux);
        let info = serde_json::to_string(&e.info).unwrap_or_else(|_| "null".into());
        let mut h = Sha256::new();
        for part in [e.account.kind.as_str(), &key, &aux, &info] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        h.update(e.amount.to_be_bytes());
        h.update(e.effective_at.to_be_bytes());
        Ok(Prepared {
            kind: e.account.kind.clone(),
            key,
            aux,
            amount: e.amount,
            effective_at: e.effective_at,
            idempotency_key: e.idempotency_key.clone(),
            info,
            hash: h.finalize().to_vec(),
        })
    }

    /// Writes a batch atomically. Each event is new, or already written (same key, same
    /// content); a key written with other content fails the whole batch.
    pub async fn write(&self, batch: &[NewEvent]) -> Result<Vec<Written>> {
        let prepared = batch
            .iter()
            .map(|e| self.prepare(e))
            .collect::<Result<Vec<_>>>()?;
        self.storage.write(&prepared, None, now()).await
    }

    /// Writes a batch only while `holder` holds the lock `lock`.
    pub async fn write_locked(
        &self,
        batch: &[NewEvent],
        lock: &EntityId,
        holder: &str,
    ) -> Result<Vec<Written>> {
        let key = self.check_entity("lock", lock)?;
        let prepared = batch
            .iter()
            .map(|e| self.prepare(e))
            .collect::<Result<Vec<_>>>()?;
        let check = LockCheck {
            kind: lock.kind.clone(),
            key,
            holder: holder.to_owned(),
        };
        self.storage.write(&prepared, Some(&check), now()).await
    }

    /// The query's canonical key and its grouping in `aux` order, checked.
    fn resolve(&self, q: &BalanceQuery) -> Result<(String, Vec<String>)> {
        let t = self.check_account(&q.account)?;
        let grouping = self.grouping(&q.account.kind, t, &q.group_by)?;
        Ok((canonical(&q.account.key), grouping))
    }

    async fn totals(&self, q: &BalanceQuery, at: Micros) -> Result<BTreeMap<Attributes, Totals>> {
        let (key, grouping) = self.resolve(q)?;
        Ok(self
            .storage
            .totals(&q.account.kind, &key, &grouping, at)
            .await?
            .into_iter()
            .collect())
    }

    fn balances(totals: impl IntoIterator<Item = (Attributes, Totals)>) -> Vec<Balance> {
        totals
            .into_iter()
            .map(|(group, t)| Balance {
                group,
                balance: t.balance(),
            })
            .collect()
    }

    /// The balance of an account at `at` (events effective before it), one per group.
    pub async fn balance(&self, q: &BalanceQuery, at: Micros) -> Result<Vec<Balance>> {
        Ok(Self::balances(self.totals(q, at).await?))
    }

    /// The same balance from the raw events alone, without the snapshots.
    pub async fn raw_balance(&self, q: &BalanceQuery, at: Micros) -> Result<Vec<Balance>> {
        let (key, grouping) = self.resolve(q)?;
        let totals = self
            .storage
            .raw_totals(&q.account.kind, &key, &grouping, at)
            .await?;
        Ok(Self::balances(totals))
    }

    /// Opening balance, debit and credit totals and closing balance over `[from, to)`, per
    /// group.
    pub async fn turnovers(
        &self,
        q: &BalanceQuery,
        from: Micros,
        to: Micros,
    ) -> Result<Vec<Turnover>> {
        if to < from {
            return Err(LedgerError::InvalidPeriod { from, to });
        }
        let opening = self.totals(q, from).await?;
        let closing = self.totals(q, to).await?;
        let mut groups: Vec<&Attributes> = opening.keys().chain(closing.keys()).collect();
        groups.sort();
        groups.dedup();
        Ok(groups
            .into_iter()
            .map(|g| {
                let o = opening.get(g).copied().unwrap_or_default();
                let c = closing.get(g).copied().unwrap_or_default();
                let moved = c.minus(o);
                Turnover {
                    group: g.clone(),
                    opening: o.balance(),
                    debit: moved.debit,
                    credit: moved.credit,
                    closing: c.balance(),
                }
            })
            .collect())
    }

    /// Events of an account type effective in `[from, to)` whose key and auxiliary
    /// attributes match the filters, `limit` at a time after the cursor `after`.
    pub async fn events(&self, filter: &EventFilter) -> Result<EventPage> {
        let t = self.account_type(&filter.kind)?;
        if filter.to < filter.from {
            return Err(LedgerError::InvalidPeriod {
                from: filter.from,
                to: filter.to,
            });
        }
        for k in filter.key.keys() {
            if !t.key.contains(k) {
                return Err(self.unknown_attribute(&filter.kind, k, t));
            }
        }
        for k in filter.aux.keys() {
            if !t.aux.contains(k) {
                return Err(self.unknown_attribute(&filter.kind, k, t));
            }
        }
        let whole = t.key.iter().all(|k| filter.key.contains_key(k));
        let key = whole.then(|| canonical(&filter.key));
        self.storage.events(filter, key.as_deref()).await
    }

    /// How many shards keep their own export sequence: a consumer keeps one watermark each.
    pub fn shards(&self) -> usize {
        self.storage.shards()
    }

    /// Sequenced events of `shard` after `after`, in sequence order: a consumer that keeps the
    /// last number it processed sees each event once, and never a lower number later.
    pub async fn export(&self, shard: usize, after: u64, limit: usize) -> Result<Vec<Event>> {
        if shard >= self.shards() {
            return Err(LedgerError::NoSuchShard {
                shard,
                shards: self.shards(),
            });
        }
        self.storage.export(shard, after, limit).await
    }

    /// Housekeeping: partitions ahead of time, transactions left in doubt.
    pub async fn maintain(&self) -> Result<()> {
        self.storage.maintain(now()).await
    }

    /// One round of the sequencer as `holder` (None: another holder's lease is in force).
    pub async fn sequence(&self, holder: &str, lease_us: i64) -> Result<Option<usize>> {
        self.storage.sequence(holder, lease_us, ROUND, now()).await
    }

    /// One round of the aggregator.
    pub async fn aggregate(&self) -> Result<usize> {
        self.storage
            .aggregate(&self.groupings, self.config.interval_s, ROUND)
            .await
    }

    fn check_entity(&self, section: &'static str, e: &EntityId) -> Result<String> {
        let types = if section == "lock" {
            &self.config.locks
        } else {
            &self.config.states
        };
        let t = types
            .get(&e.kind)
            .ok_or_else(|| LedgerError::UnknownEntityType {
                section,
                name: e.kind.clone(),
            })?;
        if let Some(missing) = t.key.iter().find(|k| !e.key.contains_key(*k)) {
            return Err(LedgerError::MissingKeyAttribute {
                kind: e.kind.clone(),
                attribute: missing.clone(),
            });
        }
        if let Some(extra) = e.key.keys().find(|k| !t.key.contains(k)) {
            return Err(LedgerError::UnknownAttribute {
                kind: e.kind.clone(),
                attribute: extra.clone(),
                key: list(&t.key),
                aux: "none".into(),
            });
        }
        Ok(canonical(&e.key))
    }

    /// Takes (or renews) a lock for `lease_us`; a holder that dies loses it when the lease ends.
    pub async fn lock(
        &self,
        lock: &EntityId,
        holder: &str,
        mode: LockMode,
        lease_us: i64,
    ) -> Result<()> {
        let key = self.check_entity("lock", lock)?;
        self.storage
            .lock(&lock.kind, &key, holder, mode, lease_us, now())
            .await
    }

    pub async fn unlock(&self, lock: &EntityId, holder: &str) -> Result<bool> {
        let key = self.check_entity("lock", lock)?;
        self.storage.unlock(&lock.kind, &key, holder).await
    }

    pub async fn state(&self, state: &EntityId) -> Result<State> {
        let key = self.check_entity("state", state)?;
        self.storage.state(&state.kind, &key).await
    }

    /// Compare-and-set: writes when the state is still at `expected` (0: never written).
    pub async fn put_state(
        &self,
        state: &EntityId,
        expected: u64,
        value: &serde_json::Value,
    ) -> Result<u64> {
        let key = self.check_entity("state", state)?;
        self.storage
            .put_state(&state.kind, &key, expected, value)
            .await
    }
}

/// Now, in microseconds since the epoch.
pub fn now() -> Micros {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}
