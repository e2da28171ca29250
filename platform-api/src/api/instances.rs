//! `/v1/services/{svc}/instances/{id}/restart`: restarts one instance in place.

use std::time::Duration;

use axum::extract::State;
use axum::{Extension, Json};
use faas_spec::api::Instance;

use super::Path;
use super::services::{instances_of, visible};
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};

/// Restarts an instance's process (SIGTERM, then SIGKILL after 10 s); the router takes it out
/// while its health check fails and back once it passes.
#[utoipa::path(post, path = "/v1/services/{svc}/instances/{id}/restart", tag = "services",
    params(("svc" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = Instance), (status = 404, body = faas_spec::api::Problem), (status = 409, body = faas_spec::api::Problem), (status = 502, body = faas_spec::api::Problem)))]
pub async fn restart_instance(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path((svc, id)): Path<(String, String)>,
) -> ApiResult<Json<Instance>> {
    visible(&p, &who, &svc)?;
    let row = p
        .store
        .all_instances()?
        .into_iter()
        .find(|i| i.id == id && i.service == svc)
        .ok_or_else(|| {
            ApiError::not_found(
                "instance-not-found",
                format!("{svc} has no instance `{id}`"),
            )
            .hint(format!("GET /v1/services/{svc}/instances lists them"))
        })?;
    if row.state == "draining" {
        return Err(ApiError::conflict(
            "instance-draining",
            format!("instance {id} is being stopped by a deployment"),
        ));
    }
    let container = row
        .container_id
        .clone()
        .unwrap_or(row.container_name.clone());
    p.runtime
        .restart(&container, Duration::from_secs(10))
        .await?;
    p.problems.notify(&svc);
    let view = instances_of(&p, &svc, &row.env)?
        .into_iter()
        .find(|i| i.id == id)
        .ok_or_else(|| ApiError::internal(format!("instance {id} vanished while restarting")))?;
    Ok(Json(view))
}
