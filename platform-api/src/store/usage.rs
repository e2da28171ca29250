//! Usage records: what the meter measured, one record per instance, resource and interval,
//! each under a key derived from what it measures, with the meter's last reading of every
//! instance (its cursor) moved in the same transaction: a restarted meter takes up where the
//! last committed reading left off, and never writes an interval twice. Records outlive the
//! services they measured (a deleted service's usage is still billed).

use rusqlite::{OptionalExtension, params};

use super::{Migration, Result, Store};

pub(super) const MIGRATIONS: &[Migration] = &[Migration {
    version: 6,
    sql: r#"
    CREATE TABLE meter_cursors (
        subject TEXT PRIMARY KEY,
        container TEXT NOT NULL,
        at_us INTEGER NOT NULL,
        cpu_ns INTEGER NOT NULL,
        memory_bytes INTEGER NOT NULL,
        requests INTEGER NOT NULL,
        finished INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE usage_records (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        tenant TEXT NOT NULL,
        service TEXT NOT NULL,
        env TEXT NOT NULL,
        release_id TEXT NOT NULL,
        instance TEXT NOT NULL,
        resource TEXT NOT NULL,
        from_us INTEGER NOT NULL,
        to_us INTEGER NOT NULL,
        quantity INTEGER NOT NULL,
        tariff TEXT,
        generation INTEGER NOT NULL DEFAULT 0,
        priced TEXT
    );
    CREATE INDEX usage_unpriced ON usage_records (id) WHERE priced IS NULL;
    CREATE INDEX usage_by_tariff ON usage_records (tariff, to_us) WHERE priced IS NOT NULL;
    "#,
}];

/// The meter's last committed reading of one subject: an instance's counters, or a release's
/// request counter in the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub subject: String,
    /// The container the reading is of: a new container under the same subject starts anew.
    pub container: String,
    pub at_us: i64,
    pub cpu_ns: u64,
    pub memory_bytes: u64,
    pub requests: u64,
    /// The container finished at `at_us` and its usage is closed there: nothing more to read.
    pub finished: bool,
}

/// One measured quantity of one resource over `[from_us, to_us)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    /// 0 until stored.
    pub id: i64,
    pub key: String,
    pub tenant: String,
    pub service: String,
    pub env: String,
    pub release: String,
    pub instance: String,
    pub resource: String,
    pub from_us: i64,
    pub to_us: i64,
    /// In the resource's base unit (CPU nanoseconds, byte-milliseconds, microseconds run,
    /// requests).
    pub quantity: i64,
    /// How it was priced (None: not yet): the tariff, the re-pricing round and the pieces.
    pub priced: Option<Priced>,
}

impl UsageRecord {
    /// A record of ada@example.com's `api` in prod, for tests.
    #[cfg(test)]
    pub fn example(key: &str, resource: &str, from_us: i64, to_us: i64, quantity: i64) -> Self {
        UsageRecord {
            id: 0,
            key: key.into(),
            tenant: "ada@example.com".into(),
            service: "api".into(),
            env: "prod".into(),
            release: "r1".into(),
            instance: "i1".into(),
            resource: resource.into(),
            from_us,
            to_us,
            quantity,
            priced: None,
        }
    }
}

/// What a record was charged: the tariff, how many times it was priced again after a
/// back-dated change (0: never), and one piece per tariff version in force over it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priced {
    pub tariff: String,
    pub generation: u32,
    pub pieces: Vec<Piece>,
}

/// The part of a record priced at one tariff version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub version: u32,
    pub from_us: i64,
    /// In millionths of the resource's priced unit (vCPU-s, GiB-s, instance-s, request).
    pub quantity_micros: i64,
    /// Nano-units of the tariff's currency.
    pub cost: i64,
}

