//! `POST /v1/tokens` (admin) and `GET /v1/whoami`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use faas_spec::api::{CreateToken, TokenCreated, WhoAmI};

use super::ApiJson;
use crate::AppState;
use crate::auth::{Principal, hash_token, new_token};
use crate::error::{ApiError, ApiResult};

/// Creates a token for a tenant; the token is shown once.
#[utoipa::path(post, path = "/v1/tokens", tag = "auth", request_body = CreateToken,
    responses((status = 201, body = TokenCreated), (status = 403, body = faas_spec::api::Problem)))]
pub async fn create_token(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiJson(body): ApiJson<CreateToken>,
) -> ApiResult<(StatusCode, Json<TokenCreated>)> {
    who.require_admin()?;
    faas_spec::names::check_email(&body.tenant)
        .map_err(|e| ApiError::bad_request("invalid-tenant", e.message).hint(e.rule))?;
    let token = new_token();
    p.store.add_token(
        &hash_token(&token),
        &body.tenant,
        body.role,
        body.name.as_deref(),
    )?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            token,
            tenant: body.tenant,
            role: body.role,
        }),
    ))
}

/// The tenant and role of the calling token.
#[utoipa::path(get, path = "/v1/whoami", tag = "auth", responses((status = 200, body = WhoAmI)))]
pub async fn whoami(Extension(who): Extension<Principal>) -> Json<WhoAmI> {
    Json(WhoAmI {
        tenant: who.tenant,
        role: who.role,
    })
}
