//! Problems judged every second from what the platform measures: each release's 5xx ratio and
//! p99 over the window (from the router's counters), each instance's memory against its limit,
//! each environment's newest deployment, the runs that finished. A condition opens a problem
//! while it holds and ends it when it no longer does.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Platform;
use crate::meter::now_us;
use crate::router::metrics::Snapshot;
use crate::store::{Occurrence, ProblemRow};

type Key = (String, String, String);

/// Memory at or above this share of the limit is a problem; it clears below [`MEMORY_CLEAR`].
pub const MEMORY_NEAR: f64 = 0.9;
const MEMORY_CLEAR: f64 = 0.85;
/// An OOM kill or crash loop with no new occurrence for this long has cleared.
pub const QUIET: Duration = Duration::from_secs(600);
const RUNS_CURSOR: &str = "problems.runs_cursor";

struct Judge {
    /// Router snapshots over the window, oldest first.
    ring: VecDeque<(Instant, HashMap<Key, Snapshot>)>,
    started: Instant,
    /// Each release's p99 limit (its canary's `max_p99`) and version, read once.
    max_p99: HashMap<String, Option<Duration>>,
    versions: HashMap<String, String>,
    runs_after: i64,
}

pub async fn run(p: Arc<Platform>) {
    let mut judge = Judge {
        ring: VecDeque::new(),
        started: Instant::now(),
        max_p99: HashMap::new(),
        versions: HashMap::new(),
        runs_after: p
            .store
            .meta(RUNS_CURSOR)
            .ok()
            .flatten()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(now_us),
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        judge.router(&p);
        judge.memory(&p);
        if n.is_multiple_of(5) {
            judge.deployments(&p);
            judge.runs(&p);
            judge.quiet(&p);
        }
        if n.is_multiple_of(3600) {
            let _ = p.store.prune_engine_events(now_us() - 7 * 86_400_000_000);
        }
        n += 1;
    }
}

fn open_by_subject(p: &Platform, kind: &str) -> HashMap<(String, String, String), ProblemRow> {
    p.store
        .open_problems(kind)
        .unwrap_or_default()
        .into_iter()
        .map(|r| ((r.service.clone(), r.env.clone(), r.subject.clone()), r))
        .collect()
}

