//! The strategies that split traffic: canary and bluegreen, and the warm previous set that
//! blue-green keeps for an instant rollback.
//!
//! Every change of the split is written to the store before the router applies it
//! ([`crate::store::Traffic`]), so a restarted daemon rebuilds the same split and the
//! deployment resumes at its persisted step.
//!
//! - canary: the new release grows beside the old one step by step (`deploy.canary.steps`), its
//!   instances in proportion to its weight. Each step is observed for `interval`; the router's
//!   own figures for both releases decide. A breach rolls back at once; too few requests extend
//!   the step, up to `max_wait`, after which `on_quiet` rolls back or promotes; with
//!   `auto = false` (or `--manual`) every step holds until promoted.
//! - bluegreen: the full new set beside the old one with no traffic (but at the `-green`
//!   preview host), an optional smoke check, then one switch. The old set stays warm for
//!   `keep_previous`; a rollback in that window switches back to it without starting a
//!   container.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use faas_spec::api::{CanaryReport, SetFigures};
use faas_spec::{Manifest, Strategy};

use super::{Ctx, Failure, converge, converge_to, forget_instance, manifest_of, retire_instance};
use crate::Platform;
use crate::router::metrics::Snapshot;
use crate::router::pool::Split;
use crate::store::{InstanceRow, ReleaseRow};

/// How often a canary step looks at commands, figures and its instances.
const TICK: Duration = Duration::from_millis(100);
/// How often (in ticks) a canary step sends its figures so far to those following it.
const PROGRESS_TICKS: u32 = 10;
/// How long a smoke check may take.
const SMOKE_TIMEOUT: Duration = Duration::from_secs(30);

/// A canary step under way, as `GET …/canary` shows it.
#[derive(Debug, Clone)]
pub struct LiveCanary {
    pub service: String,
    pub env: String,
    pub auto: bool,
    pub holding: bool,
    /// 0-based.
    pub step: usize,
    pub steps: Vec<u8>,
    pub weight: u8,
    /// (release id, version) of the new and of the old set.
    pub canary: (String, u64),
    pub baseline: (String, u64),
    /// The start of the step's window, and both sets' counters then.
    pub since: Instant,
    base_canary: Snapshot,
    base_baseline: Snapshot,
}

