//! The canary under way in an environment: its live figures, and the commands that move it on
//! (`promote`) or roll it back (`abort`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use faas_spec::Strategy;
use faas_spec::api::{CanaryControl, CanaryStatus};

use super::deployments::check_env;
use super::services::{EnvQuery, visible};
use super::{ApiJson, Path, Query};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::store::DeploymentRow;
use crate::{AppState, Platform, deployer};

/// The unfinished canary deployment of an environment, or 409 that says there is none.
fn running_canary(p: &Platform, svc: &str, env: &str) -> ApiResult<DeploymentRow> {
    let none = || {
        ApiError::conflict(
            "no-canary",
            format!("{svc} has no canary deployment under way in {env}"),
        )
        .hint(format!(
            "start one: faas service deploy -e {env} --strategy canary"
        ))
    };
    let id = p.store.active_deployment(svc, env)?.ok_or_else(none)?;
    let row = p.store.deployment(&id)?.ok_or_else(none)?;
    if row.strategy != Strategy::Canary {
        return Err(ApiError::conflict(
            "no-canary",
            format!(
                "deployment {id} of {svc} ({env}) is a {} deployment, not a canary",
                row.strategy
            ),
        ));
    }
    Ok(row)
}

fn status_of(p: &Platform, row: &DeploymentRow) -> ApiResult<CanaryStatus> {
    let (live, report) = deployer::canary_status(p, &row.id).ok_or_else(|| {
        ApiError::conflict(
            "canary-not-started",
            format!(
                "deployment {} has not reached its first canary step yet",
                row.id
            ),
        )
        .hint("its instances are starting; ask again in a moment")
    })?;
    Ok(CanaryStatus {
        deployment: row.id.clone(),
        service: row.service.clone(),
        env: row.env.clone(),
        auto: live.auto,
        holding: live.holding,
        pending: p.store.command(&row.id)?,
        report,
    })
}

/// The canary under way: its step, weights, and both sets' figures over the step so far.
#[utoipa::path(get, path = "/v1/services/{svc}/canary", tag = "deployments", params(("svc" = String, Path), EnvQuery),
    responses((status = 200, body = CanaryStatus), (status = 409, body = faas_spec::api::Problem)))]
pub async fn canary_status(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(svc): Path<String>,
    Query(q): Query<EnvQuery>,
) -> ApiResult<Json<CanaryStatus>> {
    visible(&p, &who, &svc)?;
    let env = q.env.unwrap_or_else(|| "prod".into());
    check_env(&env)?;
    let row = running_canary(&p, &svc, &env)?;
    Ok(Json(status_of(&p, &row)?))
}

fn command(p: &Platform, svc: &str, body: &CanaryControl, what: &str) -> ApiResult<CanaryStatus> {
    check_env(&body.env)?;
    let row = running_canary(p, svc, &body.env)?;
    // Refused before its first step: there is nothing to promote or abort yet.
    status_of(p, &row)?;
    if !p.store.send_command(&row.id, what)? {
        return Err(ApiError::conflict(
            "no-canary",
            format!("deployment {} has just ended", row.id),
        ));
    }
    tracing::info!(deployment = %row.id, "canary {what} requested");
    status_of(p, &row)
}

/// Moves the canary to its next step now (at the last one, every request goes to it).
#[utoipa::path(post, path = "/v1/services/{svc}/canary/promote", tag = "deployments", params(("svc" = String, Path)),
    request_body = CanaryControl,
    responses((status = 202, body = CanaryStatus), (status = 409, body = faas_spec::api::Problem)))]
pub async fn promote(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(svc): Path<String>,
    ApiJson(body): ApiJson<CanaryControl>,
) -> ApiResult<(StatusCode, Json<CanaryStatus>)> {
    visible(&p, &who, &svc)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(command(&p, &svc, &body, "promote")?),
    ))
}

/// Rolls the canary back now: its weight to 0, its instances stopped.
#[utoipa::path(post, path = "/v1/services/{svc}/canary/abort", tag = "deployments", params(("svc" = String, Path)),
    request_body = CanaryControl,
    responses((status = 202, body = CanaryStatus), (status = 409, body = faas_spec::api::Problem)))]
pub async fn abort(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(svc): Path<String>,
    ApiJson(body): ApiJson<CanaryControl>,
) -> ApiResult<(StatusCode, Json<CanaryStatus>)> {
    visible(&p, &who, &svc)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(command(&p, &svc, &body, "abort")?),
    ))
}
