//! The ledger on one SQLite file (WAL; one writer, so commit order is id order, and an
//! event's id is its sequence number: [`schema`]). Snapshots hold each account's cumulative
//! debit and credit at interval boundaries, per allowed grouping; a late event adds itself to
//! every later snapshot of its groups, so a snapshot always equals the sum of the aggregated
//! events effective before its boundary.

mod dims;
pub mod schema;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::error::{LedgerError, Result};
use crate::model::{Attributes, Event, EventPage, LockMode, Micros, State, Totals, Written};
use crate::storage::{
    EventFilter, Groupings, LockCheck, Prepared, Storage, add, attributes, fold_round, round_deltas,
};
use dims::{Dims, Projection};

pub struct SqliteStorage {
    inner: Mutex<Inner>,
}

struct Inner {
    conn: Connection,
    dims: Dims,
}

fn grouping_name(grouping: &[String]) -> String {
    grouping.join(",")
}

fn progress(tx: &Connection, name: &str) -> Result<i64> {
    Ok(tx
        .prepare_cached("SELECT value FROM progress WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

fn set_progress(tx: &Connection, name: &str, value: i64) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO progress (name, value) VALUES (?1, ?2)
         ON CONFLICT(name) DO UPDATE SET value = ?2",
    )?
    .execute(params![name, value])?;
    Ok(())
}

/// Sums rows of (amount, dim id) into the groups of `grouping`, each dim projected once.
fn group_dims(
    rows: impl Iterator<Item = (i64, i64)>,
    grouping: &[String],
    conn: &Connection,
    dims: &mut Dims,
    groups: &mut BTreeMap<Attributes, Totals>,
) -> Result<()> {
    let mut projection = Projection::new(grouping);
    for (amount, dim) in rows {
        let g = projection.of(conn, dims, dim)?;
        match groups.get_mut(g) {
            Some(t) => add(t, amount)?,
            None => add(groups.entry(g.clone()).or_default(), amount)?,
        }
    }
    Ok(())
}

impl SqliteStorage {
    /// Opens (creating, or bringing an older layout up to date) the ledger file.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        Self::init(conn)
    }

    /// A ledger in memory (tests).
    pub fn in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Self> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // 64 MiB of pages (the default is 2 MiB): the event indexes of a month stay in memory.
        conn.pragma_update(None, "cache_size", -65_536)?;
        schema::init(&mut conn)?;
        Ok(Self {
            inner: Mutex::new(Inner {
                conn,
                dims: Dims::default(),
            }),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection, &mut Dims) -> Result<T>) -> Result<T> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Inner { conn, dims } = &mut *inner;
        f(conn, dims)
    }

    fn account_id(tx: &Transaction<'_>, kind: &str, key: &str) -> Result<i64> {
        if let Some(id) = Self::find_account(tx, kind, key)? {
            return Ok(id);
        }
        tx.prepare_cached("INSERT INTO accounts (kind, key) VALUES (?1, ?2)")?
            .execute([kind, key])?;
        Ok(tx.last_insert_rowid())
    }

    fn find_account(conn: &Connection, kind: &str, key: &str) -> Result<Option<i64>> {
        Ok(conn
            .prepare_cached("SELECT id FROM accounts WHERE kind = ?1 AND key = ?2")?
            .query_row([kind, key], |r| r.get(0))
            .optional()?)
    }
}

fn event_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<Event> {
    let kind: String = r.get(2)?;
    let key: String = r.get(3)?;
    let aux: String = r.get(4)?;
    let info: String = r.get(8)?;
    Ok(Event {
        id: r.get(0)?,
        seq: r.get::<_, Option<i64>>(1)?.map(|s| s as u64),
        shard: 0,
        account: crate::model::AccountId {
            kind,
            key: attributes(&key),
        },
        aux: attributes(&aux),
        amount: r.get(5)?,
        effective_at: r.get(6)?,
        idempotency_key: r.get(7)?,
        info: serde_json::from_str(&info).unwrap_or(serde_json::Value::Null),
    })
}

/// An event's sequence number is its id, once the sequencer's watermark has passed it.
const EVENT_COLUMNS: &str = "e.id,
    CASE WHEN e.id <= COALESCE((SELECT value FROM progress WHERE name = 'sequenced'), 0) THEN e.id END,
    a.kind, a.key, d.aux, e.amount, e.effective_at, e.idem, e.info";
