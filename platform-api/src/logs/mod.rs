//! Logs that are never lost: every instance's output is captured as it runs into its
//! environment's journal, kept after the instance is gone (bounded by size and age), and
//! resumed after a daemon restart from the last line the journal holds, without duplicates.

pub mod journal;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;

use self::journal::{Journal, NewRecord};
use crate::runtime::{LogStream, Runtime};

/// Lines longer than this are split, never dropped.
pub const MAX_LINE: usize = 64 * 1024;

pub struct LogHub {
    root: PathBuf,
    max_bytes: u64,
    max_age: Duration,
    journals: Mutex<HashMap<(String, String), Arc<Journal>>>,
    captures: Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
    /// Where lines that may carry an exception go (the problems' grouping).
    tap: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<crate::problems::LogLine>>,
}

/// Which instance a capture follows.
#[derive(Debug, Clone)]
pub struct Source {
    pub service: String,
    pub env: String,
    pub instance: String,
    pub release: String,
    pub container: String,
}

pub fn now_ts() -> String {
    normalize_ts(&humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string())
}

/// RFC 3339 with exactly nine fractional digits, so that times compare as strings.
pub fn normalize_ts(ts: &str) -> String {
    let Some(body) = ts.strip_suffix('Z') else {
        return ts.to_owned();
    };
    let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
    let mut frac: String = frac.chars().take(9).collect();
    while frac.len() < 9 {
        frac.push('0');
    }
    format!("{whole}.{frac}Z")
}

/// Invalid UTF-8 becomes `\xNN`: binary output never breaks the stream.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Splits a line into pieces of at most `MAX_LINE` bytes, on character boundaries.
pub fn split_long(line: String) -> Vec<String> {
    if line.len() <= MAX_LINE {
        return vec![line];
    }
    let mut out = Vec::new();
    let mut rest = line.as_str();
    while rest.len() > MAX_LINE {
        let mut cut = MAX_LINE;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push(rest[..cut].to_owned());
        rest = &rest[cut..];
    }
    out.push(rest.to_owned());
    out
}

impl LogHub {
    pub fn new(root: PathBuf, max_bytes: u64, max_age: Duration) -> Self {
        Self {
            root,
            max_bytes,
            max_age,
            journals: Mutex::new(HashMap::new()),
            captures: Mutex::new(HashMap::new()),
            tap: Default::default(),
        }
    }

    pub fn journal(&self, service: &str, env: &str) -> std::io::Result<Arc<Journal>> {
        let key = (service.to_owned(), env.to_owned());
        let mut journals = self.journals.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(j) = journals.get(&key) {
            return Ok(j.clone());
        }
        let j = Arc::new(Journal::open(
            &self.root.join(service).join(env),
            self.max_bytes,
            self.max_age,
        )?);
        journals.insert(key, j.clone());
        Ok(j)
    }

