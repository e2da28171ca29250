//! `/v1/tariffs` and `/v1/tenants/{tenant}/tariff` (admin only): tariffs, their effective-dated
//! versions, the default, and which tenant is priced at which.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use faas_spec::api::Problem;
use faas_spec::api::tariffs::*;
use faas_spec::money;

use super::ledger::{micros, rfc3339};
use super::{ApiJson, Path};
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::store::{PriceRow, TariffRefusal, TariffRow};

fn check_name(name: &str) -> ApiResult<()> {
    faas_spec::names::check_service_name(name).map_err(|e| {
        ApiError::bad_request(
            "invalid-tariff-name",
            format!("`{name}` is not a tariff name"),
        )
        .hint(e.rule)
    })
}

fn price(field: &str, text: &str) -> ApiResult<i64> {
    money::parse_price(text).map_err(|e| {
        ApiError::unprocessable("invalid-price", format!("prices.{field}: {}", e.message))
            .hint(e.hint)
    })
}

fn prices(p: &Prices) -> ApiResult<PriceRow> {
    Ok(PriceRow {
        vcpu_second: price("vcpu_second", &p.vcpu_second)?,
        gib_second: price("gib_second", &p.gib_second)?,
        instance_second: price("instance_second", &p.instance_second)?,
        million_requests: price("million_requests", &p.million_requests)?,
        run: price("run", &p.run)?,
    })
}

fn shown(p: &PriceRow) -> Prices {
    Prices {
        vcpu_second: money::format_nanos(p.vcpu_second),
        gib_second: money::format_nanos(p.gib_second),
        instance_second: money::format_nanos(p.instance_second),
        million_requests: money::format_nanos(p.million_requests),
        run: money::format_nanos(p.run),
    }
}

pub fn answer(t: TariffRow) -> Tariff {
    let starts: Vec<i64> = t.versions.iter().map(|v| v.effective_from).collect();
    Tariff {
        name: t.name,
        currency: t.currency,
        default: t.default,
        archived_at: t.archived_at,
        tenants: t.tenants,
        versions: t
            .versions
            .into_iter()
            .enumerate()
            .map(|(i, v)| TariffVersion {
                version: v.version,
                effective_from: rfc3339(v.effective_from),
                effective_to: starts.get(i + 1).map(|s| rfc3339(*s)),
                prices: shown(&v.prices),
                created_at: v.created_at,
            })
            .collect(),
    }
}

fn refused(name: &str, r: TariffRefusal) -> ApiError {
    match r {
        TariffRefusal::Exists => ApiError::conflict(
            "tariff-exists",
            format!("there is a tariff `{name}` already"),
        )
        .hint(format!(
            "change its prices with `faas tariff update {name}`"
        )),
        TariffRefusal::NotFound => not_found(name),
        TariffRefusal::Archived => ApiError::conflict(
            "tariff-archived",
            format!("the tariff `{name}` is archived"),
        )
        .hint("create a new tariff"),
        TariffRefusal::NotAfter(start) => ApiError::conflict(
            "overlapping-effective-dates",
            format!(
                "the latest version of `{name}` takes effect at {}; a new one must start after it",
                rfc3339(start)
            ),
        )
        .hint("give a later `effective_from`"),
        TariffRefusal::IsDefault => ApiError::conflict(
            "tariff-is-default",
            format!("`{name}` is the default tariff"),
        )
        .hint("make another tariff the default first (`faas tariff assign OTHER --default`)"),
    }
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found("tariff-not-found", format!("there is no tariff `{name}`"))
        .hint("`faas tariff list` shows the tariffs")
}

fn load(p: &AppState, name: &str) -> ApiResult<Tariff> {
    p.store
        .tariff(name)?
        .map(answer)
        .ok_or_else(|| not_found(name))
}

/// Creates a tariff and its first version (the first tariff becomes the default).
#[utoipa::path(post, path = "/v1/tariffs", tag = "tariffs", request_body = CreateTariff,
    responses((status = 201, body = Tariff), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn create_tariff(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiJson(body): ApiJson<CreateTariff>,
) -> ApiResult<(StatusCode, Json<Tariff>)> {
    who.require_admin()?;
    check_name(&body.name)?;
    money::check_currency(&body.currency)
        .map_err(|e| ApiError::unprocessable("invalid-currency", e.message).hint(e.hint))?;
    let row = prices(&body.prices)?;
    let from = match &body.effective_from {
        Some(t) => micros(t, "effective_from")?,
        None => faas_ledger::now(),
    };
    p.store
        .create_tariff(&body.name, &body.currency, from, &row, body.default)?
        .map_err(|r| refused(&body.name, r))?;
    Ok((StatusCode::CREATED, Json(load(&p, &body.name)?)))
}

/// Every tariff with its versions.
#[utoipa::path(get, path = "/v1/tariffs", tag = "tariffs",
    responses((status = 200, body = Vec<Tariff>), (status = 403, body = Problem)))]
