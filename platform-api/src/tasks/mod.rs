//! Task chains: durable runs of task definitions over actions that register themselves by
//! heartbeat ([`registry`]). One driver moves every run: a step becomes ready when the steps
//! before it have succeeded; its attempt is recorded (launch id, idempotency key, input,
//! deadline) before it is sent over its transport ([`amqp`], [`http`] or [`inprocess`]); its
//! result counts only if that attempt is still the step's current one, and is stored before the
//! next step is looked at. A sweeper wakes the driver for what time decides: backoffs that
//! are over, deadlines that passed, workers that stopped beating, actions that came back. A
//! restarted daemon sends again the attempts nobody had taken and goes on where each run was.

pub mod amqp;
pub mod check;
pub mod http;
pub mod inprocess;
pub mod launcher;
pub mod registry;
pub mod view;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use faas_spec::api::tasks::{Launch, Transport};
use faas_spec::task::{StepDefinition, StepKind, TaskDefinition, resolve};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::Platform;
use crate::meter::now_us;
use crate::store::{Attempt, AttemptEnd, StepRow, TaskRunRow, WorkerRow};

/// How often the sweeper looks for what time decides.
const SWEEP: Duration = Duration::from_millis(200);

/// What an attempt came to: an output, or why it failed.
pub type Outcome = Result<Value, String>;

/// The task engine's shared state.
pub struct Engine {
    kicks: mpsc::UnboundedSender<String>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<String>>>,
    queued: Mutex<HashSet<String>>,
    definitions: Mutex<HashMap<String, Arc<TaskDefinition>>>,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
    key: OnceLock<Vec<u8>>,
    pub broker: amqp::Broker,
    pub inprocess: inprocess::Registry,
    pub client: reqwest::Client,
}

impl Engine {
    /// `amqp_url`: the RabbitMQ launches go through (None: the rabbitmq transport is off).
    pub fn new(amqp_url: Option<String>) -> Self {
        let (kicks, receiver) = mpsc::unbounded_channel();
        Self {
            kicks,
            receiver: Mutex::new(Some(receiver)),
            queued: Mutex::default(),
            definitions: Mutex::default(),
            validators: Mutex::default(),
            key: OnceLock::new(),
            broker: amqp::Broker::new(amqp_url),
            inprocess: inprocess::Registry::with_builtins(),
            client: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
        }
    }

    /// Asks the driver to look at a run (once, however many ask before it does).
    pub fn kick(&self, run: &str) {
        if lock(&self.queued).insert(run.to_owned()) {
            let _ = self.kicks.send(run.to_owned());
        }
    }

    /// The parsed definition of a run.
    pub fn definition(&self, run: &TaskRunRow) -> Result<Arc<TaskDefinition>, String> {
        if let Some(d) = lock(&self.definitions).get(&run.id) {
            return Ok(d.clone());
        }
        let parsed = Arc::new(
            TaskDefinition::parse(&run.file, &run.definition).map_err(|r| r.render(false))?,
        );
        lock(&self.definitions).insert(run.id.clone(), parsed.clone());
        Ok(parsed)
    }

    fn forget(&self, run: &str) {
        lock(&self.definitions).remove(run);
    }

    /// A compiled JSON Schema (kept: the same schemas come again and again).
    pub fn validator(&self, schema: &Value) -> Result<Arc<jsonschema::Validator>, String> {
        let text = schema.to_string();
        if let Some(v) = lock(&self.validators).get(&text) {
            return Ok(v.clone());
        }
        let v = Arc::new(jsonschema::validator_for(schema).map_err(|e| e.to_string())?);
        let mut all = lock(&self.validators);
        if all.len() > 1024 {
            all.clear();
        }
        all.insert(text, v.clone());
        Ok(v)
    }

