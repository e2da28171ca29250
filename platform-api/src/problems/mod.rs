//! Problems, recorded when they happen: the engine's events (deaths, OOM kills) followed and
//! persisted by [`watch`], the router's figures, memory, deployments and runs judged every
//! second by [`derive`], the exceptions services log grouped by [`exceptions`]. Each problem
//! opens, counts its occurrences and ends when it clears; the store keeps them across restarts.

pub mod derive;
pub mod exceptions;
pub mod watch;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use faas_spec::api::observe::{ErrorGroup, ServiceProblem};
use tokio::sync::{broadcast, mpsc};

use crate::Platform;
use crate::store::{ErrorGroupRow, Occurrence, ProblemRow, Store, rfc3339_ms};

/// How long the router's figures are judged over, by default.
pub const WINDOW: Duration = Duration::from_secs(60);
/// The environment variable that sets it (`30s`, `2m`).
pub const WINDOW_VAR: &str = "FAAS_PLATFORM_PROBLEM_WINDOW";

/// A log line that may carry an exception, from an instance's capture.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub service: String,
    pub env: String,
    pub line: String,
}

pub struct Problems {
    changes: broadcast::Sender<String>,
    lines: mpsc::UnboundedSender<LogLine>,
    lines_rx: Mutex<Option<mpsc::UnboundedReceiver<LogLine>>>,
    /// The span the 5xx ratio and the p99 are judged over.
    pub window: Duration,
    /// The 5xx ratio above which a release has a problem.
    pub max_5xx: f64,
    /// Requests a window needs before its ratio or p99 is judged.
    pub min_requests: u64,
}

impl Default for Problems {
    fn default() -> Self {
        Self::new(WINDOW)
    }
}

impl Problems {
    pub fn new(window: Duration) -> Self {
        let (lines, rx) = mpsc::unbounded_channel();
        Self {
            changes: broadcast::channel(1024).0,
            lines,
            lines_rx: Mutex::new(Some(rx)),
            window,
            max_5xx: 0.05,
            min_requests: 10,
        }
    }

    /// With the window the environment sets, if it does.
    pub fn from_env() -> anyhow::Result<Self> {
        match std::env::var(WINDOW_VAR) {
            Ok(text) => {
                let window = humantime::parse_duration(text.trim()).map_err(|e| {
                    anyhow::anyhow!(
                        "{WINDOW_VAR}={text:?} is not a duration ({e}); use e.g. 30s or 2m"
                    )
                })?;
                if window < Duration::from_secs(1) {
                    anyhow::bail!("{WINDOW_VAR} must be at least 1s, not {text:?}");
                }
                Ok(Self::new(window))
            }
            Err(_) => Ok(Self::default()),
        }
    }

    /// Services whose problems, deployments or figures changed, as they change.
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.changes.subscribe()
    }

    pub fn notify(&self, service: &str) {
        let _ = self.changes.send(service.to_owned());
    }

    /// Where the log capture sends lines that may be exceptions.
    pub fn line_sender(&self) -> mpsc::UnboundedSender<LogLine> {
        self.lines.clone()
    }

    /// Records an occurrence and tells the watchers; returns whether the problem is new.
    pub fn occurred(&self, store: &Store, o: &Occurrence<'_>) -> bool {
        match store.problem_occurred(o) {
            Ok((id, new)) => {
                if new {
                    tracing::warn!(
                        service = o.service,
                        env = o.env,
                        kind = o.kind,
                        subject = o.subject,
                        id,
                        "problem: {}",
                        o.summary
                    );
                }
                self.notify(o.service);
                new
            }
            Err(e) => {
                tracing::warn!("cannot record a problem of {}: {e}", o.service);
                false
            }
        }
    }

    /// Ends the open problem of a kind and subject, if there is one.
    pub fn cleared(&self, store: &Store, row: &ProblemRow, at_us: i64) {
        if let Ok(true) = store.end_problem(&row.service, &row.env, &row.kind, &row.subject, at_us)
        {
            tracing::info!(service = %row.service, env = %row.env, kind = %row.kind, "problem cleared: {}", row.summary);
            self.notify(&row.service);
        }
    }
}

/// Follows the engine, judges the figures and groups exceptions until the daemon stops.
pub async fn run(p: Arc<Platform>) {
    let lines = p
        .problems
        .lines_rx
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    let mut stopping = p.stopping.subscribe();
    let work = async {
        tokio::join!(
            watch::follow(p.clone()),
            derive::run(p.clone()),
            exceptions::consume(p.clone(), lines),
        )
    };
    tokio::select! {
        _ = work => {}
        _ = stopping.changed() => {}
    }
}

/// A problem as the API shows it.
pub fn view(p: &Platform, row: &ProblemRow) -> ServiceProblem {
    let version = row
        .release_id
        .as_deref()
        .and_then(|id| p.store.release(id).ok().flatten())
        .map(|r| r.version);
    ServiceProblem {
        id: row.id,
        service: row.service.clone(),
        env: row.env.clone(),
        kind: row.kind.clone(),
        subject: row.subject.clone(),
        release: row.release_id.clone(),
        version,
        summary: row.summary.clone(),
        started_at: rfc3339_ms(row.started_us),
        last_seen: rfc3339_ms(row.last_us),
        ended_at: row.ended_us.map(rfc3339_ms),
        count: row.count.max(0) as u64,
        logs: row.logs.clone(),
    }
}

pub fn error_view(row: &ErrorGroupRow) -> ErrorGroup {
    ErrorGroup {
        service: row.service.clone(),
        env: row.env.clone(),
        error_type: row.error_type.clone(),
        location: row.location.clone(),
        function: row.function.clone(),
        message: row.message.clone(),
        count: row.count.max(0) as u64,
        first_seen: rfc3339_ms(row.first_us),
        last_seen: rfc3339_ms(row.last_us),
        traceback: row.traceback.clone(),
    }
}

/// Bytes in a human unit (MiB, GiB).
pub fn bytes(n: u64) -> String {
    const MI: f64 = 1024.0 * 1024.0;
    if n >= 1 << 30 {
        format!("{:.1} GiB", n as f64 / (MI * 1024.0))
    } else {
        format!("{:.0} MiB", n as f64 / MI)
    }
}
