//! Deployments: move one service's environment from its current release to a target release,
//! health-gated, through persisted steps. The work is a convergence: each pass looks at the
//! instances that exist (in the store, which mirrors Docker after reconciliation) and does the
//! next batch, so a daemon killed at any point picks up where the last persisted step left it.
//!
//! - immediate: start every new instance at once, then drain and stop the old ones.
//! - rolling: start `max_unavailable` new instances, wait until they are healthy, drain and stop
//!   as many old ones, repeat.
//! - canary and bluegreen ([`traffic`]): a new set beside the old one, and a traffic split in
//!   the router that is persisted with every change.
//!
//! A new instance whose container exits, or that is not healthy within `health.grace`, fails
//! the deployment at once (its last 50 log lines in the step), and the previous release is
//! brought back to full strength the same way.

use std::sync::Arc;
use std::time::Duration;

use faas_spec::api::DeploymentState;
use faas_spec::{Manifest, Strategy};

use crate::Platform;
use crate::router::health_check_of;
use crate::router::pool::Backend;
use crate::runtime::{InstanceSpec, RuntimeError, container_name};
use crate::store::{DeploymentRow, InstanceRow, NewStep, ReleaseRow, short_id};

pub(crate) mod canary;
mod traffic;
pub use canary::{LiveCanary, canary_status};
pub use traffic::schedule_standby_end;

/// How many lines of a failed container's output a step keeps.
const FAILED_LOG_LINES: usize = 50;
/// How often the gate looks at a starting instance.
const GATE_POLL: Duration = Duration::from_millis(100);

/// Why a deployment could not go on.
#[derive(Debug)]
struct Failure {
    /// The step that records it: `instance-failed`, `analysis-failed`, `smoke-failed`,
    /// `aborted`, `canary-quiet`.
    kind: &'static str,
    reason: String,
    instance: Option<String>,
    logs: Vec<String>,
    /// The canary figures that decided it.
    report: Option<Box<faas_spec::api::CanaryReport>>,
}

impl Failure {
    fn new(kind: &'static str, reason: String) -> Self {
        Failure {
            kind,
            reason,
            instance: None,
            logs: Vec::new(),
            report: None,
        }
    }

    fn of_instance(reason: String, instance: String, logs: Vec<String>) -> Self {
        Failure {
            instance: Some(instance),
            logs,
            ..Failure::new("instance-failed", reason)
        }
    }
}

impl From<RuntimeError> for Failure {
    fn from(e: RuntimeError) -> Self {
        Failure::new("instance-failed", e.to_string())
    }
}

impl From<crate::store::StoreError> for Failure {
    fn from(e: crate::store::StoreError) -> Self {
        Failure::new(
            "instance-failed",
            format!("the platform's store failed: {e}"),
        )
    }
}

/// Starts (or resumes) driving a deployment in the background.
pub fn spawn(platform: &Arc<Platform>, deployment_id: &str) {
    let p = platform.clone();
    let id = deployment_id.to_owned();
    let mut running = platform.running.lock().unwrap_or_else(|e| e.into_inner());
    if running.get(&id).is_some_and(|h| !h.is_finished()) {
        return;
    }
    let task = tokio::spawn(async move {
        if let Err(e) = drive(&p, &id).await {
            tracing::error!(deployment = %id, "deployment stopped: {e}");
        }
        p.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    });
    running.insert(deployment_id.to_owned(), task.abort_handle());
}

struct Ctx<'a> {
    p: &'a Arc<Platform>,
    dep: DeploymentRow,
}