    /// The token a launch's results must carry: an HMAC of its id under this platform's key.
    pub fn token(&self, p: &Platform, launch: &str) -> String {
        let key = self.key.get_or_init(|| {
            let existing = p.store.meta("tasks_key").ok().flatten();
            let text = existing.unwrap_or_else(|| {
                use rand::Rng;
                let fresh = hex::encode(rand::rng().random::<[u8; 32]>());
                let _ = p.store.set_meta("tasks_key", &fresh);
                // Another writer may have won: read what is stored.
                p.store.meta("tasks_key").ok().flatten().unwrap_or(fresh)
            });
            hex::decode(text).unwrap_or_default()
        });
        // HMAC takes a key of any length: this never fails.
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
            return String::new();
        };
        mac.update(launch.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every error of an instance against a schema, as `path: message` lines.
pub fn schema_errors(
    validator: &jsonschema::Validator,
    instance: &Value,
    skip: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    validator
        .iter_errors(instance)
        .filter(|e| !skip(&e.instance_path().to_string()))
        .map(|e| {
            let at = e.instance_path().to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("{at}: {e}")
            }
        })
        .collect()
}

/// The driver: sends again what a crash left unsent, then moves each run it is asked to and
/// each the sweeper finds due.
pub async fn run(p: Arc<Platform>) {
    let Some(mut kicks) = lock(&p.tasks.receiver).take() else {
        return;
    };
    if p.tasks.broker.configured() {
        tokio::spawn(amqp::consume_results(p.clone()));
    }
    recover(&p).await;
    let mut sweep = tokio::time::interval(SWEEP);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            Some(run) = kicks.recv() => {
                lock(&p.tasks.queued).remove(&run);
                if let Err(e) = advance(&p, &run).await {
                    tracing::warn!(run = %run, "task run: {e:#}");
                }
            }
            _ = sweep.tick() => match p.store.task_runs_due(now_us()) {
                Ok(due) => due.iter().for_each(|r| p.tasks.kick(r)),
                Err(e) => tracing::warn!("task sweeper: {e}"),
            },
        }
    }
}

/// After a restart: attempts recorded as launched were maybe never sent (or lost with an
/// in-process action): send them again, under the same launch id; then look at every run.
async fn recover(p: &Arc<Platform>) {
    for step in p.store.launched_steps().unwrap_or_default() {
        let Ok(Some(run)) = p.store.task_run(&step.run) else {
            continue;
        };
        let Ok(def) = p.tasks.definition(&run) else {
            continue;
        };
        let Some(sdef) = def.steps.get(step.idx as usize) else {
            continue;
        };
        tracing::info!(
            launch = step.launch.as_deref().unwrap_or(""),
            "sending again a launch a restart interrupted"
        );
        let workers = workers_for(p, &run, sdef).unwrap_or_default();
        send(p, &run, sdef, &step, &workers).await;
    }
    for run in p.store.active_task_runs().unwrap_or_default() {
        p.tasks.kick(&run);
    }
}

/// Moves one run as far as it can go now.
async fn advance(p: &Arc<Platform>, id: &str) -> anyhow::Result<()> {
    let Some(run) = p.store.task_run(id)? else {
        return Ok(());
    };
    if run.is_over() {
        p.tasks.forget(id);
        return Ok(());
    }
    let now = now_us();
    if run.cancel {
        return end(
            p,
            &run,
            "cancelled",
            None,
            Some("cancelled by request".into()),
            "cancelled",
        );
    }
    if now >= run.deadline_us {
        return end(
            p,
            &run,
            "failed",
            None,
            Some("the task's timeout passed".into()),
            "cancelled",
        );
    }
    if run.state == "pending" {
        // Its launcher starts it; one that ended without doing so leaves it failed.
        let launcher = match &run.parent {
            Some(parent) => p.store.task_run(parent)?,
            None => None,
        };
        if launcher.is_none_or(|l| l.is_over()) {
            let why = "its launcher ended without starting it";
            return end(p, &run, "failed", None, Some(why.into()), "cancelled");
        }
        return Ok(());
    }
    let def = match p.tasks.definition(&run) {
        Ok(d) => d,
        Err(e) => return end(p, &run, "failed", None, Some(e), "cancelled"),
    };
    let steps = p.store.steps_of(id)?;
    let Some(step) = steps.iter().find(|s| s.state != "succeeded") else {
        let output = steps.last().and_then(|s| s.output.clone());
        return end(p, &run, "succeeded", output, None, "succeeded");
    };
    let Some(sdef) = def.steps.get(step.idx as usize) else {
        return end(
            p,
            &run,
            "failed",
            None,
            Some("the definition lost a step".into()),
            "cancelled",
        );
    };
    match step.state.as_str() {
        "failed" => {
            let why = step.error.clone().unwrap_or_default();
            end(
                p,
                &run,
                "failed",
                None,
                Some(format!("step `{}` failed: {why}", step.name)),
                "cancelled",
            )
        }
        "cancelled" => end(p, &run, "cancelled", None, None, "cancelled"),
        "waiting" => {
            p.store.make_ready(id, step.idx, now)?;
            p.tasks.kick(id);
            Ok(())
        }
        "ready" => launch_step(p, &run, sdef, &steps, step, now).await,
        _ => check_timers(p, &run, sdef, step, now).await,
    }
}

