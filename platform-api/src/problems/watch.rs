//! The engine's events, followed and persisted as they arrive, and what they make: an OOM kill
//! (the engine's `oom` event, the container's OOMKilled state at its death, or its cgroup's
//! `oom_kill` counter growing: a child process killed while PID 1 lives on), a crash loop
//! (deaths the platform did not ask for, [`CRASH_LOOP_DEATHS`] within [`CRASH_LOOP_SPAN`]).
//! The engine keeps its events in a short buffer it forgets on restart, so at start-up and
//! after every lost stream the state of each instance is read again and what it missed kept.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use crate::Platform;
use crate::meter::now_us;
use crate::runtime::{InstanceState, RuntimeEvent, RuntimeEventKind};
use crate::store::{EngineEvent, InstanceRow, Occurrence};

/// Deaths within [`CRASH_LOOP_SPAN`] that make a crash loop.
pub const CRASH_LOOP_DEATHS: usize = 3;
pub const CRASH_LOOP_SPAN: Duration = Duration::from_secs(120);
/// The last log lines kept with a problem.
pub const LOG_LINES: usize = 20;
/// How often the cgroups' OOM counters are read.
const OOM_POLL: Duration = Duration::from_secs(2);

/// What the watcher remembers between events.
#[derive(Default)]
struct Seen {
    /// Containers the platform asked to stop (a `kill` event), when.
    killed: HashMap<String, i64>,
    /// The OOM counter last read per container.
    oom_kills: HashMap<String, u64>,
    /// When an OOM kill of a container was last counted.
    last_oom: HashMap<String, i64>,
}

pub async fn follow(p: Arc<Platform>) {
    let mut seen = Seen::default();
    let mut poll = tokio::time::interval(OOM_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if !p.runtime.status().available {
            poll.tick().await;
            continue;
        }
        // Subscribe first, then read the state: nothing between the two is lost.
        let stream = match p.runtime.events() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("problems: cannot follow the engine's events: {e}");
                poll.tick().await;
                continue;
            }
        };
        catch_up(&p, &mut seen).await;
        let mut stream = std::pin::pin!(stream);
        loop {
            tokio::select! {
                next = stream.next() => match next {
                    Some(Ok(event)) => on_event(&p, &mut seen, event).await,
                    Some(Err(e)) => {
                        tracing::warn!("problems: the engine's event stream failed: {e}");
                        break;
                    }
                    None => break,
                },
                _ = poll.tick() => read_oom_counters(&p, &mut seen).await,
            }
        }
    }
}

fn instance_of(p: &Platform, id: &str, container: &str) -> Option<InstanceRow> {
    p.store.all_instances().ok()?.into_iter().find(|i| {
        i.id == id || i.container_id.as_deref() == Some(container) || i.container_name == container
    })
}

fn memory_limit(p: &Platform, row: &InstanceRow) -> Option<u64> {
    Some(
        p.store
            .release_manifest(&row.release_id)?
            .size
            .memory
            .bytes(),
    )
}

fn version(p: &Platform, row: &InstanceRow) -> String {
    p.store
        .release(&row.release_id)
        .ok()
        .flatten()
        .map_or_else(String::new, |r| format!(" (v{})", r.version))
}

async fn on_event(p: &Platform, seen: &mut Seen, event: RuntimeEvent) {
    match &event.kind {
        RuntimeEventKind::Other(action) if action == "kill" => {
            seen.killed.insert(event.id.clone(), event.at_ns / 1000);
        }
        RuntimeEventKind::Started | RuntimeEventKind::OomKilled | RuntimeEventKind::Died { .. } => {
            let Some(row) = instance_of(p, &event.instance, &event.id) else {
                return;
            };
            let at_us = event.at_ns / 1000;
            match event.kind {
                RuntimeEventKind::Started => {
                    keep(p, &row, &event.id, "start", None, false, at_us);
                }
                RuntimeEventKind::OomKilled => {
                    keep(p, &row, &event.id, "oom", None, true, at_us);
                    oom_killed(p, seen, &row, &event.id, at_us, "the engine reported it").await;
                }
                RuntimeEventKind::Died { exit_code } => {
                    let state = p.runtime.state(&event.id).await.unwrap_or_default();
                    died(p, seen, &row, &event.id, exit_code, &state, at_us).await;
                }
                RuntimeEventKind::Other(_) => {}
            }
        }
        RuntimeEventKind::Other(_) => {}
    }
}

fn keep(
    p: &Platform,
    row: &InstanceRow,
    container: &str,
    kind: &str,
    exit_code: Option<i64>,
    oom: bool,
    at_us: i64,
) -> bool {
    p.store
        .record_engine_event(&EngineEvent {
            instance: row.id.clone(),
            container: container.to_owned(),
            service: row.service.clone(),
            env: row.env.clone(),
            release_id: Some(row.release_id.clone()),
            kind: kind.to_owned(),
            exit_code,
            oom,
            at_us,
        })
        .unwrap_or(false)
}

