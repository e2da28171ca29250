//! `/v1/functions`: a tenant's one-off function runs: start one, list them, follow one (its
//! state, its output), cancel one.

use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use faas_spec::api::LogRecord;
use faas_spec::api::runs::{Run, RunFunction};
use serde::Deserialize;

use super::logs::line;
use super::{ApiJson, Path, Query};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::runs::{log_place, view};
use crate::store::RunRow;
use crate::{AppState, Platform};

/// Runs an image to completion for a tenant; answers once its container runs (or has failed
/// to start).
#[utoipa::path(post, path = "/v1/functions/run", tag = "functions", request_body = RunFunction,
    responses((status = 201, body = Run), (status = 400, body = faas_spec::api::Problem),
        (status = 403, body = faas_spec::api::Problem),
        (status = 404, description = "No such image on the platform's engine", body = faas_spec::api::Problem),
        (status = 422, body = faas_spec::api::Problem)))]
pub async fn run_function(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiJson(body): ApiJson<RunFunction>,
) -> ApiResult<Response> {
    let checked = crate::runs::function::check(&p, &who, &body).await?;
    let run = crate::runs::function::start(&p, checked).await?;
    Ok((StatusCode::CREATED, Json(view(&run))).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Only this tenant's (an admin's view; a member sees only its own).
    pub tenant: Option<String>,
    /// At most this many, newest first (1 to 1000) [default: 50].
    #[serde(default, deserialize_with = "faas_spec::whole::optional_in_query")]
    pub limit: Option<u32>,
}

/// The limit of a listing: 1 to 1000.
pub(super) fn limit_of(limit: Option<u32>) -> ApiResult<u32> {
    match limit.unwrap_or(50) {
        n @ 1..=1000 => Ok(n),
        n => Err(ApiError::bad_request(
            "invalid-limit",
            format!("`limit` is {n}: give from 1 to 1000"),
        )),
    }
}

/// Function runs, newest first.
#[utoipa::path(get, path = "/v1/functions/runs", tag = "functions", params(ListQuery),
    responses((status = 200, body = [Run]), (status = 400, body = faas_spec::api::Problem)))]
pub async fn list_runs(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<Run>>> {
    let limit = limit_of(q.limit)?;
    if let Some(t) = &q.tenant {
        faas_spec::names::check_email(t).map_err(|e| {
            ApiError::bad_request("invalid-tenant", format!("`tenant`: {}", e.message))
        })?;
    }
    let tenant = if who.is_admin() {
        q.tenant
    } else {
        Some(who.tenant.clone())
    };
    let runs = p.store.runs(tenant.as_deref(), Some("function"), limit)?;
    Ok(Json(runs.iter().map(view).collect()))
}

/// A function run of the caller's (any, for an admin).
fn own_run(p: &Platform, who: &Principal, id: &str) -> ApiResult<RunRow> {
    match p.store.run(id)? {
        Some(run) if run.kind == "function" && who.can_see(&run.tenant) => Ok(run),
        _ => Err(
            ApiError::not_found("run-not-found", format!("there is no function run `{id}`"))
                .hint("`GET /v1/functions/runs` lists yours"),
        ),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ShowQuery {
    /// Wait up to this many seconds (at most 60) for the run to end.
    #[serde(default, deserialize_with = "faas_spec::whole::optional_in_query")]
    pub wait: Option<u32>,
}

/// One function run; with `wait`, once it has ended (or the wait is over).
#[utoipa::path(get, path = "/v1/functions/runs/{id}", tag = "functions",
    params(("id" = String, Path), ShowQuery),
    responses((status = 200, body = Run), (status = 404, body = faas_spec::api::Problem)))]
pub async fn show_run(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    Query(q): Query<ShowQuery>,
) -> ApiResult<Json<Run>> {
    let mut run = own_run(&p, &who, &id)?;
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(u64::from(q.wait.unwrap_or(0).min(60)));
    // Over only once it is priced: what it cost is part of its end.
    while !(run.is_over() && run.cost.is_some()) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        run = own_run(&p, &who, &id)?;
    }
    Ok(Json(view(&run)))
}

/// Stops a run (SIGTERM, then SIGKILL); it is recorded as cancelled.
#[utoipa::path(post, path = "/v1/functions/runs/{id}/cancel", tag = "functions",
    params(("id" = String, Path)),
    responses((status = 202, body = Run), (status = 404, body = faas_spec::api::Problem),
        (status = 409, body = faas_spec::api::Problem)))]
pub async fn cancel_run(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let run = own_run(&p, &who, &id)?;
    if !p.store.request_cancel(&id)? {
        return Err(ApiError::conflict(
            "run-over",
            format!("run {id} is not going: it is {}", run.state),
        ));
    }
    let run = own_run(&p, &who, &id)?;
    Ok((StatusCode::ACCEPTED, Json(view(&run))).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct RunLogsQuery {
    /// Keep the stream open until the run ends.
    #[serde(default)]
    pub follow: bool,
}

/// A run's output as NDJSON, stdout and stderr, in order; with `follow`, until it ends.
#[utoipa::path(get, path = "/v1/functions/runs/{id}/logs", tag = "functions",
    params(("id" = String, Path), RunLogsQuery),
    responses((status = 200, description = "One LogRecord per line", content_type = "application/x-ndjson", body = LogRecord),
        (status = 404, body = faas_spec::api::Problem)))]
pub async fn run_logs(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    Query(q): Query<RunLogsQuery>,
) -> ApiResult<Response> {
    let run = own_run(&p, &who, &id)?;
    run_output(&p, &run, q.follow)
}

/// A run's output stream: what the journal holds, then (with `follow`) each new line until the
/// run has ended and its last line is read.
pub(super) fn run_output(p: &AppState, run: &RunRow, follow: bool) -> ApiResult<Response> {
    let (service, env) = log_place(run);
    let journal = p.logs.journal(&service, &env).map_err(ApiError::internal)?;
    let id = run.id.clone();
    let mine = {
        let id = id.clone();
        move |r: &LogRecord| r.instance == id
    };
    let mut live = follow.then(|| journal.subscribe());
    let history = journal.scan(&mine);
    let p = p.clone();
    let stream = async_stream::stream! {
        let mut last = 0u64;
        for r in history {
            last = last.max(r.seq);
            yield Ok::<_, std::convert::Infallible>(line(&r));
        }
        if let Some(live) = live.as_mut() {
            let mut stopping = p.stopping.subscribe();
            loop {
                let over = p.store.run(&id).ok().flatten().is_none_or(|r| r.is_over());
                if over {
                    // Its capture has finished by the time it is recorded as over.
                    for r in journal.scan(|r| r.seq > last && mine(r)) {
                        yield Ok(line(&r));
                    }
                    break;
                }
                let received = tokio::select! {
                    r = live.recv() => Some(r),
                    _ = tokio::time::sleep(Duration::from_millis(200)) => None,
                    _ = stopping.wait_for(|s| *s) => break,
                };
                match received {
                    Some(Ok(r)) if r.seq > last && mine(&r) => {
                        last = r.seq;
                        yield Ok(line(&r));
                    }
                    Some(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {
                        for r in journal.scan(|r| r.seq > last && mine(r)) {
                            last = r.seq;
                            yield Ok(line(&r));
                        }
                    }
                    Some(Err(tokio::sync::broadcast::error::RecvError::Closed)) => break,
                    _ => {}
                }
            }
        }
    };
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}
