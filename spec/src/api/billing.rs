//! `GET /v1/billing/{tenant}`: what a tenant used over a period and what it costs, accrued
//! from the ledger. Money is integer nano-units (and their exact decimal); the total is
//! rounded once, to the currency's minor unit.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// The version of this document's shape; fields are added, never renamed or removed.
pub const BILLING_SCHEMA_VERSION: u32 = 1;

/// What `--by` may name.
pub const BILLING_DIMENSIONS: [&str; 5] = ["service", "env", "resource", "release", "day"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BillingReport {
    pub schema_version: u32,
    pub tenant: String,
    /// Half-open: usage from `from` up to, not including, `to`.
    pub period: BillingPeriod,
    /// The dimensions rows are grouped by (beside resource and tariff version).
    pub group_by: Vec<String>,
    /// Charges are accrued through this instant (RFC 3339): not forecast.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_through: Option<String>,
    /// Usage records measured but not priced yet (no tariff, or pricing behind).
    pub unpriced_records: u64,
    /// The tariff versions whose prices the rows are at.
    pub tariff_versions: Vec<BillingTariffVersion>,
    /// One per group, resource and tariff version, by cost, highest first.
    pub rows: Vec<BillingRow>,
    /// One per group (when grouped), by cost, highest first.
    pub subtotals: Vec<BillingSubtotal>,
    /// One per currency.
    pub totals: Vec<BillingTotal>,
    /// Rows with no usage in the period, left out (`all=true` keeps them).
    pub hidden_rows: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BillingPeriod {
    pub from: String,
    pub to: String,
    /// The time zone days and months are cut in (`UTC` unless asked).
    pub tz: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BillingTariffVersion {
    pub tariff: String,
    pub version: u32,
    pub currency: String,
    pub effective_from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BillingRow {
    /// The values of the `group_by` dimensions.
    pub group: BTreeMap<String, String>,
    /// `vcpu`, `memory`, `instance`, `requests` or `run`.
    pub resource: String,
    /// Exact decimal, e.g. `"12.5"`.
    pub quantity: String,
    /// Millionths of the unit.
    pub quantity_micros: i64,
    /// `vCPU-s`, `GiB-s`, `instance-s`, `requests`, `runs`.
    pub unit: String,
    pub tariff: String,
    pub version: u32,
    pub currency: String,
    /// Exact decimal per `price_unit`.
    pub unit_price: String,
    pub price_unit: String,
    /// Exact decimal of `cost_nanos`.
    pub cost: String,
    pub cost_nanos: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BillingSubtotal {
    pub group: BTreeMap<String, String>,
    pub currency: String,
    pub cost: String,
    pub cost_nanos: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BillingTotal {
    pub currency: String,
    /// The exact sum of the rows.
    pub cost: String,
    pub cost_nanos: i64,
    /// Rounded once, here, to the currency's minor unit (half away from zero).
    pub amount: String,
    /// `amount` less `cost`, in nano-units: what the one rounding added or took.
    pub rounding_nanos: i64,
}
