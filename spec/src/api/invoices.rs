//! Invoices and the notifications they send: `/v1/invoices`, `/v1/invoices/close` (admin) and
//! `/v1/notifications`. Money is integer nano-units with its exact decimal; the amount due is
//! rounded once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// One tenant's invoice for one month in one currency; immutable once closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Invoice {
    /// Derived from the tenant, currency and month.
    pub id: String,
    pub tenant: String,
    pub currency: String,
    /// `YYYY-MM`, UTC.
    pub month: String,
    pub from: String,
    pub to: String,
    /// The month's charges per resource (exact decimals).
    pub lines: BTreeMap<String, String>,
    pub charges: String,
    pub charges_nanos: i64,
    /// Usage of earlier months that reached the ledger after their invoices closed.
    pub adjustment: String,
    pub adjustment_nanos: i64,
    /// `charges + adjustment`, exact.
    pub total: String,
    pub total_nanos: i64,
    /// The total rounded once to the currency's minor unit: what is due.
    pub amount_due: String,
    pub closed_at: String,
}

/// `POST /v1/invoices/close`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CloseInvoices {
    /// `YYYY-MM`, a month that is over.
    pub month: String,
    /// One tenant [default: every tenant with usage].
    #[serde(default)]
    pub tenant: Option<String>,
}

/// What a close did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ClosedInvoices {
    pub month: String,
    /// The month's invoices, those closed before included (unchanged).
    pub invoices: Vec<Invoice>,
    /// How many this call closed.
    pub closed_now: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Notification {
    pub id: i64,
    pub invoice: String,
    /// `email` or `webhook`.
    pub channel: String,
    pub target: String,
    /// `pending`, `sent` or `failed` (given up after its attempts).
    pub state: String,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<String>,
    /// When the next attempt is due, while pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
}
