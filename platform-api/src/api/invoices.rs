//! `/v1/invoices` (a member its own, an admin any), `POST /v1/invoices/close` (admin) and
//! `/v1/notifications`: the monthly invoices closed from the ledger and what was sent of them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use faas_spec::api::Problem;
use faas_spec::api::invoices::*;
use faas_spec::money;
use serde::Deserialize;

use super::ledger::rfc3339;
use super::{ApiJson, Query};
use crate::AppState;
use crate::auth::Principal;
use crate::billing::invoices::{CloseError, close_month};
use crate::error::{ApiError, ApiResult};
use crate::store::{InvoiceRow, NotificationRow};

pub fn answer(i: InvoiceRow) -> Invoice {
    let lines: std::collections::BTreeMap<String, i64> =
        serde_json::from_str(&i.lines).unwrap_or_default();
    Invoice {
        amount_due: money::format_amount(i.total_nanos, &i.currency),
        lines: lines
            .into_iter()
            .map(|(k, v)| (k, money::format_nanos(v)))
            .collect(),
        charges: money::format_nanos(i.charges_nanos),
        adjustment: money::format_nanos(i.adjustment_nanos),
        total: money::format_nanos(i.total_nanos),
        from: rfc3339(i.from_us),
        to: rfc3339(i.to_us),
        id: i.id,
        tenant: i.tenant,
        currency: i.currency,
        month: i.month,
        charges_nanos: i.charges_nanos,
        adjustment_nanos: i.adjustment_nanos,
        total_nanos: i.total_nanos,
        closed_at: i.closed_at,
    }
}

fn notification(n: NotificationRow) -> Notification {
    Notification {
        next_attempt_at: (n.state == "pending").then(|| rfc3339(n.next_at_us)),
        id: n.id,
        invoice: n.invoice,
        channel: n.channel,
        target: n.target,
        state: n.state,
        attempts: n.attempts,
        last_error: n.last_error,
        sent_at: n.sent_at,
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TenantQuery {
    /// One tenant (an admin); a member always sees its own.
    pub tenant: Option<String>,
}

/// The tenant a caller may see: a member its own, an admin the one named or all.
fn whose(who: &Principal, q: TenantQuery) -> ApiResult<Option<String>> {
    let tenant = q.tenant;
    if let Some(t) = &tenant {
        faas_spec::names::check_email(t).map_err(|e| {
            ApiError::bad_request("invalid-tenant", format!("`{t}`: {}", e.message)).hint(e.rule)
        })?;
    }
    match tenant {
        Some(t) if who.is_admin() || t == who.tenant => Ok(Some(t)),
        Some(t) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this token is of {}; it cannot see what {t} was billed",
                who.tenant
            ),
        )
        .hint("leave `tenant` out for your own, or use an admin token")),
        None if who.is_admin() => Ok(None),
        None => Ok(Some(who.tenant.clone())),
    }
}

/// Closes the invoices of a month that is over (admin): one per tenant and currency, from the
/// ledger; closing again changes nothing and answers the same invoices.
#[utoipa::path(post, path = "/v1/invoices/close", tag = "billing", request_body = CloseInvoices,
    responses((status = 200, body = ClosedInvoices), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn close_invoices(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiJson(body): ApiJson<CloseInvoices>,
) -> ApiResult<Json<ClosedInvoices>> {
    who.require_admin()?;
    if let Some(t) = &body.tenant {
        faas_spec::names::check_email(t).map_err(|e| {
            ApiError::bad_request("invalid-tenant", format!("`{t}`: {}", e.message)).hint(e.rule)
        })?;
    }
    let closed = close_month(
        &p,
        &body.month,
        body.tenant.as_deref(),
        crate::meter::now_us(),
    )
    .await
    .map_err(|e| match e {
        CloseError::Month(m) => ApiError::bad_request("invalid-month", m),
        e @ CloseError::NotOver { .. } => ApiError::conflict("month-not-over", e.to_string())
            .hint("close a month once it has ended (UTC)"),
        e @ CloseError::PricingBehind { .. } => {
            ApiError::conflict("pricing-behind", e.to_string()).hint("retry in a few seconds")
        }
        CloseError::Other(e) => ApiError::internal(format!("{e:#}")),
    })?;
    Ok(Json(ClosedInvoices {
        month: body.month,
        closed_now: closed.iter().filter(|(_, new)| *new).count() as u32,
        invoices: closed.into_iter().map(|(i, _)| answer(i)).collect(),
    }))
}

/// Closed invoices, oldest month first.
#[utoipa::path(get, path = "/v1/invoices", tag = "billing", params(TenantQuery),
    responses((status = 200, body = Vec<Invoice>), (status = 403, body = Problem)))]
pub async fn list_invoices(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<TenantQuery>,
) -> ApiResult<Json<Vec<Invoice>>> {
    let tenant = whose(&who, q)?;
    Ok(Json(
        p.store
            .invoices(tenant.as_deref())?
            .into_iter()
            .map(answer)
            .collect(),
    ))
}

/// What was sent of the closed invoices (e-mail, webhook), and what failed.
#[utoipa::path(get, path = "/v1/notifications", tag = "billing", params(TenantQuery),
    responses((status = 200, body = Vec<Notification>), (status = 403, body = Problem)))]
pub async fn list_notifications(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<TenantQuery>,
) -> ApiResult<Json<Vec<Notification>>> {
    let tenant = whose(&who, q)?;
    Ok(Json(
        p.store
            .notifications(tenant.as_deref())?
            .into_iter()
            .map(notification)
            .collect(),
    ))
}
