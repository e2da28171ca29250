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
use crate::runtime::RuntimeError;
use crate::store::{DeploymentRow, InstanceRow, NewStep, ReleaseRow};

pub(crate) mod canary;
mod instances;
mod traffic;
pub use canary::{LiveCanary, canary_status};
use instances::{
    forget_instance, gate, retire_instance, start_instance, stop_instances, stop_release_instances,
};
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
                if let Ok(m) = target.manifest() {
                    p.router.callers.set_manifest(&dep.service, &dep.env, &m);
                }
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
        if let Ok(m) = prev.manifest() {
            p.router.callers.set_manifest(&dep.service, &dep.env, &m);
        }
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
