//! A service environment's log journal: NDJSON segments numbered by their first record's
//! sequence number, appended by one writer, bounded by size and age, read by queries and
//! followed through a broadcast channel.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use faas_spec::api::LogRecord;
use tokio::sync::broadcast;

/// What a capture hands the journal; the journal numbers it.
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub ts: String,
    pub instance: String,
    pub release: String,
    pub stream: &'static str,
    pub line: String,
}

struct Writer {
    next_seq: u64,
    file: BufWriter<File>,
    segment_bytes: u64,
}

pub struct Journal {
    dir: PathBuf,
    max_bytes: u64,
    max_age: Duration,
    segment_limit: u64,
    writer: Mutex<Writer>,
    live: broadcast::Sender<Arc<LogRecord>>,
}

fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:016}.ndjson")
}

/// Segments oldest first.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut list: Vec<PathBuf> = fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "ndjson"))
                .collect()
        })
        .unwrap_or_default();
    list.sort();
    list
}

/// The last complete record of a file, if any.
fn last_record(path: &Path) -> Option<LogRecord> {
    let mut f = File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let start = len.saturating_sub(256 * 1024);
    f.seek(SeekFrom::Start(start)).ok()?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail).ok()?;
    tail.split(|b| *b == b'\n')
        .rev()
        .find_map(|l| serde_json::from_slice(l).ok())
}

impl Journal {
    pub fn open(dir: &Path, max_bytes: u64, max_age: Duration) -> std::io::Result<Self> {
        fs::create_dir_all(dir)?;
        let existing = segments(dir);
        let next_seq = existing
            .iter()
            .rev()
            .find_map(|p| last_record(p))
            .map_or(1, |r| r.seq + 1);
        // A torn last line (a crash mid-write) is cut off, so the next record starts clean.
        if let Some(last) = existing.last() {
            truncate_torn_tail(last)?;
        }
        let path = match existing.last() {
            Some(p) => p.clone(),
            None => dir.join(segment_name(next_seq)),
        };
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let segment_bytes = file.metadata()?.len();
        let (live, _) = broadcast::channel(4096);
        Ok(Self {
            dir: dir.to_path_buf(),
            max_bytes,
            max_age,
            segment_limit: (max_bytes / 8).clamp(64 * 1024, 8 * 1024 * 1024),
            writer: Mutex::new(Writer {
                next_seq,
                file: BufWriter::with_capacity(256 * 1024, file),
                segment_bytes,
            }),
            live,
        })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LogRecord>> {
        self.live.subscribe()
    }

    /// Numbers, writes and publishes a batch. Written to the kernel before it returns, so a
    /// crash of the daemon loses nothing it acknowledged.
    pub fn append(&self, batch: Vec<NewRecord>) -> std::io::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut published = Vec::with_capacity(batch.len());
        for r in batch {
            let record = LogRecord {
                seq: w.next_seq,
                ts: r.ts,
                instance: r.instance,
                release: r.release,
                stream: r.stream.to_owned(),
                line: r.line,
            };
            let mut line = serde_json::to_vec(&record).map_err(std::io::Error::other)?;
            line.push(b'\n');
            w.file.write_all(&line)?;
            w.segment_bytes += line.len() as u64;
            w.next_seq += 1;
            published.push(Arc::new(record));
            if w.segment_bytes >= self.segment_limit {
                w.file.flush()?;
                let path = self.dir.join(segment_name(w.next_seq));
                let file = OpenOptions::new().create(true).append(true).open(path)?;
                w.file = BufWriter::with_capacity(256 * 1024, file);
                w.segment_bytes = 0;
                self.enforce_retention();
            }
        }
        w.file.flush()?;
        drop(w);
        for r in published {
            let _ = self.live.send(r);
        }
        Ok(())
    }