impl Ctx<'_> {
    /// A running step about one instance.
    fn about(&self, kind: &str, message: &str, instance: Option<&str>) {
        self.add(NewStep {
            instance,
            ..NewStep::new(kind, message, DeploymentState::Running)
        });
    }

    /// The last step: the state the deployment ends in, and why when it did not succeed.
    fn end(&self, kind: &str, message: &str, state: DeploymentState, reason: Option<&str>) {
        self.add(NewStep {
            reason,
            ..NewStep::new(kind, message, state)
        });
    }

    /// A running step with a canary's weights and figures.
    fn report(&self, kind: &str, message: &str, report: &faas_spec::api::CanaryReport) {
        self.add(NewStep {
            canary: Some(report),
            ..NewStep::new(kind, message, DeploymentState::Running)
        });
    }

    fn note(&self, kind: &str, message: &str) {
        self.add(NewStep::new(kind, message, DeploymentState::Running));
    }

    fn add(&self, step: NewStep<'_>) {
        let kind = step.kind;
        let message = step.message;
        match self.p.store.add_step(&self.dep.id, step) {
            Ok(step) => {
                tracing::info!(deployment = %self.dep.id, service = %self.dep.service, env = %self.dep.env, kind, "{message}");
                self.p.events.publish(&self.dep.id, &step);
            }
            Err(e) => tracing::error!(deployment = %self.dep.id, "cannot persist step {kind}: {e}"),
        }
        crash_point(kind);
    }
}

/// The testing hook `FAAS_PLATFORM_CRASH_AT=KIND[:N]`: abort right after the N-th step of KIND.
pub(crate) fn crash_point(kind: &str) {
    static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let Ok(spec) = std::env::var(crate::config::env_vars::CRASH_AT) else {
        return;
    };
    let (want, nth) = match spec.split_once(':') {
        Some((k, n)) => (k.to_owned(), n.parse().unwrap_or(1)),
        None => (spec.clone(), 1),
    };
    if want != kind {
        return;
    }
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    seen.push(kind.to_owned());
    if seen.iter().filter(|k| **k == want).count() == nth {
        tracing::warn!(
            "{}={spec}: aborting now to test crash recovery",
            crate::config::env_vars::CRASH_AT
        );
        std::process::abort();
    }
}

