//! The ledger on one SQLite file (WAL; one writer, so commit order is id order). Snapshots hold
//! each account's cumulative debit and credit at interval boundaries, per allowed grouping; a
//! late event adds itself to every later snapshot of its groups, so a snapshot always equals
//! the sum of the aggregated events effective before its boundary.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::error::{LedgerError, Result};
use crate::model::{Attributes, Event, EventPage, LockMode, Micros, State, Totals, Written};
use crate::storage::{
    EventFilter, Groupings, LockCheck, Prepared, Storage, add, attributes, fold_round, group_rows,
    project, round_deltas,
};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS accounts (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    UNIQUE (kind, key)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    seq INTEGER UNIQUE,
    account INTEGER NOT NULL REFERENCES accounts(id),
    aux TEXT NOT NULL,
    amount INTEGER NOT NULL,
    effective_at INTEGER NOT NULL,
    idem TEXT NOT NULL,
    hash BLOB NOT NULL,
    info TEXT NOT NULL,
    UNIQUE (account, idem)
);
-- Covering: a balance reads the events after its snapshot from the index alone, in order,
-- not row by row from wherever each landed in the table.
DROP INDEX IF EXISTS events_by_account;
CREATE INDEX IF NOT EXISTS events_by_account_time ON events (account, effective_at, seq, amount, aux);
CREATE INDEX IF NOT EXISTS events_unsequenced ON events (id) WHERE seq IS NULL;
CREATE TABLE IF NOT EXISTS snapshots (
    account INTEGER NOT NULL,
    grouping TEXT NOT NULL,
    vals TEXT NOT NULL,
    boundary INTEGER NOT NULL,
    debit INTEGER NOT NULL,
    credit INTEGER NOT NULL,
    PRIMARY KEY (account, grouping, vals, boundary)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS progress (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS locks (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    holder TEXT NOT NULL,
    mode TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (kind, key, holder)
);
CREATE TABLE IF NOT EXISTS states (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    version INTEGER NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (kind, key)
);
"#;

pub struct SqliteStorage {
    conn: Mutex<Connection>,
}

fn grouping_name(grouping: &[String]) -> String {
    grouping.join(",")
}

fn progress(tx: &Connection, name: &str) -> Result<i64> {
    Ok(tx
        .query_row("SELECT value FROM progress WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?
        .unwrap_or(0))
}

fn set_progress(tx: &Connection, name: &str, value: i64) -> Result<()> {
    tx.execute(
        "INSERT INTO progress (name, value) VALUES (?1, ?2)
         ON CONFLICT(name) DO UPDATE SET value = ?2",
        params![name, value],
    )?;
    Ok(())
}

impl SqliteStorage {
    /// Opens (creating) the ledger file.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        Self::init(conn)
    }

    /// A ledger in memory (tests).
    pub fn in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // 64 MiB of pages (the default is 2 MiB): the event indexes of a month stay in memory.
        conn.pragma_update(None, "cache_size", -65_536)?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn)
    }

    fn account_id(tx: &Transaction<'_>, kind: &str, key: &str) -> Result<i64> {
        tx.prepare_cached(
            "INSERT INTO accounts (kind, key) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        )?
        .execute([kind, key])?;
        Ok(tx
            .prepare_cached("SELECT id FROM accounts WHERE kind = ?1 AND key = ?2")?
            .query_row([kind, key], |r| r.get(0))?)
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

const EVENT_COLUMNS: &str =
    "e.id, e.seq, a.kind, a.key, e.aux, e.amount, e.effective_at, e.idem, e.info";

#[async_trait::async_trait]
impl Storage for SqliteStorage {
    async fn write(
        &self,
        batch: &[Prepared],
        lock: Option<&LockCheck>,
        now: Micros,
    ) -> Result<Vec<Written>> {
        self.with(|conn| {
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
            let mut accounts: BTreeMap<(&str, &str), i64> = BTreeMap::new();
            let mut out = Vec::with_capacity(batch.len());
            for e in batch {
                let account = match accounts.get(&(e.kind.as_str(), e.key.as_str())) {
                    Some(id) => *id,
                    None => {
                        let id = Self::account_id(&tx, &e.kind, &e.key)?;
                        accounts.insert((&e.kind, &e.key), id);
                        id
                    }
                };
                let inserted = tx
                    .prepare_cached(
                        "INSERT INTO events (account, aux, amount, effective_at, idem, hash, info)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (account, idem) DO NOTHING",
                    )?
                    .execute(params![
                        account,
                        e.aux,
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
            tx.commit()?;
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
        self.with(|conn| {
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
            let last = progress(&tx, "sequenced")?;
            let ids: Vec<i64> = tx
                .prepare_cached("SELECT id FROM events WHERE seq IS NULL ORDER BY id LIMIT ?1")?
                .query_map([max as i64], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            {
                let mut stamp = tx.prepare_cached("UPDATE events SET seq = ?2 WHERE id = ?1")?;
                for (i, id) in ids.iter().enumerate() {
                    stamp.execute(params![id, last + 1 + i as i64])?;
                }
            }
            set_progress(&tx, "sequenced", last + ids.len() as i64)?;
            tx.commit()?;
            Ok(Some(ids.len()))
        })
    }

    async fn aggregate(&self, groupings: &Groupings, interval: i64, max: usize) -> Result<usize> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            let watermark = progress(&tx, "aggregated")?;
            let rows: Vec<(i64, i64, String, String, i64, i64)> = tx
                .prepare_cached(
                    "SELECT e.seq, e.account, a.kind, e.aux, e.amount, e.effective_at
                     FROM events e JOIN accounts a ON a.id = e.account
                     WHERE e.seq > ?1 ORDER BY e.seq LIMIT ?2",
                )?
                .query_map(params![watermark, max as i64], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let last = rows.last().map_or(watermark, |r| r.0);
            let deltas = round_deltas(
                rows.iter().map(|(_, account, kind, aux, amount, at)| {
                    (*account, kind.as_str(), aux.as_str(), *amount, *at)
                }),
                groupings,
                interval,
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
        self.with(|conn| {
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
                         WHERE account = ?1 AND effective_at >= ?2 AND effective_at < ?3
                           AND seq IS NOT NULL AND seq <= ?4",
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
                let partial: Vec<(i64, String, i64)> = tx
                    .prepare_cached(
                        "SELECT amount, aux, effective_at FROM events
                         WHERE account = ?1 AND effective_at >= ?2 AND effective_at < ?3
                           AND seq IS NOT NULL AND seq <= ?4",
                    )?
                    .query_map(params![account, scan_from, at, watermark], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                for (amount, aux, effective_at) in partial {
                    let g = project(&attributes(&aux), grouping);
                    let from = since.get(&g).copied().unwrap_or(i64::MIN);
                    if effective_at >= from {
                        add(groups.entry(g).or_default(), amount)?;
                    }
                }
            }
            // Events not aggregated yet: past the watermark, or not even sequenced.
            let late: Vec<(i64, String)> = tx
                .prepare_cached(
                    // By sequence number (`+` keeps SQLite off the account's index, which
                    // would walk all of its events): few once aggregation keeps up.
                    "SELECT amount, aux FROM events WHERE seq > ?2 AND +account = ?1 AND +effective_at < ?3
                     UNION ALL
                     SELECT amount, aux FROM events WHERE seq IS NULL AND +account = ?1 AND +effective_at < ?3",
                )?
                .query_map(params![account, watermark, at], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            group_rows(late.into_iter(), grouping, &mut groups)?;
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
        self.with(|conn| {
            let Some(account) = Self::find_account(conn, kind, key)? else {
                return Ok(Vec::new());
            };
            let mut groups = BTreeMap::new();
            let rows: Vec<(i64, String)> = conn
                .prepare_cached(
                    "SELECT amount, aux FROM events WHERE account = ?1 AND effective_at < ?2",
                )?
                .query_map(params![account, at], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            group_rows(rows.into_iter(), grouping, &mut groups)?;
            Ok(groups.into_iter().collect())
        })
    }

    async fn events(&self, f: &EventFilter, _account_key: Option<&str>) -> Result<EventPage> {
        self.with(|conn| {
            let mut sql = format!(
                "SELECT {EVENT_COLUMNS} FROM events e JOIN accounts a ON a.id = e.account
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
                    " AND json_extract(e.aux, '$.\"' || ?{} || '\"') = ?{}",
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
        self.with(|conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events e JOIN accounts a ON a.id = e.account
                     WHERE e.seq > ?1 ORDER BY e.seq LIMIT ?2"
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
        self.with(|conn| {
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
        self.with(|conn| {
            Ok(conn.execute(
                "DELETE FROM locks WHERE kind = ?1 AND key = ?2 AND holder = ?3",
                params![kind, key, holder],
            )? > 0)
        })
    }

    async fn state(&self, kind: &str, key: &str) -> Result<State> {
        self.with(|conn| {
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
        self.with(|conn| {
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