const EVENT_TABLES: &str =
    "events e JOIN accounts a ON a.id = e.account JOIN dims d ON d.id = e.dim";

#[async_trait::async_trait]
impl Storage for SqliteStorage {
    async fn write(
        &self,
        batch: &[Prepared],
        lock: Option<&LockCheck>,
        now: Micros,
    ) -> Result<Vec<Written>> {
        self.with(|conn, dims| {
            let tx = conn.transaction()?;
            if let Some(l) = lock {
                let held: bool = tx
                    .prepare_cached(
                        "SELECT EXISTS (SELECT 1 FROM locks WHERE kind = ?1 AND key = ?2 AND holder = ?3 AND expires_at > ?4)",
                    )?
                    .query_row(params![l.kind, l.key, l.holder, now], |r| r.get(0))?;
                if !held {
                    return Err(LedgerError::LockNotHeld(format!("{} {}", l.kind, l.key)));
                }
            }
            let mut accounts: HashMap<(&str, &str), i64> = HashMap::new();
            let mut local: HashMap<&str, i64> = HashMap::new();
            let mut learned = Vec::new();
            let mut out = Vec::with_capacity(batch.len());
            let mut insert = tx.prepare_cached(
                "INSERT INTO events (account, dim, amount, effective_at, idem, hash, info)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (account, idem) DO NOTHING",
            )?;
            for e in batch {
                let account = match accounts.get(&(e.kind.as_str(), e.key.as_str())) {
                    Some(id) => *id,
                    None => {
                        let id = Self::account_id(&tx, &e.kind, &e.key)?;
                        accounts.insert((&e.kind, &e.key), id);
                        id
                    }
                };
                let dim = match local.get(e.aux.as_str()) {
                    Some(id) => *id,
                    None => {
                        let (id, new) = dims.id(&tx, &e.aux)?;
                        if new {
                            learned.push((e.aux.clone(), id));
                        }
                        local.insert(&e.aux, id);
                        id
                    }
                };
                let inserted = insert.execute(params![
                    account,
                    dim,
                    e.amount,
                    e.effective_at,
                    e.idempotency_key,
                    e.hash,
                    e.info
                ])?;
                if inserted == 1 {
                    out.push(Written::New(tx.last_insert_rowid()));
                    continue;
                }
                let (id, hash): (i64, Vec<u8>) = tx
                    .prepare_cached("SELECT id, hash FROM events WHERE account = ?1 AND idem = ?2")?
                    .query_row(params![account, e.idempotency_key], |r| Ok((r.get(0)?, r.get(1)?)))?;
                if hash != e.hash {
                    // Dropping the transaction rolls the whole batch back.
                    return Err(LedgerError::IdempotencyConflict(e.idempotency_key.clone()));
                }
                out.push(Written::AlreadyWritten(id));
            }
            drop(insert);
            tx.commit()?;
            dims.remember(learned);
            Ok(out)
        })
    }

    async fn sequence(
        &self,
        holder: &str,
        lease_us: i64,
        max: usize,
        now: Micros,
    ) -> Result<Option<usize>> {
        self.with(|conn, _| {
            let tx = conn.transaction()?;
            let taken = tx.execute(
                "INSERT INTO leases (name, holder, expires_at) VALUES ('sequencer', ?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET holder = ?1, expires_at = ?2
                 WHERE leases.holder = ?1 OR leases.expires_at <= ?3",
                params![holder, now + lease_us, now],
            )?;
            if taken == 0 {
                return Ok(None);
            }
            // Ids are dense and in commit order: stamping is moving the watermark.
            let last = progress(&tx, "sequenced")?;
            let top: i64 =
                tx.query_row("SELECT COALESCE(MAX(id), 0) FROM events", [], |r| r.get(0))?;
            let next = top.min(last.saturating_add(max as i64)).max(last);
            set_progress(&tx, "sequenced", next)?;
            tx.commit()?;
            Ok(Some((next - last) as usize))
        })
    }