fn end(
    p: &Platform,
    run: &TaskRunRow,
    state: &str,
    output: Option<Value>,
    error: Option<String>,
    step_state: &str,
) -> anyhow::Result<()> {
    if p.store.end_task_run(
        &run.id,
        state,
        output.as_ref(),
        error.as_deref(),
        step_state,
    )? {
        tracing::info!(run = %run.id, task = %run.task, state, "task run ended");
    }
    p.tasks.forget(&run.id);
    Ok(())
}

/// The idempotency key of a step's attempts: from its hint when it has one (the same for any
/// run with the same value), else the run and the step.
fn idempotency_key(
    run: &TaskRunRow,
    sdef: &StepDefinition,
    outputs: &dyn Fn(&str) -> Option<Value>,
) -> Result<String, String> {
    match &sdef.idempotency {
        None => Ok(format!("{}.{}", run.id, sdef.name)),
        Some(hint) => {
            let value = resolve(hint, &run.input, outputs).map_err(|e| e.0)?;
            let what = match &sdef.kind {
                StepKind::Action { name, .. } => name.as_str(),
                StepKind::Http(call) => call.url.as_str(),
                StepKind::Approval { .. } => "approval",
            };
            let digest = Sha256::digest(format!("{}\n{what}\n{value}", run.tenant).as_bytes());
            Ok(format!("idem-{}", hex::encode(&digest[..16])))
        }
    }
}

/// A ready step: its next attempt is recorded, then sent. An action with no live worker is
/// waited for, up to the step's timeout.
async fn launch_step(
    p: &Arc<Platform>,
    run: &TaskRunRow,
    sdef: &StepDefinition,
    steps: &[StepRow],
    step: &StepRow,
    now: i64,
) -> anyhow::Result<()> {
    if step.until_us.is_some_and(|due| due > now) {
        return Ok(());
    }
    let outputs = |name: &str| {
        steps
            .iter()
            .find(|s| s.name == name && s.state == "succeeded")
            .and_then(|s| s.output.clone())
    };
    let fail = |why: String| -> anyhow::Result<()> {
        p.store.fail_ready_step(&run.id, step.idx, &why)?;
        p.tasks.kick(&run.id);
        Ok(())
    };
    let input = match resolve(&sdef.input, &run.input, &outputs) {
        Ok(v) => v,
        Err(e) => return fail(format!("its input cannot be mapped: {e}")),
    };
    let key = match idempotency_key(run, sdef, &outputs) {
        Ok(k) => k,
        Err(e) => return fail(format!("its idempotency hint cannot be mapped: {e}")),
    };
    let attempt = step.attempt + 1;
    let launch = format!("{}.{}.{attempt}", run.id, step.name);
    let timeout_us = sdef.timeout.as_std().as_micros() as i64;
    let until = now + timeout_us;
    let workers = workers_for(p, run, sdef)?;
    let attempt_row = Attempt {
        run: &run.id,
        idx: step.idx,
        attempt,
        launch: &launch,
        key: &key,
        input: &input,
        worker: None,
        state: "launched",
        until_us: until,
    };
    match &sdef.kind {
        StepKind::Approval { .. } => {
            p.store.record_launch(&Attempt {
                state: "approval",
                ..attempt_row
            })?;
            return Ok(());
        }
        StepKind::Http(_) => {}
        StepKind::Action { name, .. } if p.tasks.inprocess.get(name).is_some() => {}
        StepKind::Action { name, .. } => {
            let Some(current) = registry::current(&workers, now) else {
                let waited = now - step.ready_us.unwrap_or(now);
                if waited >= timeout_us {
                    return fail(format!(
                        "action `{name}` stayed unavailable (no worker beating) for the step's timeout, {}",
                        humantime::format_duration(sdef.timeout.as_std())
                    ));
                }
                return Ok(());
            };
            let validator = p
                .tasks
                .validator(&current.input_schema)
                .map_err(anyhow::Error::msg)?;
            let errors = schema_errors(&validator, &input, &|_| false);
            if !errors.is_empty() {
                return fail(format!(
                    "its input does not fit action `{name}`'s input schema: {}",
                    errors.join("; ")
                ));
            }
        }
    }
    let worker = registry::pick_http_worker(&workers, &launch, now);
    if !p.store.record_launch(&Attempt {
        worker: worker.as_deref(),
        ..attempt_row
    })? {
        return Ok(());
    }
    // What was recorded, without reading it back.
    let recorded = StepRow {
        attempt,
        launch: Some(launch.clone()),
        key: Some(key.clone()),
        input: Some(input.clone()),
        worker: worker.clone(),
        until_us: Some(until),
        ..step.clone()
    };
    send(p, run, sdef, &recorded, &workers).await;
    Ok(())
}

