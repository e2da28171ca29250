//! One-off runs (a tenant's function runs, the ticks of cron entries), from their record to
//! their bill. A run is recorded before its container exists, and its container is named after
//! it (`faas-<run id>`, e.g. `faas-run-3f2a…`): one container per run, ever, whatever crashes. A watcher follows it:
//! it stops the container at its timeout or when it is cancelled (both win over an exit seen at
//! the same moment), meters it while it runs, and at its end closes its usage, adds the run's
//! own price, prices it, records how it ended and what it cost, queues its report and removes
//! the container. A restarted daemon [`adopt`]s the runs still recorded as going: it starts
//! one that never started, and follows the others to their end (or records the end they met
//! while it was down).

pub mod cron;
pub mod function;
pub mod notify;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faas_spec::api::runs::Run;

use crate::Platform;
use crate::meter::now_us;
use crate::runtime::{InstanceState, RunSpec};
use crate::store::{InstanceRow, RunRow};

/// How often a watcher looks at its run.
const POLL: Duration = Duration::from_millis(100);
/// How often a running run is metered.
const METER_EVERY: Duration = Duration::from_millis(500);
/// How long a stopped run is given to end after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The runs this daemon follows.
#[derive(Default)]
pub struct Runner {
    watching: Mutex<HashSet<String>>,
    /// The runs of an earlier life were adopted: until then the scheduler waits (a run
    /// recorded as going may have ended).
    adopted: std::sync::atomic::AtomicBool,
}