impl Judge {
    fn router(&mut self, p: &Platform) {
        let now = Instant::now();
        let current: HashMap<Key, Snapshot> = p.router.metrics.snapshot_all().into_iter().collect();
        let window = p.problems.window;
        while self.ring.len() > 1 && now.duration_since(self.ring[1].0) >= window {
            self.ring.pop_front();
        }
        let previous = self.ring.back().map(|(_, s)| s.clone()).unwrap_or_default();
        let baseline = self
            .ring
            .front()
            .map(|(_, s)| s.clone())
            .unwrap_or_default();
        self.ring.push_back((now, current.clone()));
        // Until a whole window was seen (after a restart), nothing is judged as cleared.
        let full = now.duration_since(self.started) >= window;
        let mut high = open_by_subject(p, "high-5xx");
        let mut slow = open_by_subject(p, "slow-p99");
        let at_us = now_us();
        let zero = Snapshot::default();
        for ((service, env, release), snap) in &current {
            let in_window = snap.since(
                baseline
                    .get(&(service.clone(), env.clone(), release.clone()))
                    .unwrap_or(&zero),
            );
            let new_errors = snap
                .since(
                    previous
                        .get(&(service.clone(), env.clone(), release.clone()))
                        .unwrap_or(&zero),
                )
                .errors_5xx;
            let subject = (service.clone(), env.clone(), release.clone());
            let version = self
                .versions
                .entry(release.clone())
                .or_insert_with(|| {
                    p.store
                        .release(release)
                        .ok()
                        .flatten()
                        .map_or_else(|| release.clone(), |r| format!("v{}", r.version))
                })
                .clone();
            let judged = in_window.requests >= p.problems.min_requests;
            let ratio = in_window.error_rate();
            let was_open = high.remove(&subject);
            if judged && ratio >= p.problems.max_5xx {
                let summary = format!(
                    "{version} answered 5xx to {:.0} % of {} requests over the last {} s (more than {:.0} %)",
                    ratio * 100.0,
                    in_window.requests,
                    window.as_secs(),
                    p.problems.max_5xx * 100.0
                );
                p.problems.occurred(
                    &p.store,
                    &Occurrence {
                        service,
                        env,
                        kind: "high-5xx",
                        subject: release,
                        release_id: Some(release),
                        summary: &summary,
                        at_us,
                        count: if was_open.is_some() {
                            new_errors as i64
                        } else {
                            in_window.errors_5xx as i64
                        },
                        logs: &[],
                    },
                );
            } else if let Some(row) = was_open
                && full
                && (in_window.errors_5xx == 0 || (judged && ratio < p.problems.max_5xx / 2.0))
            {
                p.problems.cleared(&p.store, &row, at_us);
            }
            let limit = *self.max_p99.entry(release.clone()).or_insert_with(|| {
                p.store
                    .release_manifest(release)
                    .map(|m| m.deploy.canary.max_p99.as_std())
            });
            let was_slow = slow.remove(&subject);
            let p99 = in_window.quantile(0.99);
            match (limit, p99) {
                (Some(limit), Some(p99)) if judged && p99 > limit => {
                    let summary = format!(
                        "{version}'s p99 is {} ms over the last {} s ({} requests), above its {} ms",
                        p99.as_millis(),
                        window.as_secs(),
                        in_window.requests,
                        limit.as_millis()
                    );
                    p.problems.occurred(
                        &p.store,
                        &Occurrence {
                            service,
                            env,
                            kind: "slow-p99",
                            subject: release,
                            release_id: Some(release),
                            summary: &summary,
                            at_us,
                            count: 0,
                            logs: &[],
                        },
                    );
                }
                _ => {
                    if let Some(row) = was_slow
                        && full
                        && (in_window.requests == 0 || judged)
                    {
                        p.problems.cleared(&p.store, &row, at_us);
                    }
                }
            }
        }
        // Releases the router no longer counts (a restart forgot them): nothing fails there.
        if full {
            for row in high.values().chain(slow.values()) {
                p.problems.cleared(&p.store, row, at_us);
            }
        }
    }

    fn memory(&mut self, p: &Platform) {
        let mut open = open_by_subject(p, "memory-near-limit");
        let at_us = now_us();
        let instances = p.store.all_instances().unwrap_or_default();
        for (instance, reading) in p.series.latest() {
            let Some(row) = instances.iter().find(|i| i.id == instance) else {
                continue;
            };
            let Some(limit) = reading.memory_limit.filter(|l| *l > 0) else {
                continue;
            };
            let share = reading.memory_bytes as f64 / limit as f64;
            let subject = (row.service.clone(), row.env.clone(), row.id.clone());
            let was_open = open.remove(&subject);
            if share >= MEMORY_NEAR {
                let summary = format!(
                    "instance {} uses {} of its {} memory ({:.0} %)",
                    row.id,
                    super::bytes(reading.memory_bytes),
                    super::bytes(limit),
                    share * 100.0
                );
                p.problems.occurred(
                    &p.store,
                    &Occurrence {
                        service: &row.service,
                        env: &row.env,
                        kind: "memory-near-limit",
                        subject: &row.id,
                        release_id: Some(&row.release_id),
                        summary: &summary,
                        at_us,
                        count: 0,
                        logs: &[],
                    },
                );
            } else if let Some(row) = was_open
                && share < MEMORY_CLEAR
            {
                p.problems.cleared(&p.store, &row, at_us);
            }
        }
        // Instances that are gone.
        for row in open.values() {
            if !instances.iter().any(|i| i.id == row.subject) {
                p.problems.cleared(&p.store, row, at_us);
            }
        }
    }

