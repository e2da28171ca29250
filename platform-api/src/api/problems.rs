//! `/v1/services/{svc}/problems`: a service's problems (open, and those that ended within the
//! span) and the exceptions its code raised, grouped.

use std::time::Duration;

use axum::extract::State;
use axum::{Extension, Json};
use faas_spec::api::observe::ProblemList;
use serde::Deserialize;

use super::deployments::check_env;
use super::services::visible;
use super::{Path, Query};
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::meter::now_us;
use crate::problems::{error_view, view};

/// The longest span asked about: what the store keeps of metrics.
pub const MAX_SPAN: Duration = Duration::from_secs(40 * 86_400);

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SpanQuery {
    /// The environment [default: every one for problems, `prod` for metrics].
    pub env: Option<String>,
    /// How far back, e.g. `1h`, `24h`, `7d` (at most 40d).
    pub since: Option<String>,
}

/// A `since` parameter as a span, with a clear refusal.
pub fn span_of(since: Option<&str>, default: Duration) -> ApiResult<Duration> {
    let Some(text) = since else {
        return Ok(default);
    };
    let span = humantime::parse_duration(text.trim()).map_err(|e| {
        ApiError::bad_request(
            "invalid-since",
            format!("since={text:?} is not a duration: {e}"),
        )
        .hint("write it like 30m, 6h or 7d")
    })?;
    if span.is_zero() || span > MAX_SPAN {
        return Err(ApiError::bad_request(
            "invalid-since",
            format!("since={text:?} is out of range"),
        )
        .hint("ask for a span from 1s to 40d: the platform keeps 40 days"));
    }
    Ok(span)
}

/// The service's open problems, those that ended within `since` (default 7d), and its error
/// groups.
#[utoipa::path(get, path = "/v1/services/{svc}/problems", tag = "services", params(("svc" = String, Path), SpanQuery),
    responses((status = 200, body = ProblemList), (status = 404, body = faas_spec::api::Problem)))]
pub async fn list_problems(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(svc): Path<String>,
    Query(q): Query<SpanQuery>,
) -> ApiResult<Json<ProblemList>> {
    visible(&p, &who, &svc)?;
    if let Some(env) = &q.env {
        check_env(env)?;
    }
    let span = span_of(q.since.as_deref(), Duration::from_secs(7 * 86_400))?;
    let since_us = now_us() - span.as_micros() as i64;
    let rows = p.store.problems(&svc, q.env.as_deref(), since_us, 200)?;
    let errors = p.store.error_groups(&svc, q.env.as_deref())?;
    Ok(Json(ProblemList {
        service: svc,
        problems: rows.iter().map(|r| view(&p, r)).collect(),
        errors: errors.iter().map(error_view).collect(),
    }))
}
