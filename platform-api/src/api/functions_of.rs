//! `/v1/services/{svc}/functions`: what a python-function service serves, as its runtime
//! describes it (`GET /functions` on one of its instances): the source of `faas codegen client`.

use std::time::Duration;

use axum::extract::State;
use axum::{Extension, Json};

use super::dependencies::AddressQuery;
use super::deployments::check_env;
use super::services::{instances_of, visible};
use super::{Path, Query};
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};

/// The functions a service's environment serves, with their parameters, as its runtime says.
#[utoipa::path(get, path = "/v1/services/{svc}/functions", tag = "services", params(("svc" = String, Path), AddressQuery),
    responses((status = 200, description = "the runtime's description: {\"functions\": [{name, path, doc, params: [{name, required, type}]}]}", body = Object),
        (status = 404, body = faas_spec::api::Problem), (status = 409, body = faas_spec::api::Problem), (status = 502, body = faas_spec::api::Problem)))]
pub async fn service_functions(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(svc): Path<String>,
    Query(q): Query<AddressQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    visible(&p, &who, &svc)?;
    let env = q.env.unwrap_or_else(|| "prod".into());
    check_env(&env)?;
    let instance = instances_of(&p, &svc, &env)?
        .into_iter()
        .find(|i| i.healthy)
        .ok_or_else(|| {
            ApiError::conflict(
                "no-healthy-instance",
                format!("{svc} has no healthy instance in {env} to describe its functions"),
            )
            .hint(format!("deploy it: faas service deploy -e {env}"))
        })?;
    let backend = p.router.backend(&svc, &env, &instance.id).ok_or_else(|| {
        ApiError::conflict(
            "no-healthy-instance",
            format!("instance {} of {svc} takes no requests now", instance.id),
        )
    })?;
    let unreachable = |why: String| {
        ApiError::new(
            axum::http::StatusCode::BAD_GATEWAY,
            "no-function-description",
            format!("{svc} ({env}) did not describe its functions at GET /functions: {why}"),
        )
        .hint("only services on the python-function runtime describe their functions")
    };
    let answer = reqwest::Client::new()
        .get(format!("http://{}/functions", backend.addr))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    if !answer.status().is_success() {
        return Err(unreachable(format!("it answered {}", answer.status())));
    }
    let description: serde_json::Value = answer
        .json()
        .await
        .map_err(|e| unreachable(format!("not JSON: {e}")))?;
    if !description["functions"].is_array() {
        return Err(unreachable("no `functions` list in its answer".into()));
    }
    Ok(Json(description))
}