pub async fn list_tariffs(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Json<Vec<Tariff>>> {
    who.require_admin()?;
    Ok(Json(p.store.tariffs()?.into_iter().map(answer).collect()))
}

/// One tariff with its versions.
#[utoipa::path(get, path = "/v1/tariffs/{name}", tag = "tariffs", params(("name" = String, Path)),
    responses((status = 200, body = Tariff), (status = 403, body = Problem)))]
pub async fn show_tariff(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<Json<Tariff>> {
    who.require_admin()?;
    Ok(Json(load(&p, &name)?))
}

/// New prices from a date on: a new version (usage is priced at the version in force when it
/// happened).
#[utoipa::path(post, path = "/v1/tariffs/{name}/versions", tag = "tariffs", params(("name" = String, Path)),
    request_body = UpdateTariff,
    responses((status = 201, body = Tariff), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn update_tariff(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<UpdateTariff>,
) -> ApiResult<(StatusCode, Json<Tariff>)> {
    who.require_admin()?;
    let row = prices(&body.prices)?;
    let from = micros(&body.effective_from, "effective_from")?;
    p.store
        .add_tariff_version(&name, from, &row)?
        .map_err(|r| refused(&name, r))?;
    Ok((StatusCode::CREATED, Json(load(&p, &name)?)))
}

/// Archives a tariff: it keeps pricing what it priced, and no tenant can be given it.
#[utoipa::path(post, path = "/v1/tariffs/{name}/archive", tag = "tariffs", params(("name" = String, Path)),
    responses((status = 200, body = Tariff), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn archive_tariff(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<Json<Tariff>> {
    who.require_admin()?;
    p.store
        .archive_tariff(&name)?
        .map_err(|r| refused(&name, r))?;
    Ok(Json(load(&p, &name)?))
}

/// Makes a tariff the default: the tariff of every tenant without one of its own.
#[utoipa::path(post, path = "/v1/tariffs/{name}/default", tag = "tariffs", params(("name" = String, Path)),
    responses((status = 200, body = Tariff), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn make_default(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<Json<Tariff>> {
    who.require_admin()?;
    p.store
        .set_default_tariff(&name)?
        .map_err(|r| refused(&name, r))?;
    Ok(Json(load(&p, &name)?))
}

/// Prices a tenant at a tariff of its own.
#[utoipa::path(put, path = "/v1/tenants/{tenant}/tariff", tag = "tariffs", params(("tenant" = String, Path)),
    request_body = AssignTariff,
    responses((status = 200, body = TenantTariff), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn assign_tariff(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(tenant): Path<String>,
    ApiJson(body): ApiJson<AssignTariff>,
) -> ApiResult<Json<TenantTariff>> {
    who.require_admin()?;
    faas_spec::names::check_email(&tenant)
        .map_err(|e| ApiError::bad_request("invalid-tenant", e.message).hint(e.rule))?;
    p.store
        .assign_tariff(&tenant, &body.tariff)?
        .map_err(|r| refused(&body.tariff, r))?;
    Ok(Json(TenantTariff {
        tenant,
        tariff: body.tariff,
        by_default: false,
    }))
}

/// The tariff a tenant is priced at. A member may ask for its own tenant.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/tariff", tag = "tariffs", params(("tenant" = String, Path)),
    responses((status = 200, body = TenantTariff), (status = 403, body = Problem)))]
pub async fn tenant_tariff(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(tenant): Path<String>,
) -> ApiResult<Json<TenantTariff>> {
    faas_spec::names::check_email(&tenant)
        .map_err(|e| ApiError::bad_request("invalid-tenant", e.message).hint(e.rule))?;
    if !who.can_see(&tenant) {
        who.require_admin()?;
    }
    let (tariff, by_default) = p.store.tenant_tariff(&tenant)?.ok_or_else(|| {
        ApiError::not_found("no-tariff", "the platform has no tariff yet")
            .hint("an admin creates one: `faas tariff create NAME --currency EUR …`")
    })?;
    Ok(Json(TenantTariff {
        tenant,
        tariff,
        by_default,
    }))
}
