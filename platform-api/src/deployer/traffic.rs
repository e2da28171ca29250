//! What the strategies that split traffic share, and blue-green: the full new set beside the
//! old one with no traffic (but at the `-green` preview host), an optional smoke check, then one
//! switch. The old set stays warm for `keep_previous`; a rollback in that window switches back
//! to it without starting a container. The canary is in [`super::canary`].
//!
//! Every change of the split is written to the store before the router applies it
//! ([`crate::store::Traffic`]), so a restarted daemon rebuilds the same split and the
//! deployment resumes at its persisted step.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use faas_spec::{Manifest, Strategy};

use super::{Ctx, Failure, converge, converge_to, manifest_of, retire_instance};
use crate::Platform;
use crate::router::pool::Split;
use crate::store::{InstanceRow, ReleaseRow};

/// How long a smoke check may take.
const SMOKE_TIMEOUT: Duration = Duration::from_secs(30);

/// The previous release when it has instances to compare with and to fall back on.
fn baseline<'r>(
    ctx: &Ctx<'_>,
    previous: Option<&'r ReleaseRow>,
) -> Result<Option<&'r ReleaseRow>, Failure> {
    let Some(prev) = previous else {
        return Ok(None);
    };
    let rows = ctx.p.store.instances(&ctx.dep.service, &ctx.dep.env)?;
    Ok(rows.iter().any(|r| r.release_id == prev.id).then_some(prev))
}

/// The previous set to split the traffic with. Without one (a first deploy), or without
/// replicas, there is nothing to split: the release is deployed at full strength instead, and
/// `None` says that is done.
pub(super) async fn previous_set<'r>(
    ctx: &Ctx<'_>,
    target: &ReleaseRow,
    previous: Option<&'r ReleaseRow>,
    replicas: usize,
    nothing_to: &str,
) -> Result<Option<&'r ReleaseRow>, Failure> {
    let why = match baseline(ctx, previous)? {
        Some(prev) if replicas > 0 => return Ok(Some(prev)),
        Some(_) => "the release has 0 replicas".to_owned(),
        None => format!(
            "no release serves {} yet, so there is nothing to {nothing_to}",
            ctx.dep.env
        ),
    };
    without_baseline(ctx, target, &why).await?;
    Ok(None)
}

/// Without a previous set there is nothing to split with: the release starts at full strength.
async fn without_baseline(ctx: &Ctx<'_>, target: &ReleaseRow, why: &str) -> Result<(), Failure> {
    ctx.note(
        "no-baseline",
        &format!(
            "{why}: v{} starts at full strength, like an immediate deployment",
            target.version
        ),
    );
    end_standby(ctx, target).await;
    ctx.p
        .router
        .set_split(&ctx.dep.service, &ctx.dep.env, Split::default());
    converge(ctx, target, Strategy::Immediate).await
}

