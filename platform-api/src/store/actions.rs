//! The action registry: one row per beating worker of a tenant's action, written by its
//! heartbeats. The platform never registers an action; an action is available while one of
//! its workers beats.

use rusqlite::params;

use super::{Migration, Result, Store};

pub(super) const MIGRATIONS: &[Migration] = &[Migration {
    version: 10,
    sql: r#"
    CREATE TABLE action_workers (
        tenant TEXT NOT NULL,
        action TEXT NOT NULL,
        worker TEXT NOT NULL,
        version TEXT NOT NULL,
        input_schema TEXT NOT NULL,
        output_schema TEXT NOT NULL,
        transport TEXT NOT NULL,
        address TEXT NOT NULL,
        interval_ms INTEGER NOT NULL,
        first_beat_us INTEGER NOT NULL,
        last_beat_us INTEGER NOT NULL,
        PRIMARY KEY (tenant, action, worker)
    );
    CREATE INDEX action_workers_by_address ON action_workers (transport, address);
    "#,
}];

/// One worker's last heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerRow {
    pub tenant: String,
    pub action: String,
    pub worker: String,
    pub version: String,
    pub input_schema: serde_json::Value,
    pub output_schema: serde_json::Value,
    pub transport: String,
    pub address: String,
    pub interval_ms: i64,
    pub first_beat_us: i64,
    pub last_beat_us: i64,
}

/// A worker counts as gone after this many intervals without a beat.
pub const MISSED_BEATS: i64 = 3;

impl WorkerRow {
    /// The moment (µs) after which it counts as gone.
    pub fn gone_after_us(&self) -> i64 {
        self.last_beat_us + MISSED_BEATS * self.interval_ms * 1000
    }

    pub fn alive_at(&self, now_us: i64) -> bool {
        now_us <= self.gone_after_us()
    }
}

const COLUMNS: &str = "tenant, action, worker, version, input_schema, output_schema, transport, \
    address, interval_ms, first_beat_us, last_beat_us";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<WorkerRow> {
    let input: String = r.get(4)?;
    let output: String = r.get(5)?;
    Ok(WorkerRow {
        tenant: r.get(0)?,
        action: r.get(1)?,
        worker: r.get(2)?,
        version: r.get(3)?,
        input_schema: serde_json::from_str(&input).unwrap_or_default(),
        output_schema: serde_json::from_str(&output).unwrap_or_default(),
        transport: r.get(6)?,
        address: r.get(7)?,
        interval_ms: r.get(8)?,
        first_beat_us: r.get(9)?,
        last_beat_us: r.get(10)?,
    })
}

impl Store {
    /// Records a beat (the worker's first, or the next).
    pub fn beat(&self, w: &WorkerRow) -> Result<()> {
        self.with(|c| {
            c.prepare_cached(&format!(
                "INSERT INTO action_workers ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)
                 ON CONFLICT (tenant, action, worker) DO UPDATE SET version = ?4, input_schema = ?5,
                   output_schema = ?6, transport = ?7, address = ?8, interval_ms = ?9, last_beat_us = ?10,
                   first_beat_us = CASE WHEN last_beat_us + 3 * interval_ms * 1000 < ?10 THEN ?10 ELSE first_beat_us END"
            ))?
            .execute(params![
                w.tenant,
                w.action,
                w.worker,
                w.version,
                w.input_schema.to_string(),
                w.output_schema.to_string(),
                w.transport,
                w.address,
                w.interval_ms,
                w.last_beat_us
            ])
            .map(drop)
        })
    }

    /// The workers of a tenant's actions (every tenant's with None), by action and worker.
    pub fn workers(&self, tenant: Option<&str>) -> Result<Vec<WorkerRow>> {
        self.all(
            &format!(
                "SELECT {COLUMNS} FROM action_workers WHERE (?1 IS NULL OR tenant = ?1) ORDER BY tenant, action, worker"
            ),
            params![tenant],
            row,
        )
    }

    /// The workers of one action.
    pub fn workers_of(&self, tenant: &str, action: &str) -> Result<Vec<WorkerRow>> {
        self.all(
            &format!(
                "SELECT {COLUMNS} FROM action_workers WHERE tenant = ?1 AND action = ?2 ORDER BY worker"
            ),
            params![tenant, action],
            row,
        )
    }

    pub fn worker(&self, tenant: &str, action: &str, worker: &str) -> Result<Option<WorkerRow>> {
        self.one(
            &format!(
                "SELECT {COLUMNS} FROM action_workers WHERE tenant = ?1 AND action = ?2 AND worker = ?3"
            ),
            params![tenant, action, worker],
            row,
        )
    }

    /// Another action (of this tenant or another) that uses the same queue or URL.
    pub fn other_owner(
        &self,
        transport: &str,
        address: &str,
        tenant: &str,
        action: &str,
    ) -> Result<Option<(String, String)>> {
        self.one(
            "SELECT tenant, action FROM action_workers WHERE transport = ?1 AND address = ?2
               AND NOT (tenant = ?3 AND action = ?4) LIMIT 1",
            params![transport, address, tenant, action],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }
}
