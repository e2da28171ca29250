//! The cron scheduler: each `[[cron]]` entry of an environment's current release runs its
//! command in a one-off container of that release (its image, variables, secrets and
//! databases) at the entry's times, read in its time zone.
//!
//! Each tick is recorded once (UNIQUE over service, environment, entry and time) before it is
//! launched, so no crash launches one twice. After downtime only the latest missed tick is
//! considered, and it runs only within the entry's `starting_deadline`; otherwise it is recorded
//! as missed. Missed ticks are never replayed one by one. `forbid` records a tick that meets
//! the last run still going as skipped (naming it), `replace` cancels that run first, `allow`
//! runs beside it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use faas_spec::{Concurrency, CronJob, Manifest};

use crate::Platform;
use crate::meter::now_us;
use crate::store::{ReleaseRow, RunRow};

/// The longest the scheduler sleeps: new releases and their entries are seen this soon.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// How long a cron run may take unless its entry says.
const DEFAULT_TIMEOUT_MS: i64 = 3600 * 1000;

fn parse_rfc3339(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `t` without its fraction of a second: schedules are of whole seconds (croner keeps the
/// fraction of the time it starts from).
fn whole_second(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

/// The entry's latest time at or before `now`, in UTC.
pub fn previous_tick(entry: &CronJob, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let cron = faas_spec::names::parse_cron(entry.schedule.as_str()).ok()?;
    let local = whole_second(now).with_timezone(&entry.timezone.tz());
    cron.find_previous_occurrence(&local, true)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The entry's first time after `now`, in UTC.
pub fn next_tick(entry: &CronJob, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let cron = faas_spec::names::parse_cron(entry.schedule.as_str()).ok()?;
    let local = whole_second(now).with_timezone(&entry.timezone.tz());
    cron.find_next_occurrence(&local, false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// What to do with an entry at `now`: the tick due (the latest one after `since`), and
/// whether it is still within the starting deadline.
pub fn due(
    entry: &CronJob,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<(DateTime<Utc>, bool)> {
    let tick = previous_tick(entry, now).filter(|t| *t > since)?;
    let late = (now - tick).to_std().unwrap_or_default();
    Some((tick, late <= entry.starting_deadline.as_std()))
}

/// A tick's text as recorded: RFC 3339 UTC, to the second.
pub fn tick_text(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Runs the scheduler until the daemon stops.
pub async fn run(p: Arc<Platform>) {
    let mut stopping = p.stopping.subscribe();
    loop {
        let sleep = match schedule(&p).await {
            Ok(next) => next
                .and_then(|t| (t - Utc::now()).to_std().ok())
                .map_or(MAX_SLEEP, |d| d.min(MAX_SLEEP)),
            Err(e) => {
                tracing::warn!("cron: {e:#}");
                MAX_SLEEP
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = stopping.changed() => return,
        }
    }
}

/// One pass: every entry of every current release; the ticks due are recorded and launched.
/// Returns the earliest next tick.
async fn schedule(p: &Arc<Platform>) -> anyhow::Result<Option<DateTime<Utc>>> {
    if !p.runtime.status().available || !p.runs.adopted() {
        return Ok(None);
    }
    let now = Utc::now();
    let mut earliest: Option<DateTime<Utc>> = None;
    for service in p.store.services(None)? {
        for (env, _) in p.store.environments(&service.name)? {
            let Some(release) = p.store.current_release(&service.name, &env)? else {
                continue;
            };
            let Ok(manifest) = release.manifest() else {
                continue;
            };
            for entry in &manifest.cron {
                if let Some(t) = next_tick(entry, now) {
                    earliest = Some(earliest.map_or(t, |e| e.min(t)));
                }
                let since = match p
                    .store
                    .latest_tick(&service.name, &env, entry.name.as_str())?
                {
                    Some(last) => last.tick.as_deref().and_then(parse_rfc3339),
                    None => None,
                }
                .or_else(|| parse_rfc3339(&release.created_at))
                .unwrap_or(now);
                if let Some((tick, in_time)) = due(entry, since, now) {
                    fire(
                        p,
                        &service.owner,
                        &release,
                        &manifest,
                        entry,
                        Some(tick),
                        in_time,
                    )
                    .await?;
                }
            }
        }
    }
    Ok(earliest)
}

/// A tick (None: a run by hand, now): recorded once, then launched (or recorded as skipped or
/// missed).
#[allow(clippy::too_many_arguments)]
pub async fn fire(
    p: &Arc<Platform>,
    tenant: &str,
    release: &ReleaseRow,
    manifest: &Manifest,
    entry: &CronJob,
    tick: Option<DateTime<Utc>>,
    in_time: bool,
) -> anyhow::Result<Option<RunRow>> {
    let name = entry.name.as_str();
    let going: Vec<RunRow> = p
        .store
        .cron_history(&release.service, &release.env, name, 50)?
        .into_iter()
        .filter(|r| !r.is_over())
        .collect();
    let mut run = RunRow {
        id: super::new_id(),
        kind: "cron".into(),
        tenant: tenant.to_owned(),
        service: Some(release.service.clone()),
        env: Some(release.env.clone()),
        release_id: Some(release.id.clone()),
        entry: Some(name.to_owned()),
        tick: tick.map(tick_text),
        image: release.image_id.clone(),
        image_ref: release.image_ref.clone(),
        command: entry.command.clone(),
        cpu: manifest.size.cpu,
        memory: manifest.size.memory.bytes(),
        timeout_ms: entry.timeout.map_or(DEFAULT_TIMEOUT_MS, |t| {
            i64::try_from(t.as_millis()).unwrap_or(i64::MAX)
        }),
        state: "pending".into(),
        ..Default::default()
    };
    if !in_time {
        run.state = "missed".into();
        run.reason = Some(format!(
            "the platform was down at its time; later than its starting deadline ({})",
            entry.starting_deadline
        ));
        run.finished_us = Some(now_us());
    } else if entry.concurrency == Concurrency::Forbid
        && let Some(last) = going.first()
    {
        run.state = "skipped".into();
        run.reason = Some(format!(
            "{} was still running (concurrency = \"forbid\")",
            last.id
        ));
        run.finished_us = Some(now_us());
    }
    if !p.store.record_run(&run)? {
        return Ok(None);
    }
    crate::deployer::crash_point("cron-recorded");
    if run.state != "pending" {
        tracing::info!(entry = name, tick = ?run.tick, state = %run.state, "cron: {}", run.reason.clone().unwrap_or_default());
        return Ok(Some(run));
    }
    if entry.concurrency == Concurrency::Replace {
        for other in &going {
            p.store.request_cancel(&other.id)?;
        }
    }
    let env = environment_of(p, &run).map_err(|e| anyhow::anyhow!(e))?;
    if let Err(why) = super::launch(p, &run, env).await {
        tracing::warn!(run = %run.id, entry = name, "cron: {why}");
    }
    crate::deployer::crash_point("cron-launched");
    Ok(Some(run))
}

/// A cron run's variables: its release's, the environment's secrets of that release and its
/// databases' URLs, then the platform's.
pub fn environment_of(p: &Platform, run: &RunRow) -> Result<Vec<(String, String)>, String> {
    let (Some(service), Some(env), Some(release_id)) = (&run.service, &run.env, &run.release_id)
    else {
        return Err("a cron run without its release".into());
    };
    let release = p
        .store
        .release(release_id)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("release {release_id} is gone"))?;
    let manifest = release.manifest().map_err(|e| e.to_string())?;
    let mut vars: Vec<(String, String)> = manifest
        .run
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vars.extend(
        p.secret_env(service, env, release.secrets_version)
            .map_err(|e| format!("cannot open the secrets: {e}"))?,
    );
    vars.extend(
        crate::databases::provision::instance_env(p, service, env, &manifest)
            .map_err(|e| format!("cannot give it its databases: {e}"))?,
    );
    vars.push(("FAAS_SERVICE".into(), service.clone()));
    vars.push(("FAAS_ENV".into(), env.clone()));
    vars.push(("FAAS_RELEASE".into(), release.id.clone()));
    vars.push(("FAAS_RUN".into(), run.id.clone()));
    vars.push(("FAAS_CRON".into(), run.entry.clone().unwrap_or_default()));
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(schedule: &str, tz: &str, deadline: &str) -> CronJob {
        toml::from_str(&format!(
            "name = \"job\"\nschedule = \"{schedule}\"\ncommand = [\"true\"]\ntimezone = \"{tz}\"\nstarting_deadline = \"{deadline}\"\n"
        ))
        .unwrap()
    }

    fn at(text: &str) -> DateTime<Utc> {
        parse_rfc3339(text).unwrap()
    }

    #[test]
    fn only_the_latest_missed_tick_is_due_and_only_within_its_deadline() {
        let e = entry("*/5 * * * *", "UTC", "1m");
        // Down from 10:02 to 10:21: the ticks of 10:05, 10:10, 10:15 and 10:20 were missed.
        let (tick, in_time) =
            due(&e, at("2026-12-05T10:00:00Z"), at("2026-12-05T10:20:30Z")).unwrap();
        assert_eq!(tick_text(tick), "2026-12-05T10:20:00Z");
        assert!(in_time);
        let (_, in_time) = due(&e, at("2026-12-05T10:00:00Z"), at("2026-12-05T10:21:30Z")).unwrap();
        assert!(!in_time, "90 s late, the deadline is 60 s");
        assert!(due(&e, at("2026-12-05T10:20:00Z"), at("2026-12-05T10:24:59Z")).is_none());
    }

    #[test]
    fn a_schedule_is_read_in_its_time_zone_and_may_have_seconds() {
        let e = entry("0 9 * * *", "Europe/Paris", "1m");
        // 09:00 in Paris in December is 08:00 UTC.
        let next = next_tick(&e, at("2026-12-05T07:00:00Z")).unwrap();
        assert_eq!(tick_text(next), "2026-12-05T08:00:00Z");
        // In July, 07:00 UTC.
        let next = next_tick(&e, at("2026-07-05T05:00:00Z")).unwrap();
        assert_eq!(tick_text(next), "2026-07-05T07:00:00Z");
        let e = entry("*/2 * * * * *", "UTC", "1m");
        let next = next_tick(&e, at("2026-12-05T07:00:01Z")).unwrap();
        assert_eq!(tick_text(next), "2026-12-05T07:00:02Z");
        // Times are whole seconds, whatever the fraction of now.
        let next = next_tick(&e, at("2026-12-05T07:00:01.500Z")).unwrap();
        assert_eq!(next, at("2026-12-05T07:00:02Z"));
        let prev = previous_tick(&e, at("2026-12-05T07:00:02.300Z")).unwrap();
        assert_eq!(prev, at("2026-12-05T07:00:02Z"));
    }
}
