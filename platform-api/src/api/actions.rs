//! `/v1/actions`: the action registry (workers beat, tenants list theirs) and what workers do
//! with a launch: claim it, post its result.

use axum::extract::State;
use axum::{Extension, Json};
use faas_spec::api::tasks::{
    Action, Claim, Heartbeat, HeartbeatAck, Launch, LaunchResult, outcome,
};

use super::{ApiJson, Path};
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::store::{StepRow, TaskRunRow};
use crate::tasks::{launch_of, record_result, registry};

/// A worker of an action says it is alive; the action is the caller's tenant's. An action is
/// available while one of its workers beats.
#[utoipa::path(post, path = "/v1/actions/heartbeat", tag = "tasks", request_body = Heartbeat,
    responses((status = 200, body = HeartbeatAck), (status = 400, body = faas_spec::api::Problem),
        (status = 409, description = "Another action uses the queue", body = faas_spec::api::Problem),
        (status = 422, body = faas_spec::api::Problem)))]
pub async fn heartbeat(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiJson(body): ApiJson<Heartbeat>,
) -> ApiResult<Json<HeartbeatAck>> {
    Ok(Json(registry::beat(&p, &who.tenant, &body)?))
}

/// The caller's actions (an admin's: every tenant's), with the built-in ones, each with its
/// state and last beat.
#[utoipa::path(get, path = "/v1/actions", tag = "tasks",
    responses((status = 200, body = [Action])))]
pub async fn list_actions(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Json<Vec<Action>>> {
    let tenant = (!who.is_admin()).then_some(who.tenant.as_str());
    Ok(Json(registry::actions(&p, tenant)?))
}

/// A launch of the caller's, with its run and step, if its token is right.
fn own_launch(
    p: &AppState,
    who: &Principal,
    id: &str,
    token: Option<&str>,
) -> ApiResult<(TaskRunRow, StepRow)> {
    let not_found = || {
        ApiError::not_found(
            "launch-not-found",
            format!("there is no launch `{id}` of yours"),
        )
    };
    let step = p.store.step_by_launch(id)?.ok_or_else(not_found)?;
    let run = p.store.task_run(&step.run)?.ok_or_else(not_found)?;
    if !who.can_see(&run.tenant) {
        return Err(not_found());
    }
    if let Some(token) = token
        && p.tasks.token(p, id) != token
    {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "wrong-launch-token",
            format!("the token does not belong to launch `{id}`"),
        )
        .hint("send back the `token` of the launch you received"));
    }
    Ok((run, step))
}

/// A worker takes a launch before it works on it: 200 and the launch when it is this worker's
/// to run; 409 when it is not (taken by another, superseded by a later attempt, or over): then
/// drop it.
#[utoipa::path(post, path = "/v1/actions/launches/{id}/claim", tag = "tasks", request_body = Claim,
    params(("id" = String, Path)),
    responses((status = 200, body = Launch), (status = 404, body = faas_spec::api::Problem),
        (status = 409, body = faas_spec::api::Problem)))]
pub async fn claim(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Claim>,
) -> ApiResult<Json<Launch>> {
    let (run, step) = own_launch(&p, &who, &id, None)?;
    if step.launch.as_deref() != Some(id.as_str()) {
        return Err(ApiError::conflict(
            "launch-superseded",
            format!("launch `{id}` is no longer its step's current attempt"),
        ));
    }
    let taken = p.store.claim_launch(&id, &body.worker)?;
    let (run, step) = if taken {
        own_launch(&p, &who, &id, None)?
    } else {
        (run, step)
    };
    match (taken, step.state.as_str(), step.worker.as_deref()) {
        (true, ..) => Ok(Json(launch_of(&p, &run, &step))),
        (false, "running", Some(w)) => Err(ApiError::conflict(
            "launch-claimed",
            format!("launch `{id}` is being run by worker `{w}`"),
        )),
        (false, state, _) => Err(ApiError::conflict(
            "launch-over",
            format!("launch `{id}` is {state}"),
        )),
    }
}

/// A worker's result of a launch (the HTTP way; RabbitMQ workers may publish it to the
/// results queue instead). 200 when it was stored; 409 when the attempt is no longer current.
#[utoipa::path(post, path = "/v1/actions/launches/{id}/result", tag = "tasks", request_body = LaunchResult,
    params(("id" = String, Path)),
    responses((status = 200, body = faas_spec::api::tasks::StepRun), (status = 403, body = faas_spec::api::Problem),
        (status = 404, body = faas_spec::api::Problem), (status = 409, body = faas_spec::api::Problem)))]
pub async fn post_result(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<LaunchResult>,
) -> ApiResult<Json<faas_spec::api::tasks::StepRun>> {
    own_launch(&p, &who, &id, Some(&body.token))?;
    let Some(outcome) = outcome(body.output, body.error) else {
        return Err(ApiError::unprocessable(
            "empty-result",
            "a result has `output` or `error`",
        ));
    };
    let stored = record_result(&p, &id, outcome, body.worker.as_deref())
        .await
        .map_err(ApiError::internal)?;
    if !stored {
        return Err(ApiError::conflict(
            "launch-over",
            format!("launch `{id}` is no longer going: the result was not taken"),
        ));
    }
    let (run, step) = own_launch(&p, &who, &id, None)?;
    let view = crate::tasks::view::task_run(&run, std::slice::from_ref(&step));
    Ok(Json(
        view.steps
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::internal("no step"))?,
    ))
}
