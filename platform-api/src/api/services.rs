//! Services: create, list, show (current release per environment, instances, health, URL) and
//! delete (everything of it, after `?confirm=<name>`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use faas_spec::api::{CreateService, EnvironmentStatus, Instance, ReleaseSummary, Service};
use serde::Deserialize;

use super::{ApiJson, Path, Query};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::store::ServiceRow;
use crate::{AppState, Platform};

/// The service, if this caller may see it; 404 otherwise (another tenant's service is as good
/// as absent).
pub fn visible(p: &Platform, who: &Principal, name: &str) -> ApiResult<ServiceRow> {
    match p.store.service(name)? {
        Some(row) if who.can_see(&row.owner) => Ok(row),
        _ => Err(
            ApiError::not_found("service-not-found", format!("there is no service `{name}`"))
                .hint("`GET /v1/services` lists yours; create one with `POST /v1/services`"),
        ),
    }
}

pub fn instances_of(p: &Platform, service: &str, env: &str) -> ApiResult<Vec<Instance>> {
    let rows = p.store.instances(service, env)?;
    let split = p.router.split(service, env);
    let role = |release: &str| -> Option<String> {
        let split = &*split;
        split.live.as_ref()?;
        let role = match &split.canary {
            Some((canary, weight)) if canary == release => {
                if *weight > 0 {
                    "canary"
                } else {
                    "green"
                }
            }
            _ if split.standby.as_deref() == Some(release) => "standby",
            _ if split.live.as_deref() == Some(release) => "live",
            _ => return None,
        };
        Some(role.to_owned())
    };
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let backend = p.router.backend(service, env, &row.id);
        let version = p.store.release(&row.release_id)?.map_or(0, |r| r.version);
        out.push(Instance {
            id: row.id.clone(),
            release: row.release_id.clone(),
            version,
            container: row
                .container_id
                .clone()
                .unwrap_or(row.container_name.clone()),
            state: if backend.as_ref().is_some_and(|b| b.is_draining()) {
                "draining".into()
            } else {
                row.state.clone()
            },
            healthy: backend.as_ref().is_some_and(|b| b.is_healthy()),
            // Its published port, or (a pod) the address the router sends its requests to.
            address: row
                .host_port
                .map(|port| format!("127.0.0.1:{port}"))
                .or_else(|| backend.as_ref().map(|b| b.addr.to_string())),
            role: role(&row.release_id),
            pod: p.runtime.placement(&row.id),
        });
    }
    Ok(out)
}

/// One environment (checked), or every environment of a service.
pub fn envs_of(p: &Platform, svc: &str, env: Option<String>) -> ApiResult<Vec<String>> {
    match env {
        Some(env) => {
            super::deployments::check_env(&env)?;
            Ok(vec![env])
        }
        None => Ok(p
            .store
            .environments(svc)?
            .into_iter()
            .map(|(e, _)| e)
            .collect()),
    }
}

pub fn service_view(p: &Platform, row: ServiceRow) -> ApiResult<Service> {
    let mut environments = Vec::new();
    for (env, _) in p.store.environments(&row.name)? {
        let release = p
            .store
            .current_release(&row.name, &env)?
            .map(|r| ReleaseSummary {
                id: r.id,
                version: r.version,
                image: r.image_id,
            });
        let traffic = p.store.traffic(&row.name, &env)?;
        environments.push(EnvironmentStatus {
            canary_weight: traffic.canary.map(|(_, weight)| weight),
            standby_until: traffic.standby.map(|(_, until)| until),
            url: p.url(&row.name, &env),
            instances: instances_of(p, &row.name, &env)?,
            deployment: p.store.active_deployment(&row.name, &env)?,
            databases: super::databases::infos(p, &row.name, &env)?,
            cron: super::cron::entries(p, &row.name, &env)?,
            release,
            env,
        });
    }
    Ok(Service {
        name: row.name,
        owner: row.owner,
        created_at: row.created_at,
        environments,
    })
}

/// Creates a service. A member creates services of its own tenant; an admin may name the owner.
#[utoipa::path(post, path = "/v1/services", tag = "services", request_body = CreateService,
    responses((status = 201, body = Service), (status = 409, body = faas_spec::api::Problem)))]
