//! Tariffs (admin only): what a unit of usage costs, per currency, in effective-dated versions.
//! Prices are decimal strings of the currency's major unit, kept as integer nano-units.

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// Prices per unit of each resource, as decimal strings (`"0.000012"`, at most 9 decimals).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Prices {
    /// Per vCPU-second of CPU time used.
    #[serde(default = "zero")]
    pub vcpu_second: String,
    /// Per GiB-second of memory held (working set integrated over time).
    #[serde(default = "zero")]
    pub gib_second: String,
    /// Per second an instance runs.
    #[serde(default = "zero")]
    pub instance_second: String,
    /// Per million requests served.
    #[serde(default = "zero")]
    pub million_requests: String,
    /// Per one-off run.
    #[serde(default = "zero")]
    pub run: String,
}

fn zero() -> String {
    "0".into()
}

/// `POST /v1/tariffs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateTariff {
    /// Lowercase letters, digits and `-`, e.g. `standard`.
    pub name: String,
    /// ISO 4217, e.g. `EUR`.
    pub currency: String,
    pub prices: Prices,
    /// When the first version takes effect (RFC 3339) [default: now].
    #[serde(default)]
    pub effective_from: Option<String>,
    /// Make it the tariff of every tenant without one of its own (the first tariff is).
    #[serde(default)]
    pub default: bool,
}

/// `POST /v1/tariffs/{name}/versions`: new prices from a date on. A date in the past
/// re-prices the usage since then.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateTariff {
    pub prices: Prices,
    /// When this version takes effect (RFC 3339), after the current version's start.
    pub effective_from: String,
}

/// One version of a tariff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TariffVersion {
    pub version: u32,
    pub effective_from: String,
    /// In force until the next version's start; absent for the latest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_to: Option<String>,
    pub prices: Prices,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Tariff {
    pub name: String,
    pub currency: String,
    /// The tariff of every tenant without one of its own.
    pub default: bool,
    /// Archived tariffs price the usage they priced; no tenant can be assigned one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived_at: Option<String>,
    /// The tenants assigned this tariff.
    pub tenants: Vec<String>,
    pub versions: Vec<TariffVersion>,
}

/// `PUT /v1/tenants/{tenant}/tariff`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AssignTariff {
    pub tariff: String,
}

/// The tariff a tenant is priced at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TenantTariff {
    pub tenant: String,
    pub tariff: String,
    /// Whether it is the default rather than one assigned to the tenant.
    pub by_default: bool,
}
