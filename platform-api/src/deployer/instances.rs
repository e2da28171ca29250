//! One instance's life in a deployment: recorded, created and started, put in the router's
//! pool, let through its health gate, and at its end drained, stopped and forgotten.

use std::time::Duration;

use faas_spec::Manifest;

use super::{Ctx, FAILED_LOG_LINES, Failure, GATE_POLL};
use crate::Platform;
use crate::router::health_check_of;
use crate::router::pool::Backend;
use crate::runtime::{InstanceSpec, container_name};
use crate::store::{InstanceRow, ReleaseRow, short_id};

/// Records, creates and starts one instance of `release`, and puts it in the router's pool
/// (where it takes requests once healthy).
pub(super) async fn start_instance(
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
    // Its dependencies' addresses, through the router on the instances' network.
    let (dependency_env, hosts) = crate::dependencies::instance_env(ctx.p, &dep.env, manifest)
        .map_err(|why| Failure::new("dependency-failed", why))?;
    extra_env.extend(dependency_env);
    let owner = ctx
        .p
        .store
        .service(&dep.service)?
        .map(|s| s.owner)
        .unwrap_or_default();
    let spec = InstanceSpec {
        tenant: &owner,
        service: &dep.service,
        env: &dep.env,
        release_id: &release.id,
        instance_id: &instance,
        image_id: &release.image_id,
        manifest,
        extra_env,
        hosts,
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
            // A pod publishes no port on the host: its address is enough.
            (port, Some(addr), None) => (id, port, addr),
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
    row.host_port = port;
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
pub(super) async fn gate(
    ctx: &Ctx<'_>,
    row: &InstanceRow,
    manifest: &Manifest,
) -> Result<(), Failure> {
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
            // Where the runtime has its own verdict (a rolled-out Deployment), both agree.
            && ctx.p.runtime.state(&container).await?.rolled_out != Some(false)
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

pub(super) async fn stop_instances(ctx: &Ctx<'_>, rows: &[&InstanceRow], manifest: &Manifest) {
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
pub(super) async fn retire_instance(p: &Platform, row: &InstanceRow, drain: Duration) -> usize {
    let _ = p.store.set_instance_state(&row.id, "draining");
    let left = p
        .router
        .drain_and_remove(&row.service, &row.env, &row.id, drain)
        .await;
    forget_instance(p, row).await;
    left
}

/// Stops and forgets one instance: out of the router, container removed, row deleted.
pub(super) async fn forget_instance(p: &Platform, row: &InstanceRow) {
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

pub(super) async fn stop_release_instances(ctx: &Ctx<'_>, release_id: &str) -> anyhow::Result<()> {
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
