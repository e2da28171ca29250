//! `/v1/services/{svc}/instances/{id}/…`: restart one instance in place, or prepare a command
//! in it (`faas service debug`).

use std::time::Duration;

use axum::extract::State;
use axum::{Extension, Json};
use faas_spec::api::Instance;
use faas_spec::api::databases::ConnectSession;
use serde::Deserialize;

use super::services::{instances_of, visible};
use super::{ApiJson, Path};
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

/// The service's instance `id`, or 404 that says where they are listed.
fn instance_of(p: &crate::Platform, svc: &str, id: &str) -> ApiResult<crate::store::InstanceRow> {
    p.store
        .all_instances()?
        .into_iter()
        .find(|i| i.id == id && i.service == svc)
        .ok_or_else(|| {
            ApiError::not_found(
                "instance-not-found",
                format!("{svc} has no instance `{id}`"),
            )
            .hint(format!("GET /v1/services/{svc}/instances lists them"))
        })
}

/// `POST …/instances/{id}/exec`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    /// The command and its arguments [default: `sh`].
    #[serde(default)]
    pub command: Vec<String>,
    /// Whether it gets a terminal.
    #[serde(default)]
    pub tty: bool,
}

/// Prepares a command in a running instance (not started: the caller attaches to it on the
/// platform's Docker Engine and starts it, as `faas service debug` does).
#[utoipa::path(post, path = "/v1/services/{svc}/instances/{id}/exec", tag = "services",
    params(("svc" = String, Path), ("id" = String, Path)), request_body = ExecRequest,
    responses((status = 200, body = ConnectSession), (status = 404, body = faas_spec::api::Problem),
        (status = 409, body = faas_spec::api::Problem), (status = 502, body = faas_spec::api::Problem)))]
pub async fn exec_instance(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path((svc, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<ExecRequest>,
) -> ApiResult<Json<ConnectSession>> {
    visible(&p, &who, &svc)?;
    let row = instance_of(&p, &svc, &id)?;
    let container = row
        .container_id
        .clone()
        .unwrap_or(row.container_name.clone());
    let state = p.runtime.state(&container).await?;
    if !state.running {
        return Err(ApiError::conflict(
            "instance-not-running",
            format!("instance {id} of {svc} is not running"),
        )
        .hint(format!("faas service status lists the running ones; faas service logs --instance {id} says why it stopped")));
    }
    let command = if body.command.is_empty() {
        vec!["sh".to_owned()]
    } else {
        body.command
    };
    let exec = p
        .runtime
        .prepare_exec(&container, &command, &[], body.tty)
        .await?;
    Ok(Json(ConnectSession {
        container,
        exec,
        command,
    }))
}
