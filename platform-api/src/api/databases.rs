//! `/v1/services/{svc}/databases`: a service's databases per environment (never a password),
//! their rotation, backup, restore, interactive session and destruction.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use faas_spec::api::databases::{ConnectRequest, ConnectSession, DatabaseInfo, Rotation};
use faas_spec::{Manifest, Strategy};
use serde::Deserialize;

use super::deployments::{check_env, in_progress, start};
use super::services::visible;
use super::{ApiJson, Path, Query};
use crate::auth::Principal;
use crate::databases::admin::next_login;
use crate::databases::provision::{engine_of, logins, seal_login};
use crate::error::{ApiError, ApiResult};
use crate::store::DatabaseRow;
use crate::{AppState, Platform};

/// How the API shows a database; `manifest` is the environment's current release's.
pub fn info(p: &Platform, row: &DatabaseRow, manifest: Option<&Manifest>) -> DatabaseInfo {
    let engine = engine_of(row);
    let (host, port) = p.databases.service_addr(p, engine);
    let variables = manifest
        .map(|m| {
            m.database_env_names()
                .into_iter()
                .filter(|(_, name)| name.as_str() == row.name)
                .map(|(var, _)| var)
                .collect()
        })
        .unwrap_or_default();
    DatabaseInfo {
        name: row.name.clone(),
        env: row.env.clone(),
        engine: row.engine.clone(),
        provider: row.provider.clone(),
        state: row.state.clone(),
        principal: row.principal.clone(),
        login: row.login.0.clone(),
        server: format!("{host}:{port}"),
        variables,
        rotating: row.old_login.is_some(),
        created_at: row.created_at.clone(),
        updated_at: row.updated_at.clone(),
    }
}

/// The manifest of an environment's current release, if it has one.
fn current_manifest(p: &Platform, service: &str, env: &str) -> ApiResult<Option<Manifest>> {
    Ok(p.store
        .current_release(service, env)?
        .and_then(|r| r.manifest().ok()))
}

/// The databases of one environment of a service, as its status shows them.
pub fn infos(p: &Platform, service: &str, env: &str) -> ApiResult<Vec<DatabaseInfo>> {
    let manifest = current_manifest(p, service, env)?;
    Ok(p.store
        .databases(service, Some(env))?
        .iter()
        .map(|row| info(p, row, manifest.as_ref()))
        .collect())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// The environment (every environment's when absent).
    pub env: Option<String>,
}

/// The databases of a service, by environment and name.
#[utoipa::path(get, path = "/v1/services/{svc}/databases", tag = "databases",
    params(("svc" = String, Path), ListQuery),
    responses((status = 200, body = [DatabaseInfo]), (status = 404, body = faas_spec::api::Problem)))]
pub async fn list_databases(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(svc): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<DatabaseInfo>>> {
    visible(&p, &who, &svc)?;
    let envs = super::services::envs_of(&p, &svc, q.env)?;
    let mut out = Vec::new();
    for env in envs {
        out.extend(infos(&p, &svc, &env)?);
    }
    Ok(Json(out))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct EnvQuery {
    /// The environment.
    pub env: String,
}

/// A database of a service the caller may see.
fn visible_row(
    p: &Platform,
    who: &Principal,
    svc: &str,
    env: &str,
    name: &str,
) -> ApiResult<DatabaseRow> {
    visible(p, who, svc)?;
    row_of(p, svc, env, name)
}

fn row_of(p: &Platform, svc: &str, env: &str, name: &str) -> ApiResult<DatabaseRow> {
    check_env(env)?;
    p.store.database(svc, env, name)?.ok_or_else(|| {
        ApiError::not_found(
            "database-not-found",
            format!("{svc} has no database `{name}` in {env}"),
        )
        .hint(format!("`GET /v1/services/{svc}/databases?env={env}` lists them; a database is made by the first deploy that declares it in app.toml"))
    })
}

fn server_failed(why: String) -> ApiError {
    ApiError::new(StatusCode::BAD_GATEWAY, "database-server-error", why)
}

/// One database of an environment.
#[utoipa::path(get, path = "/v1/services/{svc}/databases/{name}", tag = "databases",
    params(("svc" = String, Path), ("name" = String, Path), EnvQuery),
    responses((status = 200, body = DatabaseInfo), (status = 404, body = faas_spec::api::Problem)))]
