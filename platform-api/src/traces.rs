//! Traces: the router's spans written to the store in batches (every 200 ms, or 4096 at a time)
//! and pruned by age and count every minute; a trace read back for the API, the CLI and the
//! dashboard, with only the hops of services the reader may see.

use std::sync::Arc;
use std::time::Duration;

use faas_spec::api::observe::{Trace, TraceSpan};

use crate::Platform;
use crate::auth::Principal;
use crate::meter::now_us;
use crate::router::spans::Span;

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
                        store(&p, &mut batch);
                    }
                }
                None => break,
            },
            _ = flush.tick() => store(&p, &mut batch),
            _ = prune.tick() => {
                let _ = p.store.prune_spans(now_us());
            }
        }
    }
    store(&p, &mut batch);
}

fn store(p: &Platform, batch: &mut Vec<Span>) {
    if batch.is_empty() {
        return;
    }
    if let Err(e) = p.store.add_spans(batch) {
        tracing::warn!("cannot keep {} spans: {e}", batch.len());
    }
    batch.clear();
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
        .store
        .trace(trace_id)?
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