    /// Forgets an environment's logs (the service or environment was deleted).
    pub fn remove(&self, service: &str, env: &str) {
        self.journals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(service.to_owned(), env.to_owned()));
        let _ = std::fs::remove_dir_all(self.root.join(service).join(env));
    }

    /// Sends every captured line that may carry an exception to `tx` from now on.
    pub fn tap(&self, tx: tokio::sync::mpsc::UnboundedSender<crate::problems::LogLine>) {
        let _ = self.tap.set(tx);
    }

    /// Starts following an instance's output (once per instance).
    pub fn start(self: &Arc<Self>, runtime: Arc<dyn Runtime>, source: Source) {
        let mut captures = self.captures.lock().unwrap_or_else(|p| p.into_inner());
        if captures
            .get(&source.instance)
            .is_some_and(|h| !h.is_finished())
        {
            return;
        }
        let hub = self.clone();
        let instance = source.instance.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = hub.capture(runtime, &source).await {
                tracing::warn!(instance = %source.instance, "log capture stopped: {e}");
            }
        });
        captures.insert(instance, task);
    }

    /// Waits (up to `timeout`) until an instance's capture has read its last line: call it
    /// after stopping the container and before removing it.
    pub async fn finish(&self, instance: &str, timeout: Duration) {
        let handle = self
            .captures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(instance);
        if let Some(mut handle) = handle
            && tokio::time::timeout(timeout, &mut handle).await.is_err()
        {
            handle.abort();
        }
    }

    async fn capture(&self, runtime: Arc<dyn Runtime>, s: &Source) -> anyhow::Result<()> {
        let journal = self.journal(&s.service, &s.env)?;
        let cursor = journal.cursor(&s.instance);
        let since = cursor
            .as_ref()
            .and_then(|(ts, _)| humantime::parse_rfc3339(ts).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64);
        let stream = runtime.follow_logs(&s.container, since)?;
        let mut stream = std::pin::pin!(stream);
        let mut seen_at_cursor = 0usize;
        let mut partial: [Option<(String, Vec<u8>)>; 2] = [None, None];
        let mut batch: Vec<NewRecord> = Vec::new();
        let mut batch_started = tokio::time::Instant::now();
        loop {
            let wait = if batch.is_empty() {
                Duration::from_secs(3600)
            } else {
                Duration::from_millis(10).saturating_sub(batch_started.elapsed())
            };
            let next = match tokio::time::timeout(wait, stream.next()).await {
                Ok(next) => next,
                Err(_) => {
                    journal.append(std::mem::take(&mut batch))?;
                    continue;
                }
            };
            let Some(item) = next else { break };
            let Ok(chunk) = item else { break };
            let (slot, stream_name) = match chunk.stream {
                LogStream::Stdout => (0, "stdout"),
                LogStream::Stderr => (1, "stderr"),
            };
            let ts = normalize_ts(&chunk.ts);
            let content = &chunk.bytes[..];
            let entry = partial[slot].get_or_insert_with(|| (ts.clone(), Vec::new()));
            entry.1.extend_from_slice(content);
            if !entry.1.ends_with(b"\n") {
                continue; // a long line the engine split: wait for its end
            }
            let Some((ts, mut bytes)) = partial[slot].take() else {
                continue;
            };
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
            // Resuming: skip what the journal already has.
            if let Some((cts, count)) = &cursor {
                if ts < *cts {
                    continue;
                }
                if ts == *cts {
                    seen_at_cursor += 1;
                    if seen_at_cursor <= *count {
                        continue;
                    }
                }
            }
            if batch.is_empty() {
                batch_started = tokio::time::Instant::now();
            }
            let text = escape(&bytes);
            if let Some(tap) = self.tap.get()
                && crate::problems::exceptions::may_carry(&text)
            {
                let _ = tap.send(crate::problems::LogLine {
                    service: s.service.clone(),
                    env: s.env.clone(),
                    line: text.clone(),
                });
            }
            for piece in split_long(text) {
                batch.push(NewRecord {
                    ts: ts.clone(),
                    instance: s.instance.clone(),
                    release: s.release.clone(),
                    stream: stream_name,
                    line: piece,
                });
            }
            if batch.len() >= 2048 || batch_started.elapsed() >= Duration::from_millis(10) {
                journal.append(std::mem::take(&mut batch))?;
            }
        }
        for (slot, name) in [(0, "stdout"), (1, "stderr")] {
            if let Some((ts, bytes)) = partial[slot].take()
                && !bytes.is_empty()
            {
                for piece in split_long(escape(&bytes)) {
                    batch.push(NewRecord {
                        ts: ts.clone(),
                        instance: s.instance.clone(),
                        release: s.release.clone(),
                        stream: name,
                        line: piece,
                    });
                }
            }
        }
        let state = runtime.state(&s.container).await.unwrap_or_default();
        let how = match state.exit_code {
            Some(code) if !state.running => format!(" (exit code {code})"),
            _ => String::new(),
        };
        batch.push(NewRecord {
            ts: now_ts(),
            instance: s.instance.clone(),
            release: s.release.clone(),
            stream: "event",
            line: format!("instance {} stopped{how}", s.instance),
        });
        journal.append(batch)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_normalise_to_nine_digits() {
        assert_eq!(
            normalize_ts("2026-11-23T17:00:00.1234Z"),
            "2026-11-23T17:00:00.123400000Z"
        );
        assert_eq!(
            normalize_ts("2026-11-23T17:00:00Z"),
            "2026-11-23T17:00:00.000000000Z"
        );
    }

    #[test]
    fn binary_is_escaped_and_long_lines_split() {
        assert_eq!(escape(b"ok \xff\xfe end"), "ok \\xff\\xfe end");
        let long = "é".repeat(MAX_LINE);
        let parts = split_long(long.clone());
        assert!(parts.iter().all(|p| p.len() <= MAX_LINE));
        assert_eq!(parts.concat(), long);
    }
}