pub async fn show_database(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path((svc, name)): Path<(String, String)>,
    Query(q): Query<EnvQuery>,
) -> ApiResult<Json<DatabaseInfo>> {
    let row = visible_row(&p, &who, &svc, &q.env, &name)?;
    let manifest = current_manifest(&p, &svc, &q.env)?;
    Ok(Json(info(&p, &row, manifest.as_ref())))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DestroyQuery {
    /// The environment.
    pub env: String,
    /// The database's name again, to confirm (anything else is refused with 400).
    #[param(required = true)]
    pub confirm: Option<String>,
}

/// Drops a database and its data. Refused while the environment's release declares it.
#[utoipa::path(delete, path = "/v1/services/{svc}/databases/{name}", tag = "databases",
    params(("svc" = String, Path), ("name" = String, Path), DestroyQuery),
    responses((status = 204), (status = 400, body = faas_spec::api::Problem),
        (status = 404, body = faas_spec::api::Problem), (status = 409, body = faas_spec::api::Problem)))]
pub async fn destroy_database(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path((svc, name)): Path<(String, String)>,
    Query(q): Query<DestroyQuery>,
) -> ApiResult<StatusCode> {
    let row = visible_row(&p, &who, &svc, &q.env, &name)?;
    if q.confirm.as_deref() != Some(name.as_str()) {
        return Err(ApiError::bad_request(
            "confirm-required",
            format!(
                "destroying database `{name}` of {svc} ({}) deletes its data for good",
                q.env
            ),
        )
        .hint(format!(
            "repeat its name: `faas service db destroy {name} -e {} --confirm {name}`",
            q.env
        )));
    }
    let declared = current_manifest(&p, &svc, &q.env)?
        .is_some_and(|m| m.databases.keys().any(|n| n.as_str() == name));
    if declared {
        return Err(ApiError::conflict(
            "database-in-use",
            format!("{svc} ({}) runs a release that uses database `{name}`", q.env),
        )
        .hint("remove it from app.toml and deploy (that detaches it, keeping its data), then destroy it"));
    }
    if let Some(running) = p.store.active_deployment(&svc, &q.env)? {
        return Err(in_progress(&svc, &q.env, running));
    }
    crate::databases::provision::destroy(&p, &row)
        .await
        .map_err(server_failed)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rotates a database's login: a new password (for PostgreSQL and RabbitMQ a second login)
/// opens it beside the old one, the environment rolls to a new release of its current one
/// carrying it, and once that deployment has succeeded the old login no longer opens.
#[utoipa::path(post, path = "/v1/services/{svc}/databases/{name}/rotate", tag = "databases",
    params(("svc" = String, Path), ("name" = String, Path), EnvQuery),
    responses((status = 202, body = Rotation), (status = 404, body = faas_spec::api::Problem),
        (status = 409, body = faas_spec::api::Problem)))]