impl LiveCanary {
    /// Both sets' figures from the start of the step until now.
    pub fn report(&self, p: &Platform) -> CanaryReport {
        let m = &p.router.metrics;
        let now_c = m.snapshot(&self.service, &self.env, &self.canary.0);
        let now_b = m.snapshot(&self.service, &self.env, &self.baseline.0);
        CanaryReport {
            step: self.step as u32 + 1,
            steps: self.steps.clone(),
            window_s: (self.since.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            canary: figures(&self.canary, self.weight, &now_c.since(&self.base_canary)),
            baseline: figures(
                &self.baseline,
                100 - self.weight,
                &now_b.since(&self.base_baseline),
            ),
        }
    }
}

fn figures((release, version): &(String, u64), weight: u8, s: &Snapshot) -> SetFigures {
    SetFigures {
        release: release.clone(),
        version: *version,
        weight,
        requests: s.requests,
        errors_5xx: s.errors_5xx,
        error_rate: s.error_rate(),
        p99_ms: s
            .quantile(0.99)
            .map(|d| (d.as_secs_f64() * 10_000.0).round() / 10.0),
    }
}

/// The live state of a deployment's canary, if one is under way on this daemon.
pub fn canary_status(p: &Platform, deployment: &str) -> Option<(LiveCanary, CanaryReport)> {
    let live = p
        .canaries
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(deployment)
        .cloned()?;
    let report = live.report(p);
    Some((live, report))
}

fn publish(ctx: &Ctx<'_>, live: &LiveCanary) {
    ctx.p
        .canaries
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(ctx.dep.id.clone(), live.clone());
}

fn percent(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

fn p99(f: &SetFigures) -> String {
    f.p99_ms
        .map_or_else(|| "-".to_owned(), |ms| format!("{ms} ms"))
}

/// `v2: 1204 requests, 0.4% 5xx, p99 12 ms`
fn describe(f: &SetFigures) -> String {
    format!(
        "v{} ({}%): {} requests, {} 5xx, p99 {}",
        f.version,
        f.weight,
        f.requests,
        percent(f.error_rate),
        p99(f)
    )
}

/// Why the canary fails its analysis, or `None` when it passes. A threshold counts only when
/// the canary is also worse than the old release over the same window: a fault both sets share
/// (a database down) is not the new release's.
fn judge(cfg: &faas_spec::manifest::Canary, r: &CanaryReport) -> Option<String> {
    let (c, b) = (&r.canary, &r.baseline);
    let mut why = Vec::new();
    if c.error_rate > cfg.max_error_rate && (b.requests == 0 || c.error_rate > b.error_rate) {
        why.push(format!(
            "its 5xx ratio {} ({} of {}) is above max_error_rate {} (v{}: {})",
            percent(c.error_rate),
            c.errors_5xx,
            c.requests,
            percent(cfg.max_error_rate),
            b.version,
            percent(b.error_rate)
        ));
    }
    let max_p99 = cfg.max_p99.as_std().as_secs_f64() * 1000.0;
    if let Some(ms) = c.p99_ms
        && ms > max_p99
        && b.p99_ms.is_none_or(|base| ms > base)
    {
        why.push(format!(
            "its p99 {ms} ms is above max_p99 {} (v{}: {})",
            cfg.max_p99,
            b.version,
            p99(b)
        ));
    }
    (!why.is_empty()).then(|| why.join("; "))
}

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
async fn previous_set<'r>(
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

pub(super) async fn canary(
    ctx: &Ctx<'_>,
    target: &ReleaseRow,
    previous: Option<&ReleaseRow>,
) -> Result<(), Failure> {
    let (p, dep) = (ctx.p, &ctx.dep);
    let manifest = manifest_of(target)?;
    let traffic = p.store.traffic(&dep.service, &dep.env)?;
    if traffic.current.as_deref() == Some(target.id.as_str()) {
        // Every request had been switched to it when the platform stopped.
        return retire_others(ctx, target, &manifest).await;
    }
    let replicas = manifest.scale.replicas as usize;
    let Some(prev) = previous_set(ctx, target, previous, replicas, "compare a canary with").await?
    else {
        return Ok(());
    };
    let cfg = &manifest.deploy.canary;
    let auto = cfg.auto && !dep.manual;
    let resumed_weight = match &traffic.canary {
        Some((release, weight)) if *release == target.id => Some(*weight),
        _ => None,
    };
    if resumed_weight.is_none() {
        end_standby(ctx, target).await;
        p.store
            .set_canary(&dep.service, &dep.env, Some((&target.id, 0)))?;
    }
    let first = resumed_weight.map_or(0, |w| {
        cfg.steps
            .iter()
            .position(|s| *s >= w)
            .unwrap_or(cfg.steps.len() - 1)
    });
    p.router.set_split(
        &dep.service,
        &dep.env,
        Split::canary(&prev.id, &target.id, resumed_weight.unwrap_or(0)),
    );
    let n = cfg.steps.len();
    for (i, &weight) in cfg.steps.iter().enumerate().skip(first) {
        if weight >= 100 {
            break;
        }
        // The canary's instances grow with its share.
        let need = (replicas * usize::from(weight)).div_ceil(100).max(1);
        converge_to(ctx, target, &manifest, need, need, false).await?;
        p.store
            .set_canary(&dep.service, &dep.env, Some((&target.id, weight)))?;
        p.router.set_split(
            &dep.service,
            &dep.env,
            Split::canary(&prev.id, &target.id, weight),
        );
        let mut live = LiveCanary {
            service: dep.service.clone(),
            env: dep.env.clone(),
            auto,
            holding: false,
            step: i,
            steps: cfg.steps.clone(),
            weight,
            canary: (target.id.clone(), target.version),
            baseline: (prev.id.clone(), prev.version),
            since: Instant::now(),
            base_canary: p
                .router
                .metrics
                .snapshot(&dep.service, &dep.env, &target.id),
            base_baseline: p.router.metrics.snapshot(&dep.service, &dep.env, &prev.id),
        };
        publish(ctx, &live);
        let how = if auto {
            format!("judged after {}", cfg.interval)
        } else {
            format!("held after {} until promoted", cfg.interval)
        };
        ctx.report(
            "canary-step",
            &format!(
                "step {}/{n}: v{} takes {weight}% of requests, v{} {}% ({how}){}",
                i + 1,
                target.version,
                prev.version,
                100 - weight,
                if resumed_weight.is_some() && i == first {
                    "; resumed after a restart of the platform"
                } else {
                    ""
                }
            ),
            &live.report(p),
        );
        if observe(ctx, &mut live, cfg, target, &manifest).await? == StepEnd::Promote {
            break;
        }
    }

    // The last step: every request to the new release, then the old set drains and stops.
    converge_to(ctx, target, &manifest, replicas, replicas, false).await?;
    p.store.switch(&dep.service, &dep.env, &target.id, None)?;
    p.router
        .set_split(&dep.service, &dep.env, Split::live(&target.id, None));
    ctx.note(
        "canary-complete",
        &format!(
            "step {n}/{n}: v{} takes every request; v{} drains and stops",
            target.version, prev.version
        ),
    );
    retire_others(ctx, target, &manifest).await
}

/// How a canary step that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StepEnd {
    /// On to the next step.
    Next,
    /// Straight to every request: a quiet canary with `on_quiet = "promote"`.
    Promote,
}

/// Watches one canary step until it passes (or is promoted), or fails (breach, abort, a dead
/// instance, or too few requests by `max_wait` with `on_quiet = "rollback"`).
async fn observe(
    ctx: &Ctx<'_>,
    live: &mut LiveCanary,
    cfg: &faas_spec::manifest::Canary,
    target: &ReleaseRow,
    manifest: &Manifest,
) -> Result<StepEnd, Failure> {
    let (p, dep) = (ctx.p, &ctx.dep);
    let interval = cfg.interval.as_std();
    let min = u64::from(cfg.min_requests);
    let started = tokio::time::Instant::now();
    // An automatic step waits for `min_requests` until `max_wait`; a manual one until told.
    let give_up_at = started + cfg.max_wait.as_std().max(interval);
    let mut judge_at = started + interval;
    let mut ticks = 0u32;
    let step = format!("step {}/{}", live.step + 1, live.steps.len());
    loop {
        match p.store.command(&dep.id)?.as_deref() {
            Some("promote") => {
                p.store.take_command(&dep.id)?;
                ctx.report(
                    "canary-promoted",
                    &format!(
                        "{step} promoted by hand at {}% to v{}",
                        live.weight, target.version
                    ),
                    &live.report(p),
                );
                return Ok(StepEnd::Next);
            }
            Some("abort") => {
                p.store.take_command(&dep.id)?;
                return Err(Failure {
                    report: Some(Box::new(live.report(p))),
                    ..Failure::new(
                        "aborted",
                        format!(
                            "the canary was aborted by hand at {step} ({}% to v{})",
                            live.weight, target.version
                        ),
                    )
                });
            }
            _ => {}
        }
        let report = live.report(p);
        // A breach ends the step at once, as soon as there are enough requests to judge.
        if report.canary.requests >= min
            && let Some(why) = judge(cfg, &report)
        {
            return Err(Failure {
                report: Some(Box::new(report.clone())),
                ..Failure::new(
                    "analysis-failed",
                    format!(
                        "v{} failed its analysis at {step} ({}% of requests): {why}; over {}s: {} | {}",
                        target.version,
                        live.weight,
                        report.window_s,
                        describe(&report.canary),
                        describe(&report.baseline)
                    ),
                )
            });
        }
        // An instance of the canary that died fails it without waiting for the interval.
        if ticks.is_multiple_of(10) {
            check_instances(ctx, target, manifest).await?;
        }
        if ticks > 0 && ticks.is_multiple_of(PROGRESS_TICKS) {
            progress(ctx, live, &report);
        }
        if !live.holding && tokio::time::Instant::now() >= judge_at {
            if report.canary.requests < min && live.auto && judge_at >= give_up_at {
                return quiet(ctx, live, cfg, target, &report);
            }
            if report.canary.requests < min {
                ctx.report(
                    "canary-waiting",
                    &format!(
                        "{step}: only {} requests reached v{} in {}s, and {min} are needed to judge it (deploy.canary.min_requests): the step goes on; `faas service canary promote -e {}` goes on without the figures, `abort` rolls back",
                        report.canary.requests, target.version, report.window_s, dep.env
                    ),
                    &report,
                );
                judge_at += interval;
                if live.auto {
                    judge_at = judge_at.min(give_up_at);
                }
            } else if live.auto {
                ctx.report(
                    "canary-passed",
                    &format!(
                        "{step} passed: {} | {}",
                        describe(&report.canary),
                        describe(&report.baseline)
                    ),
                    &report,
                );
                return Ok(StepEnd::Next);
            } else {
                live.holding = true;
                publish(ctx, live);
                ctx.report(
                    "canary-holding",
                    &format!(
                        "{step} passed: {} | {}; holding at {}% until `faas service canary promote` (or `abort`)",
                        describe(&report.canary),
                        describe(&report.baseline),
                        live.weight
                    ),
                    &report,
                );
            }
        }
        ticks += 1;
        tokio::time::sleep(TICK).await;
    }
}

/// A step that never saw `min_requests` within `max_wait` ends the deployment the way
/// `on_quiet` says, with the figures it had.
fn quiet(
    ctx: &Ctx<'_>,
    live: &LiveCanary,
    cfg: &faas_spec::manifest::Canary,
    target: &ReleaseRow,
    report: &CanaryReport,
) -> Result<StepEnd, Failure> {
    let step = format!("step {}/{}", live.step + 1, live.steps.len());
    let why = format!(
        "only {} requests reached v{} in {}s at {step} ({}% of requests), and {} are needed to judge it (deploy.canary.min_requests) within deploy.canary.max_wait = {}",
        report.canary.requests,
        target.version,
        report.window_s,
        live.weight,
        cfg.min_requests,
        cfg.max_wait
    );
    match cfg.on_quiet {
        faas_spec::manifest::OnQuiet::Rollback => Err(Failure {
            report: Some(Box::new(report.clone())),
            ..Failure::new(
                "canary-quiet",
                format!("{why}; deploy.canary.on_quiet = \"rollback\""),
            )
        }),
        faas_spec::manifest::OnQuiet::Promote => {
            ctx.report(
                "canary-quiet-promoted",
                &format!(
                    "{why}; deploy.canary.on_quiet = \"promote\": v{} takes every request, judged by its health checks alone",
                    target.version
                ),
                report,
            );
            Ok(StepEnd::Promote)
        }
    }
}

/// The figures so far, to those following the deployment: an event that is not persisted
/// (`seq` 0, kind `canary-progress`); the steps keep the figures that decided.
fn progress(ctx: &Ctx<'_>, live: &LiveCanary, report: &CanaryReport) {
    let short = |f: &SetFigures| {
        format!(
            "v{} {}%: {} req, {} 5xx, p99 {}",
            f.version,
            f.weight,
            f.requests,
            percent(f.error_rate),
            p99(f)
        )
    };
    let step = faas_spec::api::Step {
        seq: 0,
        at: crate::store::now(),
        kind: "canary-progress".into(),
        message: format!(
            "step {}/{}{}, {:.0}s: {} | {}",
            report.step,
            report.steps.len(),
            if live.holding { " held" } else { "" },
            report.window_s,
            short(&report.canary),
            short(&report.baseline)
        ),
        instance: None,
        logs: Vec::new(),
        state: faas_spec::api::DeploymentState::Running,
        canary: Some(report.clone()),
    };
    ctx.p.events.publish(&ctx.dep.id, &step);
}

/// Fails when an instance of `release` has exited.
async fn check_instances(
    ctx: &Ctx<'_>,
    release: &ReleaseRow,
    manifest: &Manifest,
) -> Result<(), Failure> {
    let rows = ctx.p.store.instances(&ctx.dep.service, &ctx.dep.env)?;
    for row in rows.iter().filter(|r| r.release_id == release.id) {
        let container = row
            .container_id
            .clone()
            .unwrap_or_else(|| row.container_name.clone());
        let state = ctx.p.runtime.state(&container).await?;
        if let Some(why) = state.failure() {
            let logs = ctx
                .p
                .runtime
                .logs_tail(&container, super::FAILED_LOG_LINES)
                .await;
            forget_instance(ctx.p, row).await;
            return Err(Failure::of_instance(
                format!("instance {} of v{} failed: {why}", row.id, release.version),
                row.id.clone(),
                logs,
            ));
        }
    }
    let _ = manifest;
    Ok(())
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
async fn retire_others(
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
