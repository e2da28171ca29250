//! `/v1/services/{svc}/cron`: the `[[cron]]` entries of an environment's current release, their
//! history, and a run now.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use faas_spec::api::runs::{CronEntry, Run};
use serde::Deserialize;

use super::deployments::check_env;
use super::functions::limit_of;
use super::services::visible;
use super::{Path, Query};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::runs::cron::{fire, next_tick, tick_text};
use crate::runs::view;
use crate::{AppState, Platform};

/// The cron entries of an environment's current release, each with its next time and last tick.
pub fn entries(p: &Platform, service: &str, env: &str) -> ApiResult<Vec<CronEntry>> {
    let Some(release) = p.store.current_release(service, env)? else {
        return Ok(Vec::new());
    };
    let manifest = release.manifest().map_err(ApiError::internal)?;
    let now = Utc::now();
    let mut out = Vec::new();
    for e in &manifest.cron {
        // Its latest run, scheduled or by hand.
        let last = p
            .store
            .cron_history(service, env, e.name.as_str(), 1)?
            .into_iter()
            .next();
        out.push(CronEntry {
            name: e.name.to_string(),
            env: env.to_owned(),
            schedule: e.schedule.to_string(),
            timezone: e.timezone.to_string(),
            concurrency: e.concurrency.as_str().to_owned(),
            command: e.command.clone(),
            next: next_tick(e, now).map(tick_text),
            last: last.as_ref().map(view),
        });
    }
    Ok(out)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct EnvQuery {
    /// The environment [default: prod].
    pub env: Option<String>,
}

fn env_of(q: Option<String>) -> ApiResult<String> {
    let env = q.unwrap_or_else(|| "prod".into());
    check_env(&env)?;
    Ok(env)
}

/// The cron entries of an environment.
#[utoipa::path(get, path = "/v1/services/{svc}/cron", tag = "cron",
    params(("svc" = String, Path), EnvQuery),
    responses((status = 200, body = [CronEntry]), (status = 404, body = faas_spec::api::Problem)))]
pub async fn list_cron(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(svc): Path<String>,
    Query(q): Query<EnvQuery>,
) -> ApiResult<Json<Vec<CronEntry>>> {
    visible(&p, &who, &svc)?;
    let env = env_of(q.env)?;
    Ok(Json(entries(&p, &svc, &env)?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct HistoryQuery {
    /// The environment [default: prod].
    pub env: Option<String>,
    /// At most this many ticks, newest first (1 to 1000) [default: 50].
    #[serde(default, deserialize_with = "faas_spec::whole::optional_in_query")]
    pub limit: Option<u32>,
}

/// An entry's ticks, newest first: the runs, and the ticks skipped or missed.
#[utoipa::path(get, path = "/v1/services/{svc}/cron/{name}/history", tag = "cron",
    params(("svc" = String, Path), ("name" = String, Path), HistoryQuery),
    responses((status = 200, body = [Run]), (status = 404, body = faas_spec::api::Problem)))]
pub async fn cron_history(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path((svc, name)): Path<(String, String)>,
    Query(q): Query<HistoryQuery>,
) -> ApiResult<Json<Vec<Run>>> {
    visible(&p, &who, &svc)?;
    let env = env_of(q.env)?;
    let limit = limit_of(q.limit)?;
    Ok(Json(
        p.store
            .cron_history(&svc, &env, &name, limit)?
            .iter()
            .map(view)
            .collect(),
    ))
}

/// Runs an entry now, as a tick of this moment (its concurrency holds: under `forbid` a run
/// still going makes it 409).
#[utoipa::path(post, path = "/v1/services/{svc}/cron/{name}/run", tag = "cron",
    params(("svc" = String, Path), ("name" = String, Path), EnvQuery),
    responses((status = 201, body = Run), (status = 404, body = faas_spec::api::Problem),
        (status = 409, body = faas_spec::api::Problem)))]
pub async fn run_cron(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path((svc, name)): Path<(String, String)>,
    Query(q): Query<EnvQuery>,
) -> ApiResult<Response> {
    let service = visible(&p, &who, &svc)?;
    let env = env_of(q.env)?;
    let release = p.store.current_release(&svc, &env)?.ok_or_else(|| {
        ApiError::not_found("cron-not-found", format!("{svc} has no release in {env}"))
    })?;
    let manifest = release.manifest().map_err(ApiError::internal)?;
    let entry = manifest
        .cron
        .iter()
        .find(|e| e.name.as_str() == name)
        .ok_or_else(|| {
            ApiError::not_found(
                "cron-not-found",
                format!("the release of {svc} in {env} has no cron entry `{name}`"),
            )
            .hint(format!(
                "`GET /v1/services/{svc}/cron?env={env}` lists them"
            ))
        })?;
    // A run by hand has no tick: it never takes a scheduled one's place.
    let run = fire(&p, &service.owner, &release, &manifest, entry, None, true)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::internal("the run by hand was not recorded"))?;
    if run.state == "skipped" {
        return Err(ApiError::conflict(
            "cron-busy",
            run.reason
                .unwrap_or_else(|| "its last run still runs".into()),
        ));
    }
    let run = p.store.run(&run.id)?.unwrap_or(run);
    Ok((StatusCode::CREATED, Json(view(&run))).into_response())
}
