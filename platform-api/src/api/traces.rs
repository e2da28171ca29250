//! `/v1/traces/{id}`: one trace's hops through the router.

use axum::extract::State;
use axum::{Extension, Json};
use faas_spec::api::observe::Trace;

use super::Path;
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::router::spans::is_trace_id_shape;

/// The hops of a trace (of the services the caller may see), in the order they started.
#[utoipa::path(get, path = "/v1/traces/{id}", tag = "services",
    params(("id" = String, Path, pattern = "^[0-9a-f]{32}$", description = "32 lowercase hex digits, as in a traceparent")),
    responses((status = 200, body = Trace), (status = 400, body = faas_spec::api::Problem), (status = 404, body = faas_spec::api::Problem)))]
pub async fn show_trace(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<Trace>> {
    if !is_trace_id_shape(&id) {
        return Err(ApiError::bad_request(
            "invalid-trace-id",
            format!("`{id}` is not a trace id"),
        )
        .hint("a trace id is 32 lowercase hex digits: the second part of a traceparent, or trace_id in a log line"));
    }
    let trace = crate::traces::read(&p, &who, &id)
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            ApiError::not_found("trace-not-found", format!("no trace {id} is kept"))
                .hint("traces are kept 7 days; the router starts one for every request")
        })?;
    Ok(Json(trace))
}
