//! Traces: the router's spans, written in batches (every 200 ms, or 4096 at a time) to their own
//! SQLite file in the data directory (`spans.db`: no fsync per batch, one index, apart from the
//! platform's store), pruned every minute to 7 days and a million spans; read back for the API,
//! the CLI and the dashboard with only the hops of services the reader may see.

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use faas_spec::api::observe::{Trace, TraceSpan};
use rusqlite::{Connection, params};

use crate::Platform;
use crate::auth::Principal;
use crate::meter::now_us;
use crate::router::spans::Span;

const KEEP_US: i64 = 7 * 86_400_000_000;
const KEEP_ROWS: i64 = 1_000_000;

/// The spans' own database, opened at first use.
#[derive(Default)]
pub struct Traces {
    db: OnceLock<Option<Mutex<Connection>>>,
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let c = Connection::open(path)?;
    c.busy_timeout(Duration::from_secs(5))?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    // Spans are advice: a crash may lose the last batch, never the platform's state.
    c.pragma_update(None, "synchronous", "OFF")?;
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS spans (
            trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_id TEXT,
            service TEXT NOT NULL, env TEXT NOT NULL, release_id TEXT NOT NULL, instance TEXT NOT NULL,
            caller TEXT, method TEXT NOT NULL, path TEXT NOT NULL, status INTEGER NOT NULL,
            start_us INTEGER NOT NULL, duration_us INTEGER NOT NULL
        );
        CREATE INDEX IF NOT EXISTS spans_by_trace ON spans (trace_id);",
    )?;
    Ok(c)
}

impl Traces {
    fn db(&self, p: &Platform) -> Option<std::sync::MutexGuard<'_, Connection>> {
        self.db
            .get_or_init(|| {
                let path = p.config.data_dir.join("spans.db");
                match open(&path) {
                    Ok(c) => Some(Mutex::new(c)),
                    Err(e) => {
                        tracing::warn!("cannot open {}: {e}; traces are not kept", path.display());
                        None
                    }
                }
            })
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn add(&self, p: &Platform, spans: &[Span]) -> rusqlite::Result<()> {
        let Some(mut c) = self.db(p) else {
            return Ok(());
        };
        let tx = c.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO spans VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?;
            for s in spans {
                stmt.execute(params![
                    s.trace_id,
                    s.span_id,
                    s.parent_id,
                    s.service,
                    s.env,
                    s.release,
                    s.instance,
                    s.caller,
                    s.method,
                    s.path,
                    s.status,
                    s.start_us,
                    s.duration_us
                ])?;
            }
        }
        tx.commit()
    }

    fn prune(&self, p: &Platform) -> rusqlite::Result<usize> {
        let Some(c) = self.db(p) else { return Ok(0) };
        // Rows go in in time order: the oldest are the lowest rowids.
        let mut n = c.execute(
            "DELETE FROM spans WHERE rowid <= (SELECT MAX(rowid) FROM spans) - ?1",
            [KEEP_ROWS],
        )?;
        loop {
            let gone = c.execute(
                "DELETE FROM spans WHERE rowid IN (SELECT rowid FROM spans ORDER BY rowid LIMIT 10000) AND start_us < ?1",
                [now_us() - KEEP_US],
            )?;
            n += gone;
            if gone < 10_000 {
                return Ok(n);
            }
        }
    }

    fn trace(&self, p: &Platform, trace_id: &str) -> rusqlite::Result<Vec<Span>> {
        let Some(c) = self.db(p) else {
            return Ok(Vec::new());
        };
        let mut stmt = c.prepare_cached(
            "SELECT trace_id, span_id, parent_id, service, env, release_id, instance, caller, method, path, status, start_us, duration_us
             FROM spans WHERE trace_id = ?1 ORDER BY start_us, rowid LIMIT 1000",
        )?;
        let rows = stmt.query_map([trace_id], |r| {
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
        })?;
        rows.collect()
    }
}

pub async fn write(p: Arc<Platform>) {
    let Some(mut rx) = p.router.spans.take_receiver() else {
        return;
    };
    let mut batch: Vec<Span> = Vec::new();
    let mut flush = tokio::time::interval(Duration::from_millis(200));
    let mut prune = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            got = rx.recv() => match got {
                Some(span) => {
                    batch.push(span);
                    if batch.len() >= 4096 {
                        store(&p, &mut batch).await;
                    }
                }
                None => break,
            },
            _ = flush.tick() => store(&p, &mut batch).await,
            _ = prune.tick() => {
                let q = p.clone();
                let _ = tokio::task::spawn_blocking(move || q.traces.prune(&q)).await;
            }
        }
    }
    store(&p, &mut batch).await;
}

/// Writes a batch off the async threads.
async fn store(p: &Arc<Platform>, batch: &mut Vec<Span>) {
    if batch.is_empty() {
        return;
    }
    let spans = std::mem::take(batch);
    let q = p.clone();
    let n = spans.len();
    match tokio::task::spawn_blocking(move || q.traces.add(&q, &spans)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("cannot keep {n} spans: {e}"),
        Err(e) => tracing::warn!("cannot keep {n} spans: {e}"),
    }
}

/// The hops of a trace that `who` may see; None when there are none.
pub fn read(p: &Platform, who: &Principal, trace_id: &str) -> anyhow::Result<Option<Trace>> {
    let owners: std::collections::HashMap<String, String> = p
        .store
        .services(None)?
        .into_iter()
        .map(|s| (s.name, s.owner))
        .collect();
    let spans: Vec<Span> = p
        .traces
        .trace(p, trace_id)?
        .into_iter()
        .filter(|s| owners.get(&s.service).is_some_and(|o| who.can_see(o)))
        .collect();
    let Some(first) = spans.iter().map(|s| s.start_us).min() else {
        return Ok(None);
    };
    let end = spans
        .iter()
        .map(|s| s.start_us + s.duration_us)
        .max()
        .unwrap_or(first);
    let ms = |us: i64| (us as f64 / 10.0).round() / 100.0;
    Ok(Some(Trace {
        trace_id: trace_id.to_owned(),
        duration_ms: ms(end - first),
        spans: spans
            .iter()
            .map(|s| TraceSpan {
                span_id: s.span_id.clone(),
                parent_id: s.parent_id.clone(),
                service: s.service.clone(),
                env: s.env.clone(),
                version: p
                    .store
                    .release(&s.release)
                    .ok()
                    .flatten()
                    .map(|r| r.version),
                instance: s.instance.clone(),
                caller: s.caller.clone(),
                method: s.method.clone(),
                path: s.path.clone(),
                status: s.status,
                start: crate::store::rfc3339_ms(s.start_us),
                offset_ms: ms(s.start_us - first),
                duration_ms: ms(s.duration_us),
            })
            .collect(),
    }))
}