pub(super) async fn bluegreen(
    ctx: &Ctx<'_>,
    target: &ReleaseRow,
    previous: Option<&ReleaseRow>,
) -> Result<(), Failure> {
    let (p, dep) = (ctx.p, &ctx.dep);
    let manifest = manifest_of(target)?;
    let traffic = p.store.traffic(&dep.service, &dep.env)?;
    if traffic.current.as_deref() == Some(target.id.as_str()) {
        // Switched before the platform stopped.
        return Ok(());
    }
    let replicas = manifest.scale.replicas as usize;
    let Some(prev) = previous_set(ctx, target, previous, replicas, "switch from").await? else {
        return Ok(());
    };
    // A rollback to the set kept warm: it is there and healthy; only the switch is left.
    let switching_back = traffic
        .standby
        .as_ref()
        .is_some_and(|(standby, _)| *standby == target.id);
    let resumed = traffic
        .canary
        .as_ref()
        .is_some_and(|(release, _)| *release == target.id);
    if !resumed {
        end_standby(ctx, target).await;
        p.store
            .set_canary(&dep.service, &dep.env, Some((&target.id, 0)))?;
    }
    p.router.set_split(
        &dep.service,
        &dep.env,
        Split::canary(&prev.id, &target.id, 0),
    );
    if switching_back {
        ctx.note(
            "switching-back",
            &format!(
                "v{} is still warm from before the switch: switching back to it without starting a container",
                target.version
            ),
        );
    }
    converge_to(ctx, target, &manifest, replicas, replicas, false).await?;
    let keep = if switching_back {
        Duration::ZERO
    } else {
        manifest.deploy.bluegreen.keep_previous.as_std()
    };
    if !switching_back {
        ctx.note(
            "green-ready",
            &format!(
                "v{} is healthy on {replicas} instance{}, previewed at {}; v{} still serves {} (also at {})",
                target.version,
                if replicas == 1 { "" } else { "s" },
                p.preview_url(&dep.service, &dep.env, true),
                prev.version,
                p.url(&dep.service, &dep.env),
                p.preview_url(&dep.service, &dep.env, false),
            ),
        );
        smoke(ctx, target, &manifest).await?;
    }

    // The switch: one write, then one swap in the router.
    let started = Instant::now();
    let until = (keep > Duration::ZERO)
        .then(|| humantime::format_rfc3339_seconds(SystemTime::now() + keep).to_string());
    p.store.switch(
        &dep.service,
        &dep.env,
        &target.id,
        until.as_deref().map(|u| (prev.id.as_str(), u)),
    )?;
    p.router.set_split(
        &dep.service,
        &dep.env,
        Split::live(&target.id, Some(&prev.id)),
    );
    let took = started.elapsed();
    match &until {
        Some(until) => {
            schedule_standby_end(
                p.clone(),
                dep.service.clone(),
                dep.env.clone(),
                prev.id.clone(),
                until.clone(),
            );
            ctx.note(
                "switched",
                &format!(
                    "every request goes to v{} now (the switch took {took:.1?}); v{} stays warm until {until} (keep_previous = {}): `faas service rollback -e {}` switches back at once",
                    target.version,
                    prev.version,
                    manifest.deploy.bluegreen.keep_previous,
                    dep.env
                ),
            );
            Ok(())
        }
        None => {
            ctx.note(
                "switched",
                &format!(
                    "every request goes to v{} {}(the switch took {took:.1?}); v{} drains and stops",
                    target.version,
                    if switching_back { "again " } else { "now " },
                    prev.version
                ),
            );
            retire_others(ctx, target, &manifest).await
        }
    }
}

/// `deploy.bluegreen.smoke`: the path must answer 2xx on every instance of the new set.
async fn smoke(ctx: &Ctx<'_>, target: &ReleaseRow, manifest: &Manifest) -> Result<(), Failure> {
    let Some(path) = &manifest.deploy.bluegreen.smoke else {
        return Ok(());
    };
    let (p, dep) = (ctx.p, &ctx.dep);
    let backends: Vec<_> = p
        .router
        .pool(&dep.service, &dep.env)
        .backends()
        .iter()
        .filter(|b| b.release == target.id)
        .cloned()
        .collect();
    for b in &backends {
        let answer = p.router.get_status(b.addr, path, SMOKE_TIMEOUT).await;
        let why = match answer {
            Ok(status) if status.is_success() => continue,
            Ok(status) => format!("answered {status}"),
            Err(e) => e,
        };
        return Err(Failure {
            instance: Some(b.instance.clone()),
            ..Failure::new(
                "smoke-failed",
                format!(
                    "the smoke check GET {path} on instance {} of v{} {why}; no request was switched to it",
                    b.instance, target.version
                ),
            )
        });
    }
    ctx.note(
        "smoke-passed",
        &format!(
            "GET {path} answered 2xx on all {} instances of v{}",
            backends.len(),
            target.version
        ),
    );
    Ok(())
}

/// Drains and stops every instance that is not of `target` (the old set, once the traffic has
/// left it), and leaves the environment unsplit.
pub(super) async fn retire_others(
    ctx: &Ctx<'_>,
    target: &ReleaseRow,
    manifest: &Manifest,
) -> Result<(), Failure> {
    let rows = ctx.p.store.instances(&ctx.dep.service, &ctx.dep.env)?;
    let old: Vec<&InstanceRow> = rows.iter().filter(|r| r.release_id != target.id).collect();
    super::stop_instances(ctx, &old, manifest).await;
    ctx.p
        .router
        .set_split(&ctx.dep.service, &ctx.dep.env, Split::default());
    Ok(())
}