    async fn aggregate(&self, groupings: &Groupings, interval: i64, max: usize) -> Result<usize> {
        self.with(|conn, dims| {
            let tx = conn.transaction()?;
            let watermark = progress(&tx, "aggregated")?;
            let sequenced = progress(&tx, "sequenced")?;
            let rows: Vec<(i64, i64, String, i64, i64, i64)> = tx
                .prepare_cached(
                    "SELECT e.id, e.account, a.kind, e.dim, e.amount, e.effective_at
                     FROM events e JOIN accounts a ON a.id = e.account
                     WHERE e.id > ?1 AND e.id <= ?2 ORDER BY e.id LIMIT ?3",
                )?
                .query_map(params![watermark, sequenced, max as i64], |r| r.try_into())?
                .collect::<rusqlite::Result<_>>()?;
            let last = rows.last().map_or(watermark, |r| r.0);
            let deltas = round_deltas(
                rows.iter().map(|(_, account, kind, dim, amount, at)| {
                    (*account, kind.as_str(), *dim, *amount, *at)
                }),
                groupings,
                interval,
                |dim| Ok((*dims.attrs(&tx, *dim)?).clone()),
            )?;
            for (k, d) in &deltas {
                let first = *d.keys().next().unwrap_or(&0);
                let base: Option<Totals> = tx
                    .prepare_cached(
                        "SELECT debit, credit FROM snapshots
                         WHERE account = ?1 AND grouping = ?2 AND vals = ?3 AND boundary < ?4
                         ORDER BY boundary DESC LIMIT 1",
                    )?
                    .query_row(params![k.account, k.grouping, k.vals, first], |r| {
                        Ok(Totals {
                            debit: r.get(0)?,
                            credit: r.get(1)?,
                        })
                    })
                    .optional()?;
                let existing: BTreeMap<Micros, Totals> = tx
                    .prepare_cached(
                        "SELECT boundary, debit, credit FROM snapshots
                         WHERE account = ?1 AND grouping = ?2 AND vals = ?3 AND boundary >= ?4",
                    )?
                    .query_map(params![k.account, k.grouping, k.vals, first], |r| {
                        Ok((
                            r.get(0)?,
                            Totals {
                                debit: r.get(1)?,
                                credit: r.get(2)?,
                            },
                        ))
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                let mut upsert = tx.prepare_cached(
                    "INSERT INTO snapshots (account, grouping, vals, boundary, debit, credit)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT DO UPDATE SET debit = excluded.debit, credit = excluded.credit",
                )?;
                for (boundary, t) in fold_round(base, &existing, d)? {
                    upsert.execute(params![
                        k.account, k.grouping, k.vals, boundary, t.debit, t.credit
                    ])?;
                }
            }
            set_progress(&tx, "aggregated", last)?;
            tx.commit()?;
            Ok(rows.len())
        })
    }

    async fn totals(
        &self,
        kind: &str,
        key: &str,
        grouping: &[String],
        at: Micros,
    ) -> Result<Vec<(Attributes, Totals)>> {
        self.with(|conn, dims| {
            // One read transaction: the watermark and the rows agree.
            let tx = conn.transaction()?;
            let Some(account) = Self::find_account(&tx, kind, key)? else {
                return Ok(Vec::new());
            };
            let watermark = progress(&tx, "aggregated")?;
            let name = grouping_name(grouping);
            // The nearest snapshot at or before `at`, per group (SQLite returns the other
            // columns of the row that holds the MAX).
            let snapshots: Vec<(String, i64, i64, i64)> = tx
                .prepare_cached(
                    "SELECT vals, MAX(boundary), debit, credit FROM snapshots
                     WHERE account = ?1 AND grouping = ?2 AND boundary <= ?3 GROUP BY vals",
                )?
                .query_map(params![account, name, at], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut groups: BTreeMap<Attributes, Totals> = BTreeMap::new();
            let mut since: BTreeMap<Attributes, Micros> = BTreeMap::new();
            // The aggregated events after a group's latest snapshot (or of a group without
            // one) all lie in the day `at` is in: each aggregated event has a snapshot at its
            // own boundary, and a later one than the group's latest would be at or before `at`.
            let step = crate::storage::day_floor(at);
            for (vals, boundary, debit, credit) in snapshots {
                let g = attributes(&vals);
                groups.insert(g.clone(), Totals { debit, credit });
                since.insert(g, boundary);
            }
            // Without a grouping the one range is summed where the rows are, from the one
            // snapshot on; with one, every group's events are filtered by its own snapshot.
            let scan_from = match since.values().next() {
                Some(b) if grouping.is_empty() => step.max(*b),
                _ => step,
            };
            if grouping.is_empty() {
                let (rows, debit, credit): (i64, i64, i64) = tx
                    .prepare_cached(
                        "SELECT COUNT(*), COALESCE(SUM(MAX(amount, 0)), 0), COALESCE(SUM(MAX(-amount, 0)), 0)
                         FROM events
                         WHERE account = ?1 AND effective_at >= ?2 AND effective_at < ?3 AND id <= ?4",
                    )?
                    .query_row(params![account, scan_from, at, watermark], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })?;
                if rows > 0 {
                    let t = groups.entry(Attributes::new()).or_default();
                    add(t, debit)?;
                    add(t, -credit)?;
                }
            } else {
                let partial: Vec<(i64, i64, i64)> = tx
                    .prepare_cached(
                        "SELECT amount, dim, effective_at FROM events
                         WHERE account = ?1 AND effective_at >= ?2 AND effective_at < ?3 AND id <= ?4",
                    )?
                    .query_map(params![account, scan_from, at, watermark], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                let mut projection = Projection::new(grouping);
                for (amount, dim, effective_at) in partial {
                    let g = projection.of(&tx, dims, dim)?;
                    let from = since.get(g).copied().unwrap_or(i64::MIN);
                    if effective_at >= from {
                        add(groups.entry(g.clone()).or_default(), amount)?;
                    }
                }
            }
            // Events not aggregated yet: past the watermark (few once aggregation keeps up;
            // `+` keeps SQLite on the id range, off the account's index, which would walk all
            // of its events).
            let late: Vec<(i64, i64)> = tx
                .prepare_cached(
                    "SELECT amount, dim FROM events WHERE id > ?2 AND +account = ?1 AND +effective_at < ?3",
                )?
                .query_map(params![account, watermark, at], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            group_dims(late.into_iter(), grouping, &tx, dims, &mut groups)?;
            Ok(groups.into_iter().collect())
        })
    }

    async fn raw_totals(
        &self,
        kind: &str,
        key: &str,
        grouping: &[String],
        at: Micros,
    ) -> Result<Vec<(Attributes, Totals)>> {
        self.with(|conn, dims| {
            let Some(account) = Self::find_account(conn, kind, key)? else {
                return Ok(Vec::new());
            };
            let mut groups = BTreeMap::new();
            let rows: Vec<(i64, i64)> = conn
                .prepare_cached(
                    "SELECT amount, dim FROM events WHERE account = ?1 AND effective_at < ?2",
                )?
                .query_map(params![account, at], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            group_dims(rows.into_iter(), grouping, conn, dims, &mut groups)?;
            Ok(groups.into_iter().collect())
        })
    }

    async fn events(&self, f: &EventFilter, _account_key: Option<&str>) -> Result<EventPage> {
        self.with(|conn, _| {
            let mut sql = format!(
                "SELECT {EVENT_COLUMNS} FROM {EVENT_TABLES}
                 WHERE a.kind = ?1 AND e.effective_at >= ?2 AND e.effective_at < ?3 AND e.id > ?4"
            );
            let mut values: Vec<String> = Vec::new();
            for (i, (name, value)) in f.key.iter().enumerate() {
                sql.push_str(&format!(
                    " AND json_extract(a.key, '$.\"' || ?{} || '\"') = ?{}",
                    6 + 2 * i,
                    7 + 2 * i
                ));
                values.push(name.clone());
                values.push(value.clone());
            }
            let offset = 6 + 2 * f.key.len();
            for (i, (name, value)) in f.aux.iter().enumerate() {
                sql.push_str(&format!(
                    " AND json_extract(d.aux, '$.\"' || ?{} || '\"') = ?{}",
                    offset + 2 * i,
                    offset + 1 + 2 * i
                ));
                values.push(name.clone());
                values.push(value.clone());
            }
            sql.push_str(" ORDER BY e.id LIMIT ?5");
            let mut stmt = conn.prepare_cached(&sql)?;
            let limit = f.limit.max(1);
            let mut params: Vec<Box<dyn rusqlite::ToSql>> = vec![
                Box::new(f.kind.clone()),
                Box::new(f.from),
                Box::new(f.to),
                Box::new(f.after),
                Box::new(limit as i64 + 1),
            ];
            params.extend(
                values
                    .into_iter()
                    .map(|v| Box::new(v) as Box<dyn rusqlite::ToSql>),
            );
            let mut events: Vec<Event> = stmt
                .query_map(rusqlite::params_from_iter(params.iter()), event_from)?
                .collect::<rusqlite::Result<_>>()?;
            let next = if events.len() > limit {
                events.truncate(limit);
                events.last().map(|e| e.id)
            } else {
                None
            };
            Ok(EventPage { events, next })
        })
    }

    async fn export(&self, _shard: usize, after: u64, limit: usize) -> Result<Vec<Event>> {
        self.with(|conn, _| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM {EVENT_TABLES}
                     WHERE e.id > ?1
                       AND e.id <= COALESCE((SELECT value FROM progress WHERE name = 'sequenced'), 0)
                     ORDER BY e.id LIMIT ?2"
                ))?
                .query_map(params![after as i64, limit as i64], event_from)?
                .collect::<rusqlite::Result<_>>()?)
        })
    }

    async fn lock(
        &self,
        kind: &str,
        key: &str,
        holder: &str,
        mode: LockMode,
        lease_us: i64,
        now: Micros,
    ) -> Result<()> {
        self.with(|conn, _| {
            let tx = conn.transaction()?;
            tx.execute(
                "DELETE FROM locks WHERE kind = ?1 AND key = ?2 AND expires_at <= ?3",
                params![kind, key, now],
            )?;
            let mode_name = match mode {
                LockMode::Exclusive => "exclusive",
                LockMode::Shared => "shared",
            };
            // An exclusive lock excludes every other holder; a shared one, exclusive holders.
            let blocking: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM locks WHERE kind = ?1 AND key = ?2 AND holder != ?3
                   AND (?4 = 'exclusive' OR mode = 'exclusive'))",
                params![kind, key, holder, mode_name],
                |r| r.get(0),
            )?;
            if blocking {
                return Err(LedgerError::LockHeld {
                    entity: format!("{kind} {key}"),
                    mode: mode_name,
                });
            }
            tx.execute(
                "INSERT INTO locks (kind, key, holder, mode, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (kind, key, holder) DO UPDATE SET mode = ?4, expires_at = ?5",
                params![kind, key, holder, mode_name, now + lease_us],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    async fn unlock(&self, kind: &str, key: &str, holder: &str) -> Result<bool> {
        self.with(|conn, _| {
            Ok(conn.execute(
                "DELETE FROM locks WHERE kind = ?1 AND key = ?2 AND holder = ?3",
                params![kind, key, holder],
            )? > 0)
        })
    }

    async fn state(&self, kind: &str, key: &str) -> Result<State> {
        self.with(|conn, _| {
            let row: Option<(i64, String)> = conn
                .query_row(
                    "SELECT version, value FROM states WHERE kind = ?1 AND key = ?2",
                    [kind, key],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            Ok(match row {
                Some((version, value)) => State {
                    version: version as u64,
                    value: serde_json::from_str(&value).unwrap_or(serde_json::Value::Null),
                },
                None => State {
                    version: 0,
                    value: serde_json::Value::Null,
                },
            })
        })
    }

    async fn put_state(
        &self,
        kind: &str,
        key: &str,
        expected: u64,
        value: &serde_json::Value,
    ) -> Result<u64> {
        self.with(|conn, _| {
            let tx = conn.transaction()?;
            let current: u64 = tx
                .query_row(
                    "SELECT version FROM states WHERE kind = ?1 AND key = ?2",
                    [kind, key],
                    |r| r.get::<_, i64>(0),
                )
                .optional()?
                .map_or(0, |v| v as u64);
            if current != expected {
                return Err(LedgerError::StateConflict {
                    entity: format!("{kind} {key}"),
                    expected,
                    current,
                });
            }
            let text =
                serde_json::to_string(value).map_err(|e| LedgerError::Storage(e.to_string()))?;
            tx.execute(
                "INSERT INTO states (kind, key, version, value) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (kind, key) DO UPDATE SET version = ?3, value = ?4",
                params![kind, key, (current + 1) as i64, text],
            )?;
            tx.commit()?;
            Ok(current + 1)
        })
    }
}
