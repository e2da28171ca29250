//! Traces: the router's spans, appended in batches (every 200 ms) as lines to
//! segment files in the data directory (`spans/`, 64 MiB each, 8 kept, none older than 7 days:
//! a span costs a line, not a database row); a trace is read back by scanning them, for the API,
//! the CLI and the dashboard, with only the hops of services the reader may see.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faas_spec::api::observe::{Trace, TraceSpan};

use crate::Platform;
use crate::auth::Principal;
use crate::meter::now_us;
use crate::router::spans::Span;

const KEEP_US: i64 = 7 * 86_400_000_000;
/// A segment file is closed at this size; at most [`SEGMENTS`] are kept.
const SEGMENT_BYTES: u64 = 64 << 20;
const SEGMENTS: usize = 8;

/// The spans' own files, opened at first use: one tab-separated line per span, appended.
#[derive(Default)]
pub struct Traces {
    writer: Mutex<Option<(std::path::PathBuf, std::io::BufWriter<std::fs::File>, u64)>>,
}

fn dir_of(p: &Platform) -> std::path::PathBuf {
    p.config.data_dir.join("spans")
}

/// The segment files, oldest first (named by their first span's time).
fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "spans"))
        .collect();
    files.sort();
    files
}

fn clean(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(['\t', '\n', '\r']) {
        s.replace(['\t', '\n', '\r'], " ").into()
    } else {
        s.into()
    }
}

fn line_of(s: &Span, out: &mut String) {
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
        s.trace_id,
        s.span_id,
        s.parent_id.as_deref().unwrap_or("-"),
        clean(&s.service),
        clean(&s.env),
        clean(&s.release),
        clean(&s.instance),
        s.caller
            .as_deref()
            .map_or(std::borrow::Cow::Borrowed("-"), clean),
        clean(&s.method),
        clean(&s.path),
        s.status,
        s.start_us,
        s.duration_us
    );
}

fn span_of(line: &str) -> Option<Span> {
    let f: Vec<&str> = line.split('\t').collect();
    if f.len() != 13 {
        return None;
    }
    let opt = |v: &str| (v != "-").then(|| v.to_owned());
    Some(Span {
        trace_id: f[0].to_owned(),
        span_id: f[1].to_owned(),
        parent_id: opt(f[2]),
        service: f[3].to_owned(),
        env: f[4].to_owned(),
        release: f[5].to_owned(),
        instance: f[6].to_owned(),
        caller: opt(f[7]),
        method: f[8].to_owned(),
        path: f[9].to_owned(),
        status: f[10].parse().ok()?,
        start_us: f[11].parse().ok()?,
        duration_us: f[12].parse().ok()?,
    })
}

impl Traces {
    fn add(&self, p: &Platform, spans: &[Span]) -> std::io::Result<()> {
        use std::io::Write as _;
        let mut text = String::with_capacity(spans.len() * 160);
        for s in spans {
            line_of(s, &mut text);
        }
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if writer
            .as_ref()
            .is_none_or(|(_, _, size)| *size >= SEGMENT_BYTES)
        {
            if let Some((_, mut w, _)) = writer.take() {
                w.flush()?;
            }
            let dir = dir_of(p);
            std::fs::create_dir_all(&dir)?;
            let path = dir.join(format!("{:020}.spans", now_us()));
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            *writer = Some((path, std::io::BufWriter::with_capacity(1 << 20, file), 0));
            let old = segments(&dir);
            for gone in old.iter().take(old.len().saturating_sub(SEGMENTS)) {
                let _ = std::fs::remove_file(gone);
            }
        }
        if let Some((_, w, size)) = writer.as_mut() {
            w.write_all(text.as_bytes())?;
            w.flush()?;
            *size += text.len() as u64;
        }
        Ok(())
    }

    /// Drops the segments whose newest span is older than 7 days.
    fn prune(&self, p: &Platform) {
        let current = self
            .writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(path, _, _)| path.clone());
        let cutoff = now_us() - KEEP_US;
        for path in segments(&dir_of(p)) {
            if Some(&path) == current.as_ref() {
                continue;
            }
            let old = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .is_some_and(|d| (d.as_micros() as i64) < cutoff);
            if old {
                let _ = std::fs::remove_file(&path);
            }
        }
    }

    /// A trace's spans, from every segment, in the order they started.
    fn trace(&self, p: &Platform, trace_id: &str) -> std::io::Result<Vec<Span>> {
        let mut out = Vec::new();
        for path in segments(&dir_of(p)) {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for line in text.lines().filter(|l| l.starts_with(trace_id)) {
                if let Some(s) = span_of(line)
                    && s.trace_id == trace_id
                {
                    out.push(s);
                }
            }
        }
        out.sort_by_key(|s| s.start_us);
        out.truncate(1000);
        Ok(out)
    }
}

pub async fn write(p: Arc<Platform>) {
    let mut flush = tokio::time::interval(Duration::from_millis(200));
    let mut prune = tokio::time::interval(Duration::from_secs(60));
    let mut stopping = p.stopping.subscribe();
    loop {
        tokio::select! {
            _ = flush.tick() => {
                let mut batch = p.router.spans.take();
                store(&p, &mut batch).await;
            }
            _ = prune.tick() => {
                let q = p.clone();
                let _ = tokio::task::spawn_blocking(move || q.traces.prune(&q)).await;
            }
            _ = stopping.changed() => break,
        }
    }
    let mut batch = p.router.spans.take();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_is_one_line_and_back() {
        let s = Span {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            span_id: "00f067aa0ba902b7".into(),
            parent_id: None,
            service: "web".into(),
            env: "prod".into(),
            release: "rel-1".into(),
            instance: "i1".into(),
            caller: Some("front/prod".into()),
            method: "GET".into(),
            path: "/a\tb".into(),
            status: 200,
            start_us: 5,
            duration_us: 7,
        };
        let mut line = String::new();
        line_of(&s, &mut line);
        assert_eq!(line.matches('\n').count(), 1);
        let back = span_of(line.trim_end()).unwrap();
        assert_eq!(back.path, "/a b");
        assert_eq!(
            Span {
                path: "/a b".into(),
                ..s
            },
            back
        );
    }
}