/// A new deployment ends the warm window of the previous one: its set stops (unless it is the
/// release being deployed, which then reuses it).
pub(super) async fn end_standby(ctx: &Ctx<'_>, target: &ReleaseRow) {
    let (p, dep) = (ctx.p, &ctx.dep);
    let Ok(traffic) = p.store.traffic(&dep.service, &dep.env) else {
        return;
    };
    let Some((standby, _)) = traffic.standby else {
        return;
    };
    if !p
        .store
        .clear_standby(&dep.service, &dep.env, &standby)
        .unwrap_or(false)
    {
        return;
    }
    let mut split = (*p.router.split(&dep.service, &dep.env)).clone();
    split.standby = None;
    p.router.set_split(&dep.service, &dep.env, split);
    if standby != target.id {
        let version = p
            .store
            .release(&standby)
            .ok()
            .flatten()
            .map_or(0, |r| r.version);
        let stopped = retire(p, &dep.service, &dep.env, &standby).await;
        ctx.note(
            "standby-ended",
            &format!(
                "v{version} had been kept warm for a rollback; this deployment ends that: its {stopped} instance(s) stopped"
            ),
        );
    }
}

/// Takes a failed release out of the traffic at once: the previous release alone serves.
pub(super) fn take_out(
    ctx: &Ctx<'_>,
    target: &ReleaseRow,
    previous: Option<&ReleaseRow>,
) -> anyhow::Result<()> {
    let (p, dep) = (ctx.p, &ctx.dep);
    let traffic = p.store.traffic(&dep.service, &dep.env)?;
    if traffic
        .canary
        .as_ref()
        .is_some_and(|(release, _)| *release == target.id)
    {
        p.store.set_canary(&dep.service, &dep.env, None)?;
    }
    let split = match previous {
        Some(prev) => Split::live(&prev.id, None),
        None => Split::default(),
    };
    p.router.set_split(&dep.service, &dep.env, split);
    Ok(())
}

/// Drains and stops every instance of `release` in an environment; returns how many.
async fn retire(p: &Platform, service: &str, env: &str, release: &str) -> usize {
    let rows = p.store.instances(service, env).unwrap_or_default();
    let rows: Vec<&InstanceRow> = rows.iter().filter(|r| r.release_id == release).collect();
    let drain = p
        .store
        .release(release)
        .ok()
        .flatten()
        .and_then(|r| r.manifest().ok())
        .map_or(Duration::from_secs(30), |m| {
            m.deploy.rolling.drain_timeout.as_std()
        });
    futures_util::future::join_all(rows.iter().map(|row| retire_instance(p, row, drain))).await;
    rows.len()
}

/// At `until`, the warm previous set of an environment drains and stops, unless a rollback
/// switched back to it or a deployment ended the window first.
pub fn schedule_standby_end(
    p: Arc<Platform>,
    service: String,
    env: String,
    release: String,
    until: String,
) {
    tokio::spawn(async move {
        let wait = humantime::parse_rfc3339(&until)
            .ok()
            .and_then(|t| t.duration_since(SystemTime::now()).ok())
            .unwrap_or_default();
        tokio::time::sleep(wait).await;
        loop {
            // A deployment under way ends (or reuses) the window itself.
            match p.store.active_deployment(&service, &env) {
                Ok(None) => break,
                Ok(Some(_)) => tokio::time::sleep(Duration::from_secs(1)).await,
                Err(_) => return,
            }
        }
        if !p
            .store
            .clear_standby(&service, &env, &release)
            .unwrap_or(false)
        {
            return;
        }
        let mut split = (*p.router.split(&service, &env)).clone();
        if split.standby.as_deref() == Some(release.as_str()) {
            split.standby = None;
            if split.canary.is_none() {
                split = Split::default();
            }
            p.router.set_split(&service, &env, split);
        }
        let stopped = retire(&p, &service, &env, &release).await;
        tracing::info!(%service, %env, %release, stopped, "the previous set's warm window ended; it drained and stopped");
    });
}