    /// Drops the oldest segments (never the one being written) while the journal is over its
    /// size, or they are older than its age limit.
    fn enforce_retention(&self) {
        let list = segments(&self.dir);
        let mut sizes: Vec<(PathBuf, u64, Option<SystemTime>)> = list
            .iter()
            .map(|p| {
                let meta = fs::metadata(p).ok();
                (
                    p.clone(),
                    meta.as_ref().map_or(0, |m| m.len()),
                    meta.and_then(|m| m.modified().ok()),
                )
            })
            .collect();
        let mut total: u64 = sizes.iter().map(|(_, s, _)| s).sum();
        let now = SystemTime::now();
        while sizes.len() > 1 {
            let (path, size, modified) = &sizes[0];
            let too_old = modified
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age > self.max_age);
            if total <= self.max_bytes && !too_old {
                break;
            }
            let _ = fs::remove_file(path);
            total = total.saturating_sub(*size);
            sizes.remove(0);
        }
    }

    /// Every record the journal holds, oldest segment first (filtered by `keep`).
    pub fn scan(&self, mut keep: impl FnMut(&LogRecord) -> bool) -> Vec<LogRecord> {
        let _ = self.writer.lock().map(|mut w| w.file.flush());
        let mut out = Vec::new();
        for path in segments(&self.dir) {
            let Ok(bytes) = fs::read(&path) else { continue };
            for line in bytes.split(|b| *b == b'\n') {
                if let Ok(r) = serde_json::from_slice::<LogRecord>(line)
                    && keep(&r)
                {
                    out.push(r);
                }
            }
        }
        out
    }

    /// The last `n` records that `keep` accepts, reading from the newest segment back.
    pub fn tail(&self, n: usize, mut keep: impl FnMut(&LogRecord) -> bool) -> Vec<LogRecord> {
        let _ = self.writer.lock().map(|mut w| w.file.flush());
        let mut out = Vec::new();
        for path in segments(&self.dir).into_iter().rev() {
            let Ok(bytes) = fs::read(&path) else { continue };
            for line in bytes.split(|b| *b == b'\n').rev() {
                if let Ok(r) = serde_json::from_slice::<LogRecord>(line)
                    && keep(&r)
                {
                    out.push(r);
                    if out.len() == n {
                        out.reverse();
                        return out;
                    }
                }
            }
        }
        out.reverse();
        out
    }

    /// Where to resume capturing an instance: its last line's time, and how many of its lines
    /// carry that very time (so a resumed capture skips exactly those).
    pub fn cursor(&self, instance: &str) -> Option<(String, usize)> {
        let _ = self.writer.lock().map(|mut w| w.file.flush());
        for path in segments(&self.dir).into_iter().rev() {
            let Ok(bytes) = fs::read(&path) else { continue };
            let needle = format!("\"instance\":\"{instance}\"");
            if !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                continue;
            }
            let mut found: Option<(String, usize)> = None;
            for line in bytes.split(|b| *b == b'\n').rev() {
                let Ok(r) = serde_json::from_slice::<LogRecord>(line) else {
                    continue;
                };
                if r.instance != instance || r.stream == "event" {
                    continue;
                }
                match &mut found {
                    None => found = Some((r.ts, 1)),
                    Some((ts, count)) if *ts == r.ts => *count += 1,
                    Some(_) => break,
                }
            }
            if found.is_some() {
                return found;
            }
        }
        None
    }

    pub fn bytes(&self) -> u64 {
        segments(&self.dir)
            .iter()
            .filter_map(|p| fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }
}

fn truncate_torn_tail(path: &Path) -> std::io::Result<()> {
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let start = len.saturating_sub(256 * 1024);
    f.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail)?;
    if tail.last() == Some(&b'\n') {
        return Ok(());
    }
    let keep = tail
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(start, |i| start + i as u64 + 1);
    f.set_len(keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: usize) -> NewRecord {
        NewRecord {
            ts: format!("2026-01-01T00:00:{:02}.000000000Z", i % 60),
            instance: "i1".into(),
            release: "r".into(),
            stream: "stdout",
            line: format!("line {i}"),
        }
    }

    #[test]
    fn sequence_numbers_continue_after_a_reopen_and_a_torn_line_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path(), 10_000_000, Duration::from_secs(3600)).unwrap();
        j.append((0..10).map(rec).collect()).unwrap();
        drop(j);
        let seg = segments(dir.path()).pop().unwrap();
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(b"{\"seq\":11,\"ts\":\"torn").unwrap();
        let j = Journal::open(dir.path(), 10_000_000, Duration::from_secs(3600)).unwrap();
        j.append(vec![rec(10)]).unwrap();
        let all = j.scan(|_| true);
        assert_eq!(all.len(), 11);
        assert_eq!(all.last().unwrap().seq, 11);
        assert_eq!(all.last().unwrap().line, "line 10");
    }

    #[test]
    fn retention_bounds_the_size() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path(), 200 * 1024, Duration::from_secs(3600)).unwrap();
        for chunk in 0..100 {
            j.append((0..100).map(|i| rec(chunk * 100 + i)).collect())
                .unwrap();
        }
        assert!(
            j.bytes() <= 200 * 1024 + 64 * 1024,
            "{} bytes kept",
            j.bytes()
        );
        let tail = j.tail(5, |_| true);
        assert_eq!(
            tail.last().unwrap().line,
            "line 9999",
            "the newest lines stay"
        );
    }

    #[test]
    fn the_cursor_counts_the_lines_at_the_last_time() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path(), 10_000_000, Duration::from_secs(3600)).unwrap();
        let same = |line: &str| NewRecord {
            ts: "2026-01-01T00:00:05.000000000Z".into(),
            instance: "i1".into(),
            release: "r".into(),
            stream: "stdout",
            line: line.into(),
        };
        j.append(vec![rec(1), same("a"), same("b"), same("c")])
            .unwrap();
        assert_eq!(
            j.cursor("i1"),
            Some(("2026-01-01T00:00:05.000000000Z".into(), 3))
        );
        assert_eq!(j.cursor("i2"), None);
    }
}