impl Piece {
    fn encode(pieces: &[Piece]) -> String {
        pieces
            .iter()
            .map(|p| {
                format!(
                    "{}:{}:{}:{}",
                    p.version, p.from_us, p.quantity_micros, p.cost
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    fn decode(text: &str) -> Vec<Piece> {
        text.split(',')
            .filter_map(|p| {
                let mut it = p.split(':').map(|n| n.parse::<i64>().ok());
                Some(Piece {
                    version: u32::try_from(it.next()??).ok()?,
                    from_us: it.next()??,
                    quantity_micros: it.next()??,
                    cost: it.next()??,
                })
            })
            .collect()
    }
}

const RECORD_COLUMNS: &str = "id, key, tenant, service, env, release_id, instance, resource, from_us, to_us, quantity, tariff, generation, priced";

fn record_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<UsageRecord> {
    let tariff: Option<String> = r.get(11)?;
    let priced: Option<String> = r.get(13)?;
    Ok(UsageRecord {
        id: r.get(0)?,
        key: r.get(1)?,
        tenant: r.get(2)?,
        service: r.get(3)?,
        env: r.get(4)?,
        release: r.get(5)?,
        instance: r.get(6)?,
        resource: r.get(7)?,
        from_us: r.get(8)?,
        to_us: r.get(9)?,
        quantity: r.get(10)?,
        priced: match (tariff, priced) {
            (Some(tariff), Some(p)) => Some(Priced {
                tariff,
                generation: r.get(12)?,
                pieces: Piece::decode(&p),
            }),
            _ => None,
        },
    })
}

fn cursor_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<Cursor> {
    Ok(Cursor {
        subject: r.get(0)?,
        container: r.get(1)?,
        at_us: r.get(2)?,
        cpu_ns: r.get::<_, i64>(3)? as u64,
        memory_bytes: r.get::<_, i64>(4)? as u64,
        requests: r.get::<_, i64>(5)? as u64,
        finished: r.get(6)?,
    })
}

/// How far pricing has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub pending: u64,
    pub through: Option<i64>,
}

/// What one round of the meter commits: records, cursors moved, cursors closed.
#[derive(Debug, Default)]
pub struct MeterRound {
    pub records: Vec<UsageRecord>,
    pub cursors: Vec<Cursor>,
    /// Subjects to forget: their container is gone, nothing more will be read of them.
    pub forget: Vec<String>,
}

impl Store {
    pub fn meter_cursors(&self) -> Result<Vec<Cursor>> {
        self.all(
            "SELECT subject, container, at_us, cpu_ns, memory_bytes, requests, finished FROM meter_cursors",
            [],
            cursor_from,
        )
    }

    /// The cursor of one subject.
    pub fn meter_cursor(&self, subject: &str) -> Result<Option<Cursor>> {
        self.one(
            "SELECT subject, container, at_us, cpu_ns, memory_bytes, requests, finished
             FROM meter_cursors WHERE subject = ?1",
            [subject],
            cursor_from,
        )
    }

    /// Commits a round at once: a record already stored (same key) is left as it is, so that
    /// the same round committed again changes nothing. Returns how many records were new.
    pub fn commit_meter_round(&self, round: &MeterRound) -> Result<usize> {
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            let mut new = 0;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO usage_records (key, tenant, service, env, release_id, instance,
                       resource, from_us, to_us, quantity)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                     ON CONFLICT (key) DO NOTHING",
                )?;
                for r in &round.records {
                    new += insert.execute(params![
                        r.key, r.tenant, r.service, r.env, r.release, r.instance, r.resource,
                        r.from_us, r.to_us, r.quantity
                    ])?;
                }
                let mut upsert = tx.prepare_cached(
                    "INSERT INTO meter_cursors (subject, container, at_us, cpu_ns, memory_bytes, requests, finished)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (subject) DO UPDATE SET container = ?2, at_us = ?3, cpu_ns = ?4,
                       memory_bytes = ?5, requests = ?6, finished = ?7",
                )?;
                for k in &round.cursors {
                    upsert.execute(params![
                        k.subject,
                        k.container,
                        k.at_us,
                        k.cpu_ns as i64,
                        k.memory_bytes as i64,
                        k.requests as i64,
                        k.finished
                    ])?;
                }
                // How far usage is measured: kept, so that no question scans the records.
                if let Some(through) = round.records.iter().map(|r| r.to_us).max() {
                    tx.execute(
                        "INSERT INTO meta (key, value) VALUES ('usage_through', ?1)
                         ON CONFLICT (key) DO UPDATE SET value = max(CAST(value AS INTEGER), CAST(?1 AS INTEGER))",
                        [through.to_string()],
                    )?;
                }
                let mut close = tx.prepare_cached("DELETE FROM meter_cursors WHERE subject = ?1")?;
                for s in &round.forget {
                    close.execute([s])?;
                }
            }
            tx.commit()?;
            Ok(new)
        })
    }

    /// Records not priced yet after id `after`, oldest first.
    pub fn unpriced_usage(&self, after: i64, limit: usize) -> Result<Vec<UsageRecord>> {
        self.all(
            &format!(
                "SELECT {RECORD_COLUMNS} FROM usage_records WHERE priced IS NULL AND id > ?1
                 ORDER BY id LIMIT ?2"
            ),
            params![after, limit as i64],
            record_from,
        )
    }

    /// Priced records of a tariff that end after `from_us`, after id `after`: what a version
    /// taking effect at `from_us` may price anew.
    pub fn priced_usage_since(
        &self,
        tariff: &str,
        from_us: i64,
        after: i64,
        limit: usize,
    ) -> Result<Vec<UsageRecord>> {
        self.all(
            &format!(
                "SELECT {RECORD_COLUMNS} FROM usage_records
                 WHERE tariff = ?1 AND to_us > ?2 AND priced IS NOT NULL AND id > ?3
                 ORDER BY id LIMIT ?4"
            ),
            params![tariff, from_us, after, limit as i64],
            record_from,
        )
    }

    /// Stores how records were priced, all at once.
    pub fn set_priced(&self, priced: &[(i64, Priced)]) -> Result<()> {
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            {
                let mut update = tx.prepare_cached(
                    "UPDATE usage_records SET tariff = ?2, generation = ?3, priced = ?4 WHERE id = ?1",
                )?;
                for (id, p) in priced {
                    update.execute(params![id, p.tariff, p.generation, Piece::encode(&p.pieces)])?;
                }
            }
            tx.commit()
        })
    }

    /// How many records wait to be priced, and the instant charges are complete through: the
    /// start of the oldest record not priced yet, else the end of the newest.
    pub fn usage_progress(&self) -> Result<Progress> {
        self.with(|c| {
            let (pending, oldest): (i64, Option<i64>) = c.query_row(
                "SELECT count(*), min(from_us) FROM usage_records WHERE priced IS NULL",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let newest: Option<i64> = c
                .query_row(
                    "SELECT value FROM meta WHERE key = 'usage_through'",
                    [],
                    |r| r.get::<_, String>(0),
                )
                .optional()?
                .and_then(|v| v.parse().ok());
            Ok(Progress {
                pending: pending as u64,
                through: oldest.or(newest),
            })
        })
    }

    /// The records of an instance (oldest first), for tests and `faas service status`.
    pub fn usage_of_instance(&self, instance: &str) -> Result<Vec<UsageRecord>> {
        self.all(
            &format!(
                "SELECT {RECORD_COLUMNS} FROM usage_records WHERE instance = ?1 ORDER BY from_us, id"
            ),
            [instance],
            record_from,
        )
    }

    /// The highest row id of tariff versions: a new version (maybe back-dated) raises it.
    pub fn tariff_versions_seen(&self) -> Result<i64> {
        self.with(|c| {
            c.query_row(
                "SELECT coalesce(max(rowid), 0) FROM tariff_versions",
                [],
                |r| r.get(0),
            )
        })
    }

    /// Tariff versions added after row id `after`: (row id, tariff, effective from).
    pub fn tariff_versions_after(&self, after: i64) -> Result<Vec<(i64, String, i64)>> {
        self.all(
            "SELECT rowid, tariff, effective_from FROM tariff_versions WHERE rowid > ?1 ORDER BY rowid",
            [after],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, from: i64) -> UsageRecord {
        UsageRecord::example(key, "vcpu", from, from + 1_000_000, 5)
    }

    #[test]
    fn a_round_committed_twice_stores_its_records_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("p.db")).unwrap();
        let round = MeterRound {
            records: vec![record("a", 0), record("b", 1_000_000)],
            cursors: vec![Cursor {
                subject: "i1".into(),
                container: "c1".into(),
                at_us: 2_000_000,
                cpu_ns: 9,
                memory_bytes: 10,
                requests: 0,
                finished: false,
            }],
            forget: vec![],
        };
        assert_eq!(s.commit_meter_round(&round).unwrap(), 2);
        assert_eq!(s.commit_meter_round(&round).unwrap(), 0);
        assert_eq!(s.unpriced_usage(0, 10).unwrap().len(), 2);
        assert_eq!(s.meter_cursors().unwrap(), round.cursors);
        let priced = Priced {
            tariff: "standard".into(),
            generation: 1,
            pieces: vec![Piece {
                version: 2,
                from_us: 0,
                quantity_micros: 7,
                cost: -3,
            }],
        };
        let id = s.unpriced_usage(0, 1).unwrap()[0].id;
        s.set_priced(&[(id, priced.clone())]).unwrap();
        assert_eq!(s.unpriced_usage(0, 10).unwrap().len(), 1);
        let again = s.priced_usage_since("standard", 0, 0, 10).unwrap();
        assert_eq!(again[0].priced.as_ref(), Some(&priced));
        s.commit_meter_round(&MeterRound {
            forget: vec!["i1".into()],
            ..Default::default()
        })
        .unwrap();
        assert!(s.meter_cursors().unwrap().is_empty());
        assert_eq!(
            s.usage_progress().unwrap(),
            Progress {
                pending: 1,
                through: Some(1_000_000)
            }
        );
    }
}