pub async fn create_service(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiJson(body): ApiJson<CreateService>,
) -> ApiResult<(StatusCode, Json<Service>)> {
    faas_spec::names::check_service_name(&body.name).map_err(|e| {
        ApiError::bad_request("invalid-name", e.message)
            .hint(format!("a service name is {}", e.rule))
    })?;
    let owner = match body.owner {
        Some(owner) if owner != who.tenant && !who.is_admin() => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "a member of {} cannot create services for {owner}",
                    who.tenant
                ),
            ));
        }
        Some(owner) => owner,
        None => who.tenant.clone(),
    };
    faas_spec::names::check_email(&owner)
        .map_err(|e| ApiError::bad_request("invalid-owner", e.message).hint(e.rule))?;
    if !p.store.create_service(&body.name, &owner)? {
        let existing = p.store.service(&body.name)?;
        return Err(match existing {
            Some(row) if who.can_see(&row.owner) => ApiError::conflict(
                "service-exists",
                format!("the service `{}` exists already", body.name),
            ),
            _ => ApiError::conflict(
                "name-taken",
                format!("the name `{}` is taken on this platform", body.name),
            )
            .hint("choose another name"),
        });
    }
    let row = visible(&p, &who, &body.name)?;
    Ok((StatusCode::CREATED, Json(service_view(&p, row)?)))
}

/// The services this caller may see.
#[utoipa::path(get, path = "/v1/services", tag = "services", responses((status = 200, body = [Service])))]
pub async fn list_services(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Json<Vec<Service>>> {
    let owner = (!who.is_admin()).then_some(who.tenant.as_str());
    let rows = p.store.services(owner)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(service_view(&p, row)?);
    }
    Ok(Json(out))
}

/// One service: its current release per environment, instances with their health, and URLs.
#[utoipa::path(get, path = "/v1/services/{svc}", tag = "services", params(("svc" = String, Path)),
    responses((status = 200, body = Service), (status = 404, body = faas_spec::api::Problem)))]
pub async fn show_service(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(svc): Path<String>,
) -> ApiResult<Json<Service>> {
    let row = visible(&p, &who, &svc)?;
    Ok(Json(service_view(&p, row)?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DeleteQuery {
    /// The service's name again, to confirm (anything else is refused with 400).
    #[param(required = true)]
    pub confirm: Option<String>,
    /// Drop its databases with their data too (without: detached, their data kept).
    #[serde(default)]
    pub purge: bool,
}

/// Deletes a service: its instances are drained and removed, its history forgotten.
#[utoipa::path(delete, path = "/v1/services/{svc}", tag = "services", params(("svc" = String, Path), DeleteQuery),
    responses((status = 204), (status = 400, body = faas_spec::api::Problem), (status = 404, body = faas_spec::api::Problem)))]
pub async fn delete_service(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(svc): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<StatusCode> {
    let row = visible(&p, &who, &svc)?;
    if q.confirm.as_deref() != Some(row.name.as_str()) {
        return Err(ApiError::bad_request(
            "confirm-required",
            format!("deleting `{svc}` removes all of it"),
        )
        .hint(format!(
            "repeat its name: DELETE /v1/services/{svc}?confirm={svc}"
        )));
    }
    // Stop the deployments driving it, then its instances; its databases are detached
    // (their data kept for a service of the same name) unless purged.
    for (env, _) in p.store.environments(&svc)? {
        p.tear_down(&svc, &env).await?;
        p.logs.remove(&svc, &env);
        super::deployments::release_databases(&p, &svc, &env, q.purge).await?;
    }
    p.store.delete_service(&svc)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct EnvQuery {
    /// The environment, e.g. `prod`.
    pub env: Option<String>,
}

/// The instances of a service in an environment (all environments when `env` is absent).
#[utoipa::path(get, path = "/v1/services/{svc}/instances", tag = "services", params(("svc" = String, Path), EnvQuery),
    responses((status = 200, body = [Instance])))]
pub async fn list_instances(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(svc): Path<String>,
    Query(q): Query<EnvQuery>,
) -> ApiResult<Json<Vec<Instance>>> {
    visible(&p, &who, &svc)?;
    let envs = envs_of(&p, &svc, q.env)?;
    let mut out = Vec::new();
    for env in envs {
        out.extend(instances_of(&p, &svc, &env)?);
    }
    Ok(Json(out))
}
