//! `GET /v1/billing/{tenant}`: a tenant's usage and its cost over a period. A member sees its
//! own tenant only; an admin any.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use faas_spec::api::Problem;
use faas_spec::api::billing::BillingReport;
use serde::Deserialize;

use super::{Path, Query};
use crate::AppState;
use crate::auth::Principal;
use crate::billing::period::{Asked, Period};
use crate::billing::report;
use crate::error::{ApiError, ApiResult};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BillingQuery {
    /// A calendar month, `YYYY-MM` [default: the current month].
    pub month: Option<String>,
    /// The period's start: a day (`YYYY-MM-DD`, midnight in `tz`) or an RFC 3339 instant.
    pub from: Option<String>,
    /// The period's end, not included; with `from`.
    pub to: Option<String>,
    /// Comma-separated: any of `service`, `env`, `resource`, `release`, `day`.
    pub by: Option<String>,
    /// The IANA time zone months and days are cut in [default: UTC].
    pub tz: Option<String>,
    /// Keep the rows with no usage in the period.
    #[serde(default)]
    pub all: bool,
}

/// An empty value (`month=`) is no value.
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|v| !v.is_empty())
}

/// What a tenant used over a period and what it costs: per resource and tariff version, and
/// the dimensions asked for, with subtotals and a total rounded once. Accrued, not forecast.
#[utoipa::path(get, path = "/v1/billing/{tenant}", tag = "billing",
    params(("tenant" = String, Path, description = "The tenant (its e-mail)"), BillingQuery),
    responses((status = 200, body = BillingReport), (status = 403, body = Problem)))]
pub async fn billing_show(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(tenant): Path<String>,
    Query(q): Query<BillingQuery>,
) -> ApiResult<Json<BillingReport>> {
    faas_spec::names::check_email(&tenant).map_err(|e| {
        ApiError::bad_request("invalid-tenant", format!("`{tenant}`: {}", e.message)).hint(e.rule)
    })?;
    if !who.is_admin() && who.tenant != tenant {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this token is of {}; it cannot see the bill of {tenant}",
                who.tenant
            ),
        )
        .hint("ask for your own tenant's bill, or use an admin token"));
    }
    let period = Period::resolve(
        &Asked {
            month: given(&q.month),
            from: given(&q.from),
            to: given(&q.to),
            tz: given(&q.tz),
        },
        crate::meter::now_us(),
    )
    .map_err(|e| ApiError::bad_request(e.code, e.message).hint(e.hint))?;
    let by = report::parse_by(given(&q.by))
        .map_err(|m| ApiError::bad_request("invalid-by", m).hint("e.g. `by=service,day`"))?;
    let bill = report::report(&p, &tenant, &period, &by, q.all)
        .await
        .map_err(|e| ApiError::internal(format!("cannot read the ledger: {e:#}")))?;
    Ok(Json(bill))
}