async fn drive(p: &Arc<Platform>, id: &str) -> anyhow::Result<()> {
    let dep = p
        .store
        .deployment(id)?
        .ok_or_else(|| anyhow::anyhow!("no deployment {id}"))?;
    if dep.state.is_terminal() {
        return Ok(());
    }
    let target = p
        .store
        .release(&dep.release_id)?
        .ok_or_else(|| anyhow::anyhow!("release {} is gone", dep.release_id))?;
    let previous = match &dep.previous_release {
        Some(prev) => p.store.release(prev)?,
        None => None,
    };
    let ctx = Ctx {
        p,
        dep: dep.clone(),
    };
    // The environment's host is known from now on: without a healthy instance it answers 503
    // ("no healthy instance"), not 404 ("no such service").
    p.router.pool(&dep.service, &dep.env);

    // A deployment whose rollback had begun when the daemon stopped finishes its rollback.
    let rolling_back = p
        .store
        .steps(id, 0)?
        .iter()
        .any(|s| s.kind == "rolling-back");
    if !rolling_back {
        if dep.state == DeploymentState::Pending {
            ctx.note(
                "started",
                &format!(
                    "deploying v{} ({}) with the {} strategy",
                    target.version,
                    short_image(&target.image_id),
                    dep.strategy
                ),
            );
        } else {
            ctx.note(
                "resumed",
                "the platform restarted; resuming where the last step left off",
            );
        }
        let outcome = match databases_ready(&ctx, &target).await {
            Err(f) => Err(f),
            Ok(()) => match dep.strategy {
                Strategy::Canary => canary::canary(&ctx, &target, previous.as_ref()).await,
                Strategy::Bluegreen => traffic::bluegreen(&ctx, &target, previous.as_ref()).await,
                Strategy::Immediate | Strategy::Rolling => {
                    // Both releases serve while instances are replaced: the split is lifted.
                    traffic::end_standby(&ctx, &target).await;
                    p.router
                        .set_split(&dep.service, &dep.env, Default::default());
                    converge(&ctx, &target, dep.strategy).await
                }
            },
        };
        match outcome {
            Ok(()) => {
                p.store
                    .set_current_release(&dep.service, &dep.env, Some(&target.id))?;
                if dep.previous_release.is_some() {
                    // A new release brings its own replica count; a `scale` applied to the old one.
                    p.store.set_replicas(&dep.service, &dep.env, None)?;
                }
                // Only the new release's instances run now: old logins and the databases it no
                // longer declares can go.
                if let Ok(manifest) = manifest_of(&target) {
                    crate::databases::provision::settle(
                        p,
                        &dep.service,
                        &dep.env,
                        &manifest,
                        |k, m| ctx.note(k, m),
                    )
                    .await;
                }
                ctx.end(
                    "succeeded",
                    &format!(
                        "v{} serves {} at {}",
                        target.version,
                        dep.env,
                        p.url(&dep.service, &dep.env)
                    ),
                    DeploymentState::Succeeded,
                    None,
                );
                // Only now: until the deployment has ended, its canary status shows the last
                // step rather than "not started".
                canary::forget(p, id);
                return Ok(());
            }
            Err(f) => {
                canary::forget(p, id);
                ctx.add(NewStep {
                    kind: f.kind,
                    message: &f.reason,
                    instance: f.instance.as_deref(),
                    logs: &f.logs,
                    state: DeploymentState::Running,
                    reason: Some(&f.reason),
                    canary: f.report.as_deref(),
                });
                let back_to = previous
                    .as_ref()
                    .map_or("no previous release".to_owned(), |r| {
                        format!("v{}", r.version)
                    });
                ctx.note("rolling-back", &format!("rolling back to {back_to}"));
            }
        }
    } else {
        ctx.note("resumed", "the platform restarted; resuming the rollback");
    }

    // Roll back: the failed release's instances go first (out of the traffic split at once),
    // then the previous release is brought back to full strength (it kept serving meanwhile,
    // unless it had been scaled down).
    traffic::take_out(&ctx, &target, previous.as_ref())?;
    stop_release_instances(&ctx, &target.id).await?;
    let reason = p
        .store
        .deployment(id)?
        .and_then(|d| d.reason)
        .unwrap_or_else(|| "the deployment failed".into());
    if let Some(prev) = &previous {
        if let Err(f) = converge(&ctx, prev, Strategy::Immediate).await {
            ctx.add(NewStep {
                instance: f.instance.as_deref(),
                logs: &f.logs,
                reason: Some(&reason),
                ..NewStep::new(
                    "failed",
                    &format!("the rollback to v{} failed too: {}", prev.version, f.reason),
                    DeploymentState::Failed,
                )
            });
            return Ok(());
        }
        p.store
            .set_current_release(&dep.service, &dep.env, Some(&prev.id))?;
    }
    p.router
        .set_split(&dep.service, &dep.env, Default::default());
    ctx.end(
        "rolled-back",
        &format!("rolled back: {reason}"),
        DeploymentState::RolledBack,
        Some(&reason),
    );
    Ok(())
}

/// The persisted `database-ready` step: every database the release declares exists, with the
/// login its instances will be given, before any of them starts.
async fn databases_ready(ctx: &Ctx<'_>, release: &ReleaseRow) -> Result<(), Failure> {
    let manifest = manifest_of(release)?;
    let dep = &ctx.dep;
    crate::databases::provision::provision(ctx.p, &dep.service, &dep.env, &manifest, |k, m| {
        ctx.note(k, m)
    })
    .await
    .map_err(|why| Failure::new("database-failed", why))
}

fn manifest_of(release: &ReleaseRow) -> Result<Manifest, Failure> {
    release.manifest().map_err(|e| {
        Failure::new(
            "instance-failed",
            format!(
                "release v{} has an unreadable manifest: {e}",
                release.version
            ),
        )
    })
}