impl Runner {
    pub fn adopted(&self) -> bool {
        self.adopted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The journal a run's output goes to: a cron run's environment's (it shows in
/// `faas service logs`), or the function runs' own.
pub fn log_place(run: &RunRow) -> (String, String) {
    match (&run.service, &run.env) {
        (Some(s), Some(e)) => (s.clone(), e.clone()),
        _ => ("_functions".into(), "runs".into()),
    }
}

/// A new run id.
pub fn new_id() -> String {
    format!("run-{}", crate::store::short_id())
}

/// The row the meter reads a run as (its subject: the run's id).
fn meter_row(run: &RunRow, container: &str) -> InstanceRow {
    let (service, env) = log_place(run);
    InstanceRow {
        id: run.id.clone(),
        service,
        env,
        release_id: run.release_id.clone().unwrap_or_else(|| "function".into()),
        container_name: run.container_name(),
        container_id: Some(container.to_owned()),
        host_port: None,
        state: run.state.clone(),
    }
}

/// Creates and starts a recorded run's container (an earlier one of the same run is adopted
/// instead), then follows it in the background. A run that cannot start is recorded as failed.
pub async fn launch(
    p: &Arc<Platform>,
    run: &RunRow,
    env: Vec<(String, String)>,
) -> Result<(), String> {
    let name = run.container_name();
    let spec = RunSpec {
        run_id: &run.id,
        tenant: &run.tenant,
        name: &name,
        image: &run.image,
        command: &run.command,
        env,
        cpu: run.cpu,
        memory: run.memory,
        platform_network: run.kind == "cron",
    };
    match p.runtime.start_run(&spec).await {
        Ok((container, state)) => {
            let _ = p
                .store
                .set_run_started(&run.id, state.started_at_us.unwrap_or_else(now_us));
            let (service, env) = log_place(run);
            p.logs.start(
                p.runtime.clone(),
                crate::logs::Source {
                    service,
                    env,
                    instance: run.id.clone(),
                    release: run.release_id.clone().unwrap_or_else(|| "function".into()),
                    container,
                },
            );
            watch(p, &run.id);
            Ok(())
        }
        Err(e) => {
            let why = format!("could not start: {e}");
            let _ = p.runtime.remove(&name).await;
            let _ = p
                .store
                .finish_run(&run.id, "failed", None, Some(&why), Some(now_us()));
            Err(why)
        }
    }
}

/// Follows a run to its end in the background (once per run).
pub fn watch(p: &Arc<Platform>, id: &str) {
    if !p
        .runs
        .watching
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id.to_owned())
    {
        return;
    }
    let (p, id) = (p.clone(), id.to_owned());
    tokio::spawn(async move {
        if let Err(e) = follow(&p, &id).await {
            tracing::warn!(run = %id, "stopped following the run: {e:#}");
        }
        p.runs
            .watching
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    });
}

/// How a run ended.
struct Ending {
    state: &'static str,
    exit_code: Option<i64>,
    reason: String,
}

/// Why a container that stopped by itself stopped.
fn ending_of(state: &InstanceState, memory: u64) -> Ending {
    let code = state.exit_code;
    if state.oom_killed {
        return Ending {
            state: "oom_killed",
            exit_code: code,
            reason: format!(
                "ran out of memory (its limit: {} MiB)",
                memory / (1024 * 1024)
            ),
        };
    }
    match code {
        Some(0) => Ending {
            state: "exited",
            exit_code: code,
            reason: "exited with code 0".into(),
        },
        Some(c) => Ending {
            state: "failed",
            exit_code: code,
            reason: format!("exited with code {c}"),
        },
        None => Ending {
            state: "lost",
            exit_code: None,
            reason: "its container vanished".into(),
        },
    }
}

async fn follow(p: &Arc<Platform>, id: &str) -> anyhow::Result<()> {
    let Some(run) = p.store.run(id)? else {
        return Ok(());
    };
    let container = run.container_name();
    let started_us = run.started_us.unwrap_or_else(now_us);
    let deadline_us = started_us + run.timeout_ms * 1000;
    // The meter reads it on a task of its own: a reading can take the engine a second, and
    // must not hold up a timeout or a cancel.
    let (stop_reading, mut stopped) = tokio::sync::watch::channel(false);
    let reader = {
        let (p, row, tenant) = (p.clone(), meter_row(&run, &container), run.tenant.clone());
        tokio::spawn(async move {
            while !*stopped.borrow() {
                p.meter.read_for(&p, &row, &tenant, true).await;
                tokio::select! {
                    _ = tokio::time::sleep(METER_EVERY) => {}
                    _ = stopped.changed() => {}
                }
            }
        })
    };
    let mut last_cpu: Option<(i64, u64)> = None;
    let ending = loop {
        let now = match p.store.run(id) {
            Ok(Some(now)) => now,
            _ => run.clone(),
        };
        if now.is_over() {
            break None;
        }
        // A cancel or the timeout wins over anything else seen at the same moment.
        if now.cancel {
            stop(p, &container).await;
            break Some(Ending {
                state: "cancelled",
                exit_code: None,
                reason: "cancelled".into(),
            });
        }
        if now_us() >= deadline_us {
            stop(p, &container).await;
            break Some(Ending {
                state: "timed_out",
                exit_code: None,
                reason: format!("timed out after {} ms", run.timeout_ms),
            });
        }
        let state = match p.runtime.state(&container).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(run = %id, "no state now ({e})");
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        if !state.exists || !state.running {
            break Some(ending_of(&state, run.memory));
        }
        // The kernel's own count, read at each look: the run's end is metered from the last.
        if let Some(cpu_ns) = p.runtime.cpu_now(&container).await {
            last_cpu = Some((now_us(), cpu_ns));
        }
        tokio::time::sleep(POLL).await;
    };
    let _ = stop_reading.send(true);
    let _ = reader.await;
    match ending {
        Some(ending) => end(p, &run, &container, ending, last_cpu).await,
        None => Ok(()),
    }
}

/// Stops a run's container (SIGTERM, then SIGKILL after a grace).
async fn stop(p: &Platform, container: &str) {
    if let Err(e) = p.runtime.stop(container, STOP_GRACE).await {
        tracing::warn!(container, "cannot stop the run's container: {e}");
    }
}

/// A run's end: its output read to the last line, its usage closed and its price added, the
/// ending recorded, then priced, its cost kept on it, its report queued, its container removed.
async fn end(
    p: &Arc<Platform>,
    run: &RunRow,
    container: &str,
    ending: Ending,
    last_cpu: Option<(i64, u64)>,
) -> anyhow::Result<()> {
    let state = p.runtime.state(container).await.unwrap_or_default();
    let finished_us = state.finished_at_us.unwrap_or_else(now_us);
    p.logs.finish(&run.id, Duration::from_secs(5)).await;
    let row = meter_row(run, container);
    let started_us = state
        .started_at_us
        .or(run.started_us)
        .unwrap_or(finished_us);
    p.meter
        .close_run(p, &row, &run.tenant, (started_us, finished_us), last_cpu)
        .await;
    p.store.finish_run(
        &run.id,
        ending.state,
        ending.exit_code,
        Some(&ending.reason),
        Some(finished_us),
    )?;
    tracing::info!(run = %run.id, state = ending.state, "{}", ending.reason);
    if let Err(e) = crate::meter::pricing::price_pending(p).await {
        tracing::warn!(run = %run.id, "cannot price the run now: {e:#}");
    }
    // Without any tariff nothing is priced: the report says so rather than wait for one.
    let (cost, currency) = cost_of(p, &run.id)?.unwrap_or((0, String::new()));
    p.store.set_run_cost(&run.id, cost, &currency)?;
    if let Err(e) = p.runtime.remove(container).await {
        tracing::warn!(run = %run.id, "cannot remove its container now: {e}");
    }
    notify::send_due(p).await;
    Ok(())
}

/// What a run's usage cost once priced: the sum of its records' pieces, in its tariff's
/// currency. None while any record waits for a tariff.
pub fn cost_of(p: &Platform, run: &str) -> anyhow::Result<Option<(i64, String)>> {
    let records = p.store.usage_of_instance(run)?;
    let mut total = 0i64;
    let mut tariff = None;
    for r in &records {
        let Some(priced) = &r.priced else {
            return Ok(None);
        };
        total += priced.pieces.iter().map(|piece| piece.cost).sum::<i64>();
        tariff = Some(priced.tariff.clone());
    }
    let currency = match tariff {
        Some(name) => p
            .store
            .tariff(&name)?
            .map(|t| t.currency)
            .unwrap_or_default(),
        None => return Ok(None),
    };
    Ok(Some((total, currency)))
}

/// Follows again the runs recorded as going (the daemon restarted): one that never got a
/// container is launched now, the others are followed to their end.
pub async fn adopt(p: &Arc<Platform>) {
    let active = match p.store.active_runs() {
        Ok(runs) => runs,
        Err(e) => {
            tracing::warn!("cannot read the runs to adopt: {e}");
            return;
        }
    };
    for run in active {
        let env = match environment_of(p, &run) {
            Ok(env) => env,
            Err(why) => {
                let _ = p
                    .store
                    .finish_run(&run.id, "failed", None, Some(&why), Some(now_us()));
                continue;
            }
        };
        tracing::info!(run = %run.id, "adopting the run after a restart");
        let _ = launch(p, &run, env).await;
    }
    p.runs
        .adopted
        .store(true, std::sync::atomic::Ordering::SeqCst);
}

/// The variables a run is started with.
pub fn environment_of(p: &Platform, run: &RunRow) -> Result<Vec<(String, String)>, String> {
    match run.kind.as_str() {
        "cron" => cron::environment_of(p, run),
        _ => function::environment_of(p, run),
    }
}

/// How the API shows a run.
pub fn view(run: &RunRow) -> Run {
    let iso = crate::store::rfc3339_ms;
    Run {
        id: run.id.clone(),
        kind: run.kind.clone(),
        tenant: run.tenant.clone(),
        service: run.service.clone(),
        env: run.env.clone(),
        entry: run.entry.clone(),
        tick: run.tick.clone(),
        image: run.image_ref.clone(),
        command: run.command.clone(),
        state: run.state.clone(),
        exit_code: run.exit_code,
        reason: run.reason.clone(),
        created_at: run.created_at.clone(),
        started_at: run.started_us.map(iso),
        finished_at: run.finished_us.map(iso),
        duration_ms: run
            .started_us
            .zip(run.finished_us)
            .map(|(s, f)| (f - s) / 1000),
        cost_nanos: run.cost,
        currency: run.currency.clone(),
        email: run.email.clone(),
        notified: run.notified.clone(),
    }
}
