//! The canary strategy: the new release grows beside the old one step by step
//! (`deploy.canary.steps`), its instances in proportion to its weight. Each step is observed for
//! `interval`; the router's own figures for both releases decide. A breach rolls back at once;
//! too few requests extend the step, up to `max_wait`, after which `on_quiet` rolls back or
//! promotes; with `auto = false` (or `--manual`) every step holds until promoted. Every weight is
//! written to the store before the router applies it, so a restarted daemon resumes the step.

use std::time::{Duration, Instant};

use faas_spec::Manifest;
use faas_spec::api::{CanaryReport, SetFigures};

use super::traffic::{end_standby, previous_set, retire_others};
use super::{Ctx, Failure, converge_to, forget_instance, manifest_of};
use crate::Platform;
use crate::router::metrics::Snapshot;
use crate::router::pool::Split;
use crate::store::ReleaseRow;

/// How often a canary step looks at commands, figures and its instances.
const TICK: Duration = Duration::from_millis(100);
/// How often (in ticks) a canary step sends its figures so far to those following it.
const PROGRESS_TICKS: u32 = 10;

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

/// A deployment's canary is over: its live state goes.
pub fn forget(p: &Platform, deployment: &str) {
    p.canaries
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(deployment);
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