    fn deployments(&mut self, p: &Platform) {
        let open = p.store.open_problems("deploy-failed").unwrap_or_default();
        let at_us = now_us();
        for d in p.store.latest_deployments().unwrap_or_default() {
            match d.state.as_str() {
                "failed" | "rolled_back" => {
                    let version = p
                        .store
                        .release(&d.release_id)
                        .ok()
                        .flatten()
                        .map_or(0, |r| r.version);
                    let what = if d.state == "failed" {
                        "failed"
                    } else {
                        "was rolled back"
                    };
                    let summary = format!(
                        "deployment {} of v{version} {what}: {}",
                        d.id,
                        d.reason.as_deref().unwrap_or("no reason recorded")
                    );
                    let known = open.iter().any(|r| r.subject == d.id)
                        || p.store
                            .problems(&d.service, Some(&d.env), 0, 50)
                            .unwrap_or_default()
                            .iter()
                            .any(|r| r.kind == "deploy-failed" && r.subject == d.id);
                    if !known {
                        p.problems.occurred(
                            &p.store,
                            &Occurrence {
                                service: &d.service,
                                env: &d.env,
                                kind: "deploy-failed",
                                subject: &d.id,
                                release_id: Some(&d.release_id),
                                summary: &summary,
                                at_us,
                                count: 1,
                                logs: &[],
                            },
                        );
                    }
                }
                "succeeded" => {
                    for row in open
                        .iter()
                        .filter(|r| r.service == d.service && r.env == d.env)
                    {
                        p.problems.cleared(&p.store, row, at_us);
                    }
                }
                _ => {}
            }
        }
    }

    fn runs(&mut self, p: &Platform) {
        let runs = p
            .store
            .runs_finished_after(self.runs_after)
            .unwrap_or_default();
        let open = p.store.open_problems("run-failed").unwrap_or_default();
        for run in &runs {
            let subject = match (&run.kind[..], &run.entry) {
                ("cron", Some(entry)) => format!("cron {entry}"),
                (kind, _) => format!("{kind} runs"),
            };
            if run.state == "succeeded" {
                if let Some(row) = open
                    .iter()
                    .find(|r| r.service == run.service && r.env == run.env && r.subject == subject)
                {
                    p.problems.cleared(&p.store, row, run.finished_us);
                }
            } else if run.state != "cancelled" {
                let why = match (run.exit_code, &run.reason) {
                    (_, Some(reason)) => reason.clone(),
                    (Some(code), None) => format!("exit code {code}"),
                    (None, None) => run.state.clone(),
                };
                let summary = format!("{subject}: run {} ended {}: {why}", run.id, run.state);
                p.problems.occurred(
                    &p.store,
                    &Occurrence {
                        service: &run.service,
                        env: &run.env,
                        kind: "run-failed",
                        subject: &subject,
                        release_id: run.release_id.as_deref(),
                        summary: &summary,
                        at_us: run.finished_us,
                        count: 1,
                        logs: &[],
                    },
                );
            }
            self.runs_after = self.runs_after.max(run.finished_us);
        }
        if !runs.is_empty() {
            let _ = p.store.set_meta(RUNS_CURSOR, &self.runs_after.to_string());
        }
    }

    /// OOM kills and crash loops end when their instance is gone or quiet for [`QUIET`].
    fn quiet(&mut self, p: &Platform) {
        let at_us = now_us();
        let instances = p.store.all_instances().unwrap_or_default();
        for kind in ["oom-killed", "crash-loop", "exception"] {
            for row in p.store.open_problems(kind).unwrap_or_default() {
                let gone = kind != "exception" && !instances.iter().any(|i| i.id == row.subject);
                if gone || at_us - row.last_us > QUIET.as_micros() as i64 {
                    p.problems.cleared(&p.store, &row, at_us);
                }
            }
        }
    }
}
