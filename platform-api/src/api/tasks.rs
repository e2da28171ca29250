//! `/v1/tasks`: run a task definition, follow its runs, cancel one, approve a step.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use faas_spec::api::tasks::{Approve, RunTask, TaskRun};
use serde::Deserialize;

use super::functions::limit_of;
use super::{ApiJson, Path, Query};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::store::{AttemptEnd, TaskRunRow};
use crate::tasks::launcher::{self, LAUNCHER};
use crate::tasks::view;
use crate::{AppState, Platform};

/// Runs a task definition with its input. A definition with a problem (an unknown action, a
/// mapping to an output that does not exist, input that does not fit an action's schema) is
/// refused with each problem's place, and nothing is launched.
#[utoipa::path(post, path = "/v1/tasks", tag = "tasks", request_body = RunTask,
    responses((status = 201, body = TaskRun), (status = 400, body = faas_spec::api::Problem),
        (status = 422, description = "The definition's problems, each with its line and column", body = faas_spec::api::Problem)))]
pub async fn run_task(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiJson(body): ApiJson<RunTask>,
) -> ApiResult<Response> {
    let run = launcher::submit(&p, &who, &body).await?;
    Ok((StatusCode::CREATED, Json(shown(&p, &run)?)).into_response())
}

fn shown(p: &Platform, run: &TaskRunRow) -> ApiResult<TaskRun> {
    Ok(view::task_run(run, &p.store.steps_of(&run.id)?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Only runs in this state (`pending`, `running`, `succeeded`, `failed`, `cancelled`).
    #[param(pattern = "^(pending|running|succeeded|failed|cancelled)$")]
    pub state: Option<String>,
    /// With the launcher tasks (`faas-launch`) that started the others.
    #[serde(default)]
    pub launchers: bool,
    /// At most this many, newest first (1 to 1000) [default: 50].
    #[serde(default, deserialize_with = "faas_spec::whole::optional_in_query")]
    pub limit: Option<u32>,
}

/// The caller's task runs (an admin's: everyone's), newest first.
#[utoipa::path(get, path = "/v1/tasks", tag = "tasks", params(ListQuery),
    responses((status = 200, body = [TaskRun]), (status = 400, body = faas_spec::api::Problem)))]
pub async fn list_tasks(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<TaskRun>>> {
    let limit = limit_of(q.limit)?;
    if let Some(s) = &q.state
        && !["pending", "running", "succeeded", "failed", "cancelled"].contains(&s.as_str())
    {
        return Err(ApiError::bad_request(
            "invalid-state",
            format!("`state` is `{s}`: give pending, running, succeeded, failed or cancelled"),
        ));
    }
    let tenant = (!who.is_admin()).then_some(who.tenant.as_str());
    // Launchers are filtered after the query: ask for enough.
    let fetch = if q.launchers {
        limit
    } else {
        limit.saturating_mul(2).min(2000)
    };
    let runs = p.store.task_runs(tenant, q.state.as_deref(), fetch)?;
    let mut out = Vec::new();
    for run in runs
        .iter()
        .filter(|r| q.launchers || r.task != LAUNCHER)
        .take(limit as usize)
    {
        out.push(shown(&p, run)?);
    }
    Ok(Json(out))
}

fn own_task(p: &Platform, who: &Principal, id: &str) -> ApiResult<TaskRunRow> {
    match p.store.task_run(id)? {
        Some(run) if who.can_see(&run.tenant) => Ok(run),
        _ => Err(
            ApiError::not_found("task-not-found", format!("there is no task run `{id}`"))
                .hint("`GET /v1/tasks` lists yours"),
        ),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ShowQuery {
    /// Wait up to this many seconds (at most 60) for the run to end.
    #[serde(default, deserialize_with = "faas_spec::whole::optional_in_query")]
    pub wait: Option<u32>,
}

/// One task run with its steps; with `wait`, once it has ended (or the wait is over).
#[utoipa::path(get, path = "/v1/tasks/{id}", tag = "tasks", params(("id" = String, Path), ShowQuery),
    responses((status = 200, body = TaskRun), (status = 404, body = faas_spec::api::Problem)))]
pub async fn show_task(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    Query(q): Query<ShowQuery>,
) -> ApiResult<Json<TaskRun>> {
    let mut run = own_task(&p, &who, &id)?;
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(u64::from(q.wait.unwrap_or(0).min(60)));
    while !run.is_over() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        run = own_task(&p, &who, &id)?;
    }
    Ok(Json(shown(&p, &run)?))
}

/// Cancels a task run: it ends as cancelled, and so does the step under way (a worker's
/// result for it is not taken).
#[utoipa::path(post, path = "/v1/tasks/{id}/cancel", tag = "tasks", params(("id" = String, Path)),
    responses((status = 202, body = TaskRun), (status = 404, body = faas_spec::api::Problem),
        (status = 409, body = faas_spec::api::Problem)))]
pub async fn cancel_task(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let run = own_task(&p, &who, &id)?;
    if !p.store.request_task_cancel(&id)? {
        return Err(ApiError::conflict(
            "task-over",
            format!("task run {id} is not going: it is {}", run.state),
        ));
    }
    p.tasks.kick(&id);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut run = own_task(&p, &who, &id)?;
    while !run.is_over() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
        run = own_task(&p, &who, &id)?;
    }
    Ok((StatusCode::ACCEPTED, Json(shown(&p, &run)?)).into_response())
}

/// Approves (or, with `reject`, refuses) a step waiting for a person; the approver's `input`
/// is the step's output, which later steps map from.
#[utoipa::path(post, path = "/v1/tasks/{id}/steps/{step}/approve", tag = "tasks", request_body = Approve,
    params(("id" = String, Path), ("step" = String, Path)),
    responses((status = 200, body = TaskRun), (status = 404, body = faas_spec::api::Problem),
        (status = 409, description = "The step is not waiting for approval", body = faas_spec::api::Problem)))]
pub async fn approve_step(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path((id, step)): Path<(String, String)>,
    ApiJson(body): ApiJson<Approve>,
) -> ApiResult<Json<TaskRun>> {
    let run = own_task(&p, &who, &id)?;
    let steps = p.store.steps_of(&id)?;
    let Some(row) = steps.iter().find(|s| s.name == step) else {
        return Err(ApiError::not_found(
            "step-not-found",
            format!("task run {id} has no step `{step}`"),
        ));
    };
    let launch = match (row.state.as_str(), row.launch.as_deref()) {
        ("approval", Some(l)) => l.to_owned(),
        (state, _) => {
            return Err(ApiError::conflict(
                "not-waiting-for-approval",
                format!("step `{step}` of {id} is {state}, not waiting for approval"),
            ));
        }
    };
    let output = body.input.unwrap_or_else(|| serde_json::json!({}));
    let done = if body.reject {
        p.store.end_attempt(
            &launch,
            AttemptEnd::Failed(&format!("refused by {}", who.tenant)),
        )?
    } else {
        p.store
            .end_attempt(&launch, AttemptEnd::Succeeded(&output))?
    };
    if !done {
        return Err(ApiError::conflict(
            "not-waiting-for-approval",
            format!("step `{step}` of {id} is no longer waiting"),
        ));
    }
    p.tasks.kick(&run.id);
    Ok(Json(shown(&p, &own_task(&p, &who, &id)?)?))
}
