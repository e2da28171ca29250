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

/// The longest span asked about (the store keeps 40 days of hour points).
pub const MAX_SPAN: Duration = Duration::from_secs(42 * 86_400);
/// What `since` accepts: a whole number of seconds, minutes, hours or days, up to 42 days.
pub const SINCE_PATTERN: &str =
    "^([1-9][0-9]{0,5}s|[1-9][0-9]{0,3}m|[1-9][0-9]{0,2}h|([1-9]|[1-3][0-9]|4[0-2])d)$";

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SpanQuery {
    /// The environment [default: every one for problems, `prod` for metrics].
    pub env: Option<String>,
    /// How far back, e.g. `30m`, `24h`, `7d` (at most 42d).
    #[param(
        pattern = "^([1-9][0-9]{0,5}s|[1-9][0-9]{0,3}m|[1-9][0-9]{0,2}h|([1-9]|[1-3][0-9]|4[0-2])d)$"
    )]
    pub since: Option<String>,
}

/// A `since` parameter as a span, with a clear refusal.
pub fn span_of(since: Option<&str>, default: Duration) -> ApiResult<Duration> {
    static PATTERN: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    let Some(text) = since else {
        return Ok(default);
    };
    let pattern = PATTERN.get_or_init(|| regex::Regex::new(SINCE_PATTERN).ok());
    let refused = || {
        ApiError::bad_request("invalid-since", format!("since={text:?} is not a span"))
            .hint("write a whole number of s, m, h or d, like 30m, 6h or 7d (at most 42d)")
    };
    if !pattern.as_ref().is_some_and(|re| re.is_match(text)) {
        return Err(refused());
    }
    let span = humantime::parse_duration(text).map_err(|_| refused())?;
    if span > MAX_SPAN {
        return Err(refused());
    }
    Ok(span)
}

/// The service's open problems, those that ended within `since` (default 7d), and its error
/// groups.
#[utoipa::path(get, path = "/v1/services/{svc}/problems", tag = "services", params(("svc" = String, Path), SpanQuery),
    responses((status = 200, body = ProblemList), (status = 400, body = faas_spec::api::Problem), (status = 404, body = faas_spec::api::Problem)))]
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