/// Counts an OOM kill, unless one of this container was counted in the last few seconds (the
/// engine's event, its state and the cgroup's counter tell of the same kill).
async fn oom_killed(
    p: &Platform,
    seen: &mut Seen,
    row: &InstanceRow,
    container: &str,
    at_us: i64,
    how: &str,
) {
    if seen
        .last_oom
        .get(container)
        .is_some_and(|last| (at_us - last).abs() < 5_000_000)
    {
        return;
    }
    seen.last_oom.insert(container.to_owned(), at_us);
    let limit = memory_limit(p, row)
        .map(|l| format!(" at its memory limit of {}", super::bytes(l)))
        .unwrap_or_default();
    let summary = format!(
        "instance {}{} was killed by the kernel's OOM killer{limit} ({how}); raise size.memory or use less",
        row.id,
        version(p, row)
    );
    let logs = p.runtime.logs_tail(container, LOG_LINES).await;
    p.problems.occurred(
        &p.store,
        &Occurrence {
            service: &row.service,
            env: &row.env,
            kind: "oom-killed",
            subject: &row.id,
            release_id: Some(&row.release_id),
            summary: &summary,
            at_us,
            count: 1,
            logs: &logs,
        },
    );
}

async fn died(
    p: &Platform,
    seen: &mut Seen,
    row: &InstanceRow,
    container: &str,
    exit_code: Option<i64>,
    state: &InstanceState,
    at_us: i64,
) {
    let asked = seen
        .killed
        .remove(container)
        .is_some_and(|at| at_us - at < 120_000_000)
        || row.state == "draining"
        || instance_of(p, &row.id, container).is_none_or(|now| now.state == "draining");
    let kind = if asked { "stop" } else { "die" };
    if !keep(p, row, container, kind, exit_code, state.oom_killed, at_us) || asked {
        return;
    }
    if state.oom_killed {
        oom_killed(
            p,
            seen,
            row,
            container,
            at_us,
            "its container's OOMKilled state",
        )
        .await;
    }
    let since = at_us - CRASH_LOOP_SPAN.as_micros() as i64;
    let deaths = p
        .store
        .engine_events_since(&row.id, "die", since)
        .unwrap_or_default();
    if deaths.len() < CRASH_LOOP_DEATHS {
        return;
    }
    let code = exit_code.map_or_else(|| "unknown".to_owned(), |c| c.to_string());
    let summary = format!(
        "instance {}{} keeps dying: {} exits in the last {} s, the last with code {code}{}",
        row.id,
        version(p, row),
        deaths.len(),
        CRASH_LOOP_SPAN.as_secs(),
        if state.oom_killed {
            " (OOM killed)"
        } else {
            ""
        }
    );
    let logs = p.runtime.logs_tail(container, LOG_LINES).await;
    p.problems.occurred(
        &p.store,
        &Occurrence {
            service: &row.service,
            env: &row.env,
            kind: "crash-loop",
            subject: &row.id,
            release_id: Some(&row.release_id),
            summary: &summary,
            at_us,
            count: if deaths.len() == CRASH_LOOP_DEATHS {
                deaths.len() as i64
            } else {
                1
            },
            logs: &logs,
        },
    );
}

/// What happened while no one listened (the daemon or the engine was down): each instance's
/// last death and OOM kill, from its state, kept when the store does not have them yet.
async fn catch_up(p: &Platform, seen: &mut Seen) {
    for row in p.store.all_instances().unwrap_or_default() {
        let container = row.container().to_owned();
        let state = match p.runtime.state(&container).await {
            Ok(s) if s.exists => s,
            _ => continue,
        };
        if let Some(finished) = state.finished_at_us
            && state.exit_code.is_some()
            && row.state != "draining"
        {
            let known = p
                .store
                .engine_events_since(&row.id, "die", finished - 2_000_000)
                .unwrap_or_default();
            if known.is_empty() {
                died(p, seen, &row, &container, state.exit_code, &state, finished).await;
            }
        }
        if let Some(n) = p.runtime.oom_kills(&container).await {
            seen.oom_kills.insert(container, n);
        }
    }
}

/// An OOM counter that grew is a kill, even when the process killed was not the container's
/// first and the container lives on.
async fn read_oom_counters(p: &Platform, seen: &mut Seen) {
    for row in p.store.all_instances().unwrap_or_default() {
        let container = row.container().to_owned();
        let Some(n) = p.runtime.oom_kills(&container).await else {
            continue;
        };
        let before = seen.oom_kills.insert(container.clone(), n);
        if let Some(before) = before
            && n > before
        {
            let at_us = now_us();
            keep(p, &row, &container, "oom", None, true, at_us);
            oom_killed(p, seen, &row, &container, at_us, "its cgroup's OOM counter").await;
        }
    }
}
