//! The router's spans: one row per hop, kept 7 days and at most a million rows (the oldest go
//! first), written in batches.

use rusqlite::params;

use super::{Migration, Result, Store};
use crate::router::spans::Span;

pub(super) const MIGRATIONS: &[Migration] = &[Migration {
    version: 12,
    sql: r#"
    CREATE TABLE spans (
        trace_id TEXT NOT NULL,
        span_id TEXT NOT NULL,
        parent_id TEXT,
        service TEXT NOT NULL,
        env TEXT NOT NULL,
        release_id TEXT NOT NULL,
        instance TEXT NOT NULL,
        caller TEXT,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        status INTEGER NOT NULL,
        start_us INTEGER NOT NULL,
        duration_us INTEGER NOT NULL
    );
    CREATE INDEX spans_by_trace ON spans (trace_id);
    CREATE INDEX spans_by_time ON spans (start_us);
    "#,
}];

const KEEP_US: i64 = 7 * 86_400_000_000;
const KEEP_ROWS: i64 = 1_000_000;

impl Store {
    pub fn add_spans(&self, spans: &[Span]) -> Result<()> {
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO spans (trace_id, span_id, parent_id, service, env, release_id, instance, caller, method, path, status, start_us, duration_us)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                )?;
                for s in spans {
                    stmt.execute(params![
                        s.trace_id, s.span_id, s.parent_id, s.service, s.env, s.release, s.instance,
                        s.caller, s.method, s.path, s.status, s.start_us, s.duration_us
                    ])?;
                }
            }
            tx.commit()
        })
    }

    /// A trace's spans, in the order they started.
    pub fn trace(&self, trace_id: &str) -> Result<Vec<Span>> {
        self.all(
            "SELECT trace_id, span_id, parent_id, service, env, release_id, instance, caller, method, path, status, start_us, duration_us
             FROM spans WHERE trace_id = ?1 ORDER BY start_us, rowid LIMIT 1000",
            [trace_id],
            |r| {
                Ok(Span {
                    trace_id: r.get(0)?,
                    span_id: r.get(1)?,
                    parent_id: r.get(2)?,
                    service: r.get(3)?,
                    env: r.get(4)?,
                    release: r.get(5)?,
                    instance: r.get(6)?,
                    caller: r.get(7)?,
                    method: r.get(8)?,
                    path: r.get(9)?,
                    status: r.get(10)?,
                    start_us: r.get(11)?,
                    duration_us: r.get(12)?,
                })
            },
        )
    }

    /// Drops spans older than 7 days, and the oldest beyond a million.
    pub fn prune_spans(&self, now_us: i64) -> Result<usize> {
        self.with(|c| {
            let mut n = c.execute("DELETE FROM spans WHERE start_us < ?1", [now_us - KEEP_US])?;
            n += c.execute(
                "DELETE FROM spans WHERE rowid <= (SELECT MAX(rowid) FROM spans) - ?1",
                [KEEP_ROWS],
            )?;
            Ok(n)
        })
    }
}
