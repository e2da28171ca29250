//! `/v1/services/{svc}/metrics`: an environment's golden figures per release over a span, per
//! function where the service exposes metrics, and their series.

use std::time::Duration;

use axum::extract::State;
use axum::{Extension, Json};
use faas_spec::api::observe::ServiceMetrics;

use super::deployments::check_env;
use super::problems::{SpanQuery, span_of};
use super::services::visible;
use super::{Path, Query};
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};

/// Requests/s, 5xx ratio, p50/p95/p99, CPU and memory per release over `since` (default 1h).
#[utoipa::path(get, path = "/v1/services/{svc}/metrics", tag = "services", params(("svc" = String, Path), SpanQuery),
    responses((status = 200, body = ServiceMetrics), (status = 400, body = faas_spec::api::Problem), (status = 404, body = faas_spec::api::Problem)))]
pub async fn service_metrics(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(svc): Path<String>,
    Query(q): Query<SpanQuery>,
) -> ApiResult<Json<ServiceMetrics>> {
    visible(&p, &who, &svc)?;
    let env = q.env.unwrap_or_else(|| "prod".into());
    check_env(&env)?;
    let span = span_of(q.since.as_deref(), Duration::from_secs(3600))?;
    let metrics =
        crate::series::query::service_metrics(&p, &svc, &env, span).map_err(ApiError::internal)?;
    Ok(Json(metrics))
}