pub async fn rotate_database(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path((svc, name)): Path<(String, String)>,
    Query(q): Query<EnvQuery>,
) -> ApiResult<Response> {
    let env = q.env;
    let row = visible_row(&p, &who, &svc, &env, &name)?;
    if row.state != "ready" {
        return Err(ApiError::conflict(
            "database-not-ready",
            format!(
                "database `{name}` is {}: only a database in use is rotated",
                row.state
            ),
        ));
    }
    if row.old_login.is_some() {
        return Err(ApiError::conflict(
            "rotation-in-progress",
            format!("database `{name}` is being rotated: its old login is revoked when the environment's deployment succeeds"),
        )
        .hint("deploy the environment again if its last deployment failed"));
    }
    if let Some(running) = p.store.active_deployment(&svc, &env)? {
        return Err(in_progress(&svc, &env, running));
    }
    let current = p.store.current_release(&svc, &env)?.ok_or_else(|| {
        ApiError::conflict("not-deployed", format!("{svc} has no release in {env}"))
    })?;
    let engine = engine_of(&row);
    let new = (
        next_login(engine, &row.principal, &row.login.0),
        crate::databases::password(),
    );
    // The new login opens beside the old before anything is recorded: a failure changes
    // nothing the environment uses.
    let mut both = vec![new.clone()];
    both.extend(logins(&p, &row).map_err(ApiError::internal)?);
    let admin = p.databases.ready(&p, engine).await.map_err(server_failed)?;
    admin
        .ensure(
            &row.principal,
            &crate::databases::redis::prefix(&svc, &env),
            &both,
        )
        .await
        .map_err(server_failed)?;
    let sealed = seal_login(&p, &svc, &env, &name, &new).map_err(ApiError::internal)?;
    p.store.begin_rotation(&svc, &env, &name, &sealed)?;
    let release = p.store.create_release(
        &svc,
        &env,
        &current.image_id,
        &current.image_ref,
        &current.manifest,
        current.secrets_version,
    )?;
    let deployment = start(
        &p,
        &svc,
        &env,
        &release,
        Strategy::Rolling,
        false,
        &who.tenant,
    )?;
    let row = row_of(&p, &svc, &env, &name)?;
    let manifest = current.manifest().ok();
    Ok((
        StatusCode::ACCEPTED,
        Json(Rotation {
            database: info(&p, &row, manifest.as_ref()),
            deployment: deployment.id,
        }),
    )
        .into_response())
}

/// A dump of the database (PostgreSQL: pg_dump's custom format; Redis: the environment's keys).
#[utoipa::path(get, path = "/v1/services/{svc}/databases/{name}/backup", tag = "databases",
    params(("svc" = String, Path), ("name" = String, Path), EnvQuery),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, body = faas_spec::api::Problem), (status = 502, body = faas_spec::api::Problem)))]
pub async fn backup_database(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path((svc, name)): Path<(String, String)>,
    Query(q): Query<EnvQuery>,
) -> ApiResult<Response> {
    let row = visible_row(&p, &who, &svc, &q.env, &name)?;
    let dump = crate::databases::tools::backup(&p, &row)
        .await
        .map_err(server_failed)?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], dump).into_response())
}

/// Loads a dump made by `backup` into the database, replacing what has the same name.
#[utoipa::path(post, path = "/v1/services/{svc}/databases/{name}/restore", tag = "databases",
    params(("svc" = String, Path), ("name" = String, Path), EnvQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = String), (status = 404, body = faas_spec::api::Problem),
        (status = 502, body = faas_spec::api::Problem)))]
pub async fn restore_database(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path((svc, name)): Path<(String, String)>,
    Query(q): Query<EnvQuery>,
    body: Bytes,
) -> ApiResult<Json<String>> {
    let row = visible_row(&p, &who, &svc, &q.env, &name)?;
    let done = crate::databases::tools::restore(&p, &row, body.to_vec())
        .await
        .map_err(|e| ApiError::unprocessable("restore-failed", e))?;
    Ok(Json(done))
}

/// Prepares the engine's client (psql, redis-cli) in the managed server's container, logged in
/// as the service's login; the caller starts and attaches to it on the engine.
#[utoipa::path(post, path = "/v1/services/{svc}/databases/{name}/connect", tag = "databases",
    params(("svc" = String, Path), ("name" = String, Path), EnvQuery),
    request_body = ConnectRequest,
    responses((status = 200, body = ConnectSession), (status = 404, body = faas_spec::api::Problem),
        (status = 409, body = faas_spec::api::Problem)))]
pub async fn connect_database(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path((svc, name)): Path<(String, String)>,
    Query(q): Query<EnvQuery>,
    ApiJson(body): ApiJson<ConnectRequest>,
) -> ApiResult<Json<ConnectSession>> {
    let row = visible_row(&p, &who, &svc, &q.env, &name)?;
    if row.state != "ready" {
        return Err(ApiError::conflict(
            "database-not-ready",
            format!("database `{name}` is {}: no login opens it", row.state),
        ));
    }
    let session = crate::databases::tools::connect(&p, &row, &body.args, body.tty)
        .await
        .map_err(|e| ApiError::conflict("cannot-connect", e))?;
    Ok(Json(session))
}
