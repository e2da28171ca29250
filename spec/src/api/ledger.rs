//! The ledger's face on the platform API (admin only): a batch of events written atomically,
//! balances at a date, turnovers over a period, events a page at a time, and the export stream.
//! Amounts are signed integers in the currency's minor unit (the platform's: nano-units);
//! positive debits, negative credits. Times are RFC 3339 (UTC, to the microsecond).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// An account: its type and its key attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LedgerAccount {
    /// An account type of the ledger's configuration, e.g. `usage`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Every key attribute of the type, e.g. `{"tenant": "ada@example.com", "currency": "EUR"}`.
    pub key: BTreeMap<String, String>,
}

/// One event to write.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LedgerNewEvent {
    pub account: LedgerAccount,
    /// Auxiliary attributes of the type, e.g. `{"service": "api"}`.
    #[serde(default)]
    pub aux: BTreeMap<String, String>,
    /// Minor units, a whole number: positive debits the account, negative credits it.
    #[serde(deserialize_with = "crate::whole::signed")]
    pub amount: i64,
    /// When the event takes effect (RFC 3339).
    pub effective_at: String,
    /// Derived from what the event records: the same key with the same content again is
    /// "already written", with other content a conflict that writes nothing of the batch.
    pub idempotency_key: String,
    /// Free JSON kept with the event.
    #[serde(default)]
    pub info: serde_json::Value,
}

/// `POST /v1/ledger/batches`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LedgerBatch {
    pub events: Vec<LedgerNewEvent>,
}

/// What became of one event of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LedgerWritten {
    pub id: i64,
    /// `new`, or `already_written` (an earlier write of the same key and content).
    pub status: String,
}

/// `POST /v1/ledger/balances`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LedgerBalanceQuery {
    pub account: LedgerAccount,
    /// Auxiliary attributes to group by: an allowed grouping of the type; none for the total.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// The balance of the events effective before this instant (RFC 3339) [default: now].
    #[serde(default)]
    pub at: Option<String>,
}

/// One group's balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LedgerBalance {
    /// The values of the grouping attributes (empty: no grouping).
    pub group: BTreeMap<String, String>,
    pub balance: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LedgerBalances {
    pub account: LedgerAccount,
    pub at: String,
    pub balances: Vec<LedgerBalance>,
}

/// `POST /v1/ledger/turnovers`: the half-open period [from, to).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LedgerTurnoverQuery {
    pub account: LedgerAccount,
    #[serde(default)]
    pub group_by: Vec<String>,
    pub from: String,
    pub to: String,
}

/// One group's movements over the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LedgerTurnover {
    pub group: BTreeMap<String, String>,
    pub opening: i64,
    pub debit: i64,
    pub credit: i64,
    pub closing: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LedgerTurnovers {
    pub account: LedgerAccount,
    pub from: String,
    pub to: String,
    pub turnovers: Vec<LedgerTurnover>,
}

/// `POST /v1/ledger/events`: events of a type effective in [from, to) whose attributes match.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LedgerEventQuery {
    #[serde(rename = "type")]
    pub kind: String,
    /// Key attributes that must match (any subset; all of them: one account's shard only).
    #[serde(default)]
    pub key: BTreeMap<String, String>,
    /// Auxiliary attributes that must match.
    #[serde(default)]
    pub aux: BTreeMap<String, String>,
    pub from: String,
    pub to: String,
    /// The `next` of the previous page.
    #[serde(default)]
    pub after: Option<i64>,
    /// Events per page, 1 to 1000 [default: 100].
    #[serde(default)]
    pub limit: Option<u32>,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LedgerEvent {
    pub id: i64,
    /// Its number in its shard's sequence, once the sequencer has stamped it.
    pub seq: Option<u64>,
    pub shard: usize,
    pub account: LedgerAccount,
    pub aux: BTreeMap<String, String>,
    pub amount: i64,
    pub effective_at: String,
    pub idempotency_key: String,
    pub info: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LedgerEvents {
    pub events: Vec<LedgerEvent>,
    /// Pass as `after` for the next page; absent at the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<i64>,
}

/// The most events a page or an export read returns.
pub const MAX_LEDGER_PAGE: u32 = 1000;