/// The workers of a step's action (none for built-in steps and in-process actions).
fn workers_for(
    p: &Platform,
    run: &TaskRunRow,
    sdef: &StepDefinition,
) -> crate::store::Result<Vec<WorkerRow>> {
    match &sdef.kind {
        StepKind::Action { name, .. } if p.tasks.inprocess.get(name).is_none() => {
            p.store.workers_of(&run.tenant, name)
        }
        _ => Ok(Vec::new()),
    }
}

/// The launch of a recorded attempt, as workers receive it.
pub fn launch_of(p: &Platform, run: &TaskRunRow, step: &StepRow) -> Launch {
    let id = step.launch.clone().unwrap_or_default();
    Launch {
        token: p.tasks.token(p, &id),
        id,
        key: step.key.clone().unwrap_or_default(),
        run: run.id.clone(),
        step: step.name.clone(),
        attempt: step.attempt as u32,
        action: step.action.clone(),
        input: step.input.clone().unwrap_or(Value::Null),
        deadline: crate::store::rfc3339_ms(step.until_us.unwrap_or(0)),
        reply_to: None,
    }
}

/// Sends a recorded attempt over its transport; a transport that refuses fails the attempt.
async fn send(
    p: &Arc<Platform>,
    run: &TaskRunRow,
    sdef: &StepDefinition,
    step: &StepRow,
    workers: &[WorkerRow],
) {
    let launch = launch_of(p, run, step);
    let timeout = sdef.timeout.as_std();
    match &sdef.kind {
        StepKind::Approval { .. } => {}
        StepKind::Http(call) => {
            let (p, call) = (p.clone(), call.clone());
            tokio::spawn(async move {
                let outcome = http::call(&p, &call, &launch.input, timeout).await;
                let _ = record_result(&p, &launch.id, outcome, None).await;
            });
        }
        StepKind::Action { name, .. } => {
            if let Some(handler) = p.tasks.inprocess.get(name) {
                let p = p.clone();
                tokio::spawn(async move {
                    let id = launch.id.clone();
                    let outcome = handler(p.clone(), launch).await;
                    let _ = record_result(&p, &id, outcome, None).await;
                });
                return;
            }
            let Some(current) = registry::current(workers, now_us()) else {
                // Gone since: the attempt's deadline decides.
                return;
            };
            match Transport::parse(&current.transport) {
                Some(Transport::Rabbitmq) => {
                    if let Err(e) = p
                        .tasks
                        .broker
                        .publish(p, &current.address, launch.clone())
                        .await
                    {
                        let why = format!("cannot publish the launch: {e}");
                        let _ = record_result(p, &launch.id, Err(why), None).await;
                    }
                }
                Some(Transport::Http) => {
                    let target = step
                        .worker
                        .as_deref()
                        .and_then(|w| workers.iter().find(|x| x.worker == w))
                        .unwrap_or(current)
                        .clone();
                    let p = p.clone();
                    tokio::spawn(async move { http::launch(&p, &target, launch, timeout).await });
                }
                _ => {}
            }
        }
    }
}

