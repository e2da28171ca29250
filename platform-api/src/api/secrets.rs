//! `PUT/GET/DELETE /v1/services/{svc}/secrets`: names and times out, never values.

use axum::extract::State;
use axum::{Extension, Json};
use faas_spec::api::{SecretInfo, SecretsChanged, SetSecrets, UnsetSecrets};
use serde::Deserialize;

use super::services::visible;
use super::{ApiJson, Path, Query};
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};

fn check_env(env: &str) -> ApiResult<()> {
    faas_spec::names::check_env_name(env)
        .map_err(|e| ApiError::bad_request("invalid-env", e.message).hint(e.rule))
}

fn infos(p: &AppState, svc: &str, env: &str) -> ApiResult<Vec<SecretInfo>> {
    Ok(p.store
        .secret_names(svc, env)?
        .into_iter()
        .map(|(name, version, updated_at)| SecretInfo {
            name,
            version,
            updated_at,
        })
        .collect())
}

/// Sets secrets of an environment (a new secrets version; the next deploy uses it).
#[utoipa::path(put, path = "/v1/services/{svc}/secrets", tag = "secrets", params(("svc" = String, Path)),
    request_body = SetSecrets,
    responses((status = 200, body = SecretsChanged), (status = 400, body = faas_spec::api::Problem)))]
pub async fn set_secrets(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(svc): Path<String>,
    ApiJson(body): ApiJson<SetSecrets>,
) -> ApiResult<Json<SecretsChanged>> {
    visible(&p, &who, &svc)?;
    check_env(&body.env)?;
    if body.values.is_empty() {
        return Err(ApiError::bad_request(
            "no-secrets",
            "give at least one NAME=value",
        ));
    }
    let mut sealed = Vec::with_capacity(body.values.len());
    for (name, value) in &body.values {
        crate::secrets::check_name(name)
            .map_err(|e| ApiError::bad_request("invalid-secret-name", e))?;
        if value.chars().count() > faas_spec::names::MAX_SECRET_CHARS {
            // Says which one, never what it holds.
            return Err(ApiError::bad_request(
                "secret-too-large",
                format!(
                    "the value of {name} is over {} characters",
                    faas_spec::names::MAX_SECRET_CHARS
                ),
            ));
        }
        let (nonce, value) = p.sealer.seal(name, value).map_err(ApiError::internal)?;
        sealed.push((name.clone(), nonce, value));
    }
    let version = p.store.change_secrets(&svc, &body.env, &sealed, &[])?;
    Ok(Json(SecretsChanged {
        secrets: infos(&p, &svc, &body.env)?,
        env: body.env,
        version,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SecretsQuery {
    /// The environment.
    pub env: String,
}

/// The secrets of an environment: names, versions and times, never values.
#[utoipa::path(get, path = "/v1/services/{svc}/secrets", tag = "secrets", params(("svc" = String, Path), SecretsQuery),
    responses((status = 200, body = [SecretInfo])))]
pub async fn list_secrets(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(svc): Path<String>,
    Query(q): Query<SecretsQuery>,
) -> ApiResult<Json<Vec<SecretInfo>>> {
    visible(&p, &who, &svc)?;
    check_env(&q.env)?;
    Ok(Json(infos(&p, &svc, &q.env)?))
}

/// Removes secrets of an environment (a new secrets version).
#[utoipa::path(delete, path = "/v1/services/{svc}/secrets", tag = "secrets", params(("svc" = String, Path)),
    request_body = UnsetSecrets,
    responses((status = 200, body = SecretsChanged), (status = 404, body = faas_spec::api::Problem)))]
pub async fn unset_secrets(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(svc): Path<String>,
    ApiJson(body): ApiJson<UnsetSecrets>,
) -> ApiResult<Json<SecretsChanged>> {
    visible(&p, &who, &svc)?;
    check_env(&body.env)?;
    let live: Vec<String> = p
        .store
        .secret_names(&svc, &body.env)?
        .into_iter()
        .map(|(n, _, _)| n)
        .collect();
    if let Some(missing) = body.names.iter().find(|n| !live.contains(n)) {
        return Err(ApiError::not_found(
            "secret-not-found",
            format!("{svc} has no secret {missing} in {}", body.env),
        ));
    }
    let version = p.store.change_secrets(&svc, &body.env, &[], &body.names)?;
    Ok(Json(SecretsChanged {
        secrets: infos(&p, &svc, &body.env)?,
        env: body.env,
        version,
    }))
}
