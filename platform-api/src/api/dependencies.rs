//! `/v1/services/{svc}/address`: where a service's environment is called from the platform's
//! instances and from a developer's `faas service dev --deps-from ENV`.

use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use super::deployments::check_env;
use super::services::visible;
use super::{Path, Query};
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AddressQuery {
    /// The environment [default: prod].
    pub env: Option<String>,
}

/// Where an environment of a service is reached through the router.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServiceAddress {
    pub service: String,
    pub env: String,
    /// The URL its callers get, e.g. `http://billing.localhost:8080`.
    pub url: String,
    /// The host name in it.
    pub host: String,
    /// The router's address on the instances' network (`IP:PORT`), which `host` resolves to
    /// inside them; absent where the router does not listen there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_address: Option<String>,
}

/// The address of a service's environment, or 404 when it does not serve one of that name.
#[utoipa::path(get, path = "/v1/services/{svc}/address", tag = "services", params(("svc" = String, Path), AddressQuery),
    responses((status = 200, body = ServiceAddress), (status = 400, body = faas_spec::api::Problem), (status = 404, body = faas_spec::api::Problem)))]
pub async fn service_address(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(svc): Path<String>,
    Query(q): Query<AddressQuery>,
) -> ApiResult<Json<ServiceAddress>> {
    visible(&p, &who, &svc)?;
    let env = q.env.unwrap_or_else(|| "prod".into());
    check_env(&env)?;
    if p.store.current_release(&svc, &env)?.is_none() {
        return Err(ApiError::not_found(
            "environment-not-found",
            format!("{svc} serves no environment `{env}`"),
        )
        .hint(format!("deploy it there: faas service deploy -e {env}")));
    }
    let host = p.router.host_for(&svc, &env);
    Ok(Json(ServiceAddress {
        service: svc,
        env,
        url: p.url_of_host(&host),
        host,
        network_address: p.router.internal().map(|a| a.to_string()),
    }))
}