/// A step waiting on something: its approval's or attempt's deadline, its worker's beats.
async fn check_timers(
    p: &Arc<Platform>,
    run: &TaskRunRow,
    sdef: &StepDefinition,
    step: &StepRow,
    now: i64,
) -> anyhow::Result<()> {
    let Some(launch) = step.launch.as_deref() else {
        return Ok(());
    };
    let overdue = step.until_us.is_some_and(|u| u <= now);
    let timeout = humantime::format_duration(sdef.timeout.as_std());
    if step.state == "approval" {
        if overdue {
            p.store.end_attempt(
                launch,
                AttemptEnd::Failed(&format!("not approved within {timeout}")),
            )?;
            p.tasks.kick(&run.id);
        }
        return Ok(());
    }
    if overdue {
        attempt_failed(
            p,
            run,
            sdef,
            step,
            &format!("attempt {} timed out after {timeout}", step.attempt),
        )?;
        return Ok(());
    }
    if step.state == "running"
        && let Some(worker) = step.worker.as_deref()
        && p.store
            .worker(&run.tenant, &step.action, worker)?
            .is_none_or(|w| !w.alive_at(now))
    {
        let why = format!(
            "worker `{worker}` stopped beating during attempt {}",
            step.attempt
        );
        attempt_failed(p, run, sdef, step, &why)?;
    }
    Ok(())
}

/// An attempt failed: another comes after the backoff, or the step fails.
fn attempt_failed(
    p: &Platform,
    run: &TaskRunRow,
    sdef: &StepDefinition,
    step: &StepRow,
    error: &str,
) -> anyhow::Result<bool> {
    let Some(launch) = step.launch.as_deref() else {
        return Ok(false);
    };
    let end = if (step.attempt as u32) < sdef.retry.attempts {
        let wait = sdef.retry.backoff_after(step.attempt as u32);
        AttemptEnd::Retry {
            error,
            at_us: now_us() + wait.as_micros() as i64,
        }
    } else {
        AttemptEnd::Failed(error)
    };
    let done = p.store.end_attempt(launch, end)?;
    if done {
        tracing::info!(run = %run.id, step = %step.name, attempt = step.attempt, "attempt failed: {error}");
    }
    p.tasks.kick(&run.id);
    Ok(done)
}

/// A result of an attempt from any transport: stored if the attempt is still current (and its
/// output fits the action's output schema), then the run moves on. Ok(false): stale or
/// unknown; Err: the store could not be written (the result is not taken).
pub async fn record_result(
    p: &Arc<Platform>,
    launch: &str,
    outcome: Outcome,
    worker: Option<&str>,
) -> Result<bool, String> {
    store_result(p, launch, outcome, worker).map_err(|e| {
        tracing::warn!(launch, "cannot store a result: {e:#}");
        format!("{e:#}")
    })
}

fn store_result(
    p: &Arc<Platform>,
    launch: &str,
    outcome: Outcome,
    worker: Option<&str>,
) -> anyhow::Result<bool> {
    let Some(step) = p.store.step_by_launch(launch)? else {
        return Ok(false);
    };
    if !matches!(step.state.as_str(), "launched" | "running") {
        return Ok(false);
    }
    let Some(run) = p.store.task_run(&step.run)? else {
        return Ok(false);
    };
    if let (Some(w), Some(holder)) = (worker, step.worker.as_deref())
        && w != holder
        && step.state == "running"
    {
        tracing::info!(
            launch,
            worker = w,
            holder,
            "a result from a worker that does not hold the attempt is ignored"
        );
        return Ok(false);
    }
    let def = p.tasks.definition(&run).map_err(anyhow::Error::msg)?;
    let Some(sdef) = def.steps.get(step.idx as usize) else {
        return Ok(false);
    };
    let outcome = outcome.and_then(|output| check_output(p, &run, sdef, output));
    let done = match outcome {
        Ok(output) => p
            .store
            .end_attempt(launch, AttemptEnd::Succeeded(&output))?,
        Err(error) => attempt_failed(p, &run, sdef, &step, &error)?,
    };
    p.tasks.kick(&run.id);
    Ok(done)
}

fn check_output(p: &Platform, run: &TaskRunRow, sdef: &StepDefinition, output: Value) -> Outcome {
    let StepKind::Action { name, .. } = &sdef.kind else {
        return Ok(output);
    };
    let workers = p
        .store
        .workers_of(&run.tenant, name)
        .map_err(|e| e.to_string())?;
    let Some(current) = workers.iter().max_by_key(|w| w.last_beat_us) else {
        return Ok(output);
    };
    let validator = p.tasks.validator(&current.output_schema)?;
    let errors = schema_errors(&validator, &output, &|_| false);
    if errors.is_empty() {
        Ok(output)
    } else {
        Err(format!(
            "the output does not fit action `{name}`'s output schema: {}",
            errors.join("; ")
        ))
    }
}