fn short_image(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

/// Drives the environment to `replicas` healthy instances of `release` and none of any other.
async fn converge(ctx: &Ctx<'_>, release: &ReleaseRow, strategy: Strategy) -> Result<(), Failure> {
    let manifest = manifest_of(release)?;
    let dep = &ctx.dep;
    // `faas service scale` overrides the count while the release it scaled serves.
    let replicas = match ctx.p.store.current_release(&dep.service, &dep.env)? {
        Some(current) if current.id == release.id => {
            ctx.p.store.replicas(&dep.service, &dep.env)?
        }
        _ => None,
    }
    .unwrap_or(manifest.scale.replicas) as usize;
    let batch = match strategy {
        Strategy::Rolling => (manifest.deploy.rolling.max_unavailable as usize).max(1),
        _ => replicas.max(1),
    };
    converge_to(ctx, release, &manifest, replicas, batch, true).await
}

/// Drives `release` to `replicas` healthy instances, starting `batch` at a time; with
/// `stop_others`, instances of every other release are drained and stopped as new ones become
/// healthy (without, they are left alone: a canary or a blue-green set grows beside them).
async fn converge_to(
    ctx: &Ctx<'_>,
    release: &ReleaseRow,
    manifest: &Manifest,
    replicas: usize,
    batch: usize,
    stop_others: bool,
) -> Result<(), Failure> {
    let dep = &ctx.dep;
    let manifest = manifest.clone();
    loop {
        let rows = ctx.p.store.instances(&dep.service, &dep.env)?;
        // An instance being drained is on its way out, whoever stops it (an ended warm window
        // runs beside deployments): it is neither capacity nor something left to stop.
        let (new, mut old): (Vec<InstanceRow>, Vec<InstanceRow>) = rows
            .into_iter()
            .filter(|r| r.state != "draining")
            .partition(|r| r.release_id == release.id);
        if !stop_others {
            old.clear();
        }

        // Every new instance must have passed its gate before anything old is stopped.
        let unhealthy: Vec<&InstanceRow> = new
            .iter()
            .filter(|r| {
                r.state != "healthy"
                    || !ctx
                        .p
                        .router
                        .backend(&dep.service, &dep.env, &r.id)
                        .is_some_and(|b| b.is_healthy())
            })
            .collect();
        if !unhealthy.is_empty() {
            let gates = unhealthy.iter().map(|r| gate(ctx, r, &manifest));
            for result in futures_util::future::join_all(gates).await {
                result?;
            }
            continue;
        }

        // Capacity beyond the target: stop old instances first, then surplus new ones.
        let surplus = (new.len() + old.len()).saturating_sub(replicas);
        if surplus > 0 && !old.is_empty() {
            let stopping: Vec<&InstanceRow> = old.iter().take(surplus.min(old.len())).collect();
            stop_instances(ctx, &stopping, &manifest).await;
            continue;
        }
        if new.len() > replicas {
            let extra: Vec<&InstanceRow> = new.iter().skip(replicas).collect();
            stop_instances(ctx, &extra, &manifest).await;
            continue;
        }
        if new.len() < replicas {
            let count = batch.min(replicas - new.len());
            let starts = (0..count).map(|_| start_instance(ctx, release, &manifest));
            for result in futures_util::future::join_all(starts).await {
                result?;
            }
            continue;
        }
        if !old.is_empty() {
            let stopping: Vec<&InstanceRow> = old.iter().collect();
            stop_instances(ctx, &stopping, &manifest).await;
            continue;
        }
        return Ok(());
    }
}

/// Records, creates and starts one instance of `release`, and puts it in the router's pool
/// (where it takes requests once healthy).
async fn start_instance(
    ctx: &Ctx<'_>,
    release: &ReleaseRow,
    manifest: &Manifest,
) -> Result<(), Failure> {
    let dep = &ctx.dep;
    let instance = short_id();
    let name = container_name(&dep.service, &dep.env, &instance);
    // The row comes first: a crash after the container exists but before its id is recorded
    // still leaves a row, so the restart finds the container by name instead of orphaning it.
    let mut row = InstanceRow {
        id: instance.clone(),
        service: dep.service.clone(),
        env: dep.env.clone(),
        release_id: release.id.clone(),
        container_name: name.clone(),
        container_id: None,
        host_port: None,
        state: "starting".into(),
    };
    ctx.p.store.add_instance(&row)?;
    // The secrets as they were when this release was made, on every instance it starts.
    let mut extra_env = ctx
        .p
        .secret_env(&dep.service, &dep.env, release.secrets_version)
        .map_err(|e| {
            Failure::new(
                "instance-failed",
                format!("cannot open the secrets of v{}: {e}", release.version),
            )
        })?;
    // The databases' URLs with the environment's current logins (a rotation moves every
    // release of the environment to the new one).
    let urls = crate::databases::provision::instance_env(ctx.p, &dep.service, &dep.env, manifest)
        .map_err(|e| {
        Failure::new(
            "instance-failed",
            format!("cannot give v{} its databases: {e}", release.version),
        )
    })?;
    extra_env.extend(urls);
    let spec = InstanceSpec {
        service: &dep.service,
        env: &dep.env,
        release_id: &release.id,
        instance_id: &instance,
        image_id: &release.image_id,
        manifest,
        extra_env,
    };
    let started = ctx.p.runtime.start_instance(&spec).await;
    if let Ok((id, _)) = &started {
        // Captured from its first line: even an instance that dies at once keeps its output.
        ctx.p.logs.start(
            ctx.p.runtime.clone(),
            crate::logs::Source {
                service: dep.service.clone(),
                env: dep.env.clone(),
                instance: instance.clone(),
                release: release.id.clone(),
                container: id.clone(),
            },
        );
    }
    let (container_id, port, addr) = match started {
        Ok((id, state)) => match (
            state.host_port,
            ctx.p.upstream_addr(&state, manifest.run.port),
            state.failure(),
        ) {
            (Some(port), Some(addr), None) => (id, port, addr),
            (_, _, why) => {
                let why = why.unwrap_or_else(|| "its container published no port".into());
                let logs = ctx.p.runtime.logs_tail(&id, FAILED_LOG_LINES).await;
                let _ = ctx.p.runtime.stop(&id, Duration::from_secs(1)).await;
                ctx.p.logs.finish(&instance, Duration::from_secs(5)).await;
                let _ = ctx.p.runtime.remove(&id).await;
                let _ = ctx.p.store.remove_instance(&instance);
                return Err(Failure::of_instance(
                    format!("instance {instance} failed: {why}"),
                    instance,
                    logs,
                ));
            }
        },
        Err(e) => {
            let logs = ctx.p.runtime.logs_tail(&name, FAILED_LOG_LINES).await;
            let _ = ctx.p.runtime.remove(&name).await;
            let _ = ctx.p.store.remove_instance(&instance);
            return Err(Failure::of_instance(
                format!("instance {instance} could not start: {e}"),
                instance,
                logs,
            ));
        }
    };
    row.container_id = Some(container_id);
    row.host_port = Some(port);
    row.state = "running".into();
    ctx.p.store.add_instance(&row)?;
    ctx.p.router.add_backend(
        &dep.service,
        &dep.env,
        Backend::new(&instance, &release.id, addr, health_check_of(manifest)),
    );
    ctx.about(
        "instance-starting",
        &format!(
            "instance {instance} of v{} started on {addr}",
            release.version
        ),
        Some(&instance),
    );
    Ok(())
}

/// Waits until an instance is healthy; fails at once when its container exits, or after
/// `health.grace`.
async fn gate(ctx: &Ctx<'_>, row: &InstanceRow, manifest: &Manifest) -> Result<(), Failure> {
    let dep = &ctx.dep;
    let grace = manifest.health.grace.as_std();
    let deadline = tokio::time::Instant::now() + grace;
    let container = row
        .container_id
        .clone()
        .unwrap_or_else(|| row.container_name.clone());
    let fail =
        |reason: String, logs: Vec<String>| Failure::of_instance(reason, row.id.clone(), logs);

    // An instance adopted after a restart may not be in the pool yet.
    if ctx
        .p
        .router
        .backend(&dep.service, &dep.env, &row.id)
        .is_none()
    {
        let state = ctx.p.runtime.state(&container).await?;
        match ctx.p.upstream_addr(&state, manifest.run.port) {
            Some(addr) if state.running => {
                ctx.p.router.add_backend(
                    &dep.service,
                    &dep.env,
                    Backend::new(&row.id, &row.release_id, addr, health_check_of(manifest)),
                );
            }
            _ => {
                let logs = ctx.p.runtime.logs_tail(&container, FAILED_LOG_LINES).await;
                let why = state
                    .failure()
                    .unwrap_or_else(|| "its container is not running".into());
                forget_instance(ctx.p, row).await;
                return Err(fail(format!("instance {} failed: {why}", row.id), logs));
            }
        }
    }

    let mut polls = 0u32;
    loop {
        if ctx
            .p
            .router
            .backend(&dep.service, &dep.env, &row.id)
            .is_some_and(|b| b.is_healthy())
        {
            ctx.p.runtime.keep_running(&container).await?;
            ctx.p.store.set_instance_state(&row.id, "healthy")?;
            ctx.about(
                "instance-healthy",
                &format!("instance {} is healthy", row.id),
                Some(&row.id),
            );
            return Ok(());
        }
        // Look at the container every 500 ms: an exit fails the deployment without waiting out
        // the grace period.
        if polls.is_multiple_of(5) {
            let state = ctx.p.runtime.state(&container).await?;
            if let Some(why) = state.failure() {
                let logs = ctx.p.runtime.logs_tail(&container, FAILED_LOG_LINES).await;
                forget_instance(ctx.p, row).await;
                return Err(fail(format!("instance {} failed: {why}", row.id), logs));
            }
        }
        if tokio::time::Instant::now() >= deadline {
            let what = match &manifest.health.path {
                Some(path) => format!("GET {path} did not answer 200"),
                None => format!("nothing accepted connections on port {}", manifest.run.port),
            };
            let logs = ctx.p.runtime.logs_tail(&container, FAILED_LOG_LINES).await;
            forget_instance(ctx.p, row).await;
            return Err(fail(
                format!(
                    "instance {} did not become healthy within {} ({what})",
                    row.id, manifest.health.grace
                ),
                logs,
            ));
        }
        polls += 1;
        tokio::time::sleep(GATE_POLL).await;
    }
}

async fn stop_instances(ctx: &Ctx<'_>, rows: &[&InstanceRow], manifest: &Manifest) {
    let drain = manifest.deploy.rolling.drain_timeout.as_std();
    let stops = rows.iter().map(|row| async move {
        let left = retire_instance(ctx.p, row, drain).await;
        let note = if left > 0 {
            format!(" ({left} requests still open after {drain:?})")
        } else {
            String::new()
        };
        ctx.about(
            "instance-stopped",
            &format!("instance {} drained and stopped{note}", row.id),
            Some(&row.id),
        );
    });
    futures_util::future::join_all(stops).await;
}

/// Drains one instance (no new request; those in flight finish, up to `drain`), then stops and
/// forgets it. Returns how many requests were still open at the end.
async fn retire_instance(p: &Platform, row: &InstanceRow, drain: Duration) -> usize {
    let _ = p.store.set_instance_state(&row.id, "draining");
    let left = p
        .router
        .drain_and_remove(&row.service, &row.env, &row.id, drain)
        .await;
    forget_instance(p, row).await;
    left
}

/// Stops and forgets one instance: out of the router, container removed, row deleted.
async fn forget_instance(p: &Platform, row: &InstanceRow) {
    p.router.remove_backend(&row.service, &row.env, &row.id);
    let container = row
        .container_id
        .clone()
        .unwrap_or_else(|| row.container_name.clone());
    // Stopped first (metered just before, and closed at its finish after), its last lines
    // captured, then removed.
    p.meter.read_one(p, row).await;
    let stopped = p.runtime.stop(&container, Duration::from_secs(10)).await;
    p.meter.read_one(p, row).await;
    p.logs.finish(&row.id, Duration::from_secs(5)).await;
    match stopped.and(p.runtime.remove(&container).await) {
        Ok(()) => {
            let _ = p.store.remove_instance(&row.id);
        }
        Err(e) => {
            tracing::warn!(instance = %row.id, "cannot remove its container now ({e}); reconciliation will")
        }
    }
}

async fn stop_release_instances(ctx: &Ctx<'_>, release_id: &str) -> anyhow::Result<()> {
    let rows = ctx.p.store.instances(&ctx.dep.service, &ctx.dep.env)?;
    let doomed: Vec<&InstanceRow> = rows.iter().filter(|r| r.release_id == release_id).collect();
    for row in doomed {
        forget_instance(ctx.p, row).await;
        ctx.about(
            "instance-stopped",
            &format!("instance {} of the failed release stopped", row.id),
            Some(&row.id),
        );
    }
    Ok(())
}
