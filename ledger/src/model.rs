//! What the ledger takes and answers. Amounts are signed integers in the currency's minor unit
//! (the platform uses nano-units): a positive amount debits the account, a negative one credits
//! it. Times are microseconds since the Unix epoch, UTC.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Attribute name → value.
pub type Attributes = BTreeMap<String, String>;

/// Microseconds since 1970-01-01T00:00:00Z.
pub type Micros = i64;

/// An account: its type and key attributes; an event adds auxiliary attributes to it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AccountId {
    #[serde(rename = "type")]
    pub kind: String,
    pub key: Attributes,
}

/// One event to write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    pub account: AccountId,
    #[serde(default)]
    pub aux: Attributes,
    /// Signed, in minor units: positive debits, negative credits.
    pub amount: i64,
    pub effective_at: Micros,
    /// Derived from what the event records (never random per attempt): the same key with the
    /// same content is "already written", with other content a conflict.
    pub idempotency_key: String,
    #[serde(default)]
    pub info: serde_json::Value,
}

/// What became of one event of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Written {
    /// Stored now, with its id.
    New(i64),
    /// Stored before, by an earlier write of the same key and content.
    AlreadyWritten(i64),
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: i64,
    /// The sequencer's stamp, once it has run over the event.
    pub seq: Option<u64>,
    /// The shard whose sequencer stamps it (0 unless the ledger is sharded): a consumer keeps
    /// one watermark per shard.
    #[serde(default)]
    pub shard: usize,
    pub account: AccountId,
    pub aux: Attributes,
    pub amount: i64,
    pub effective_at: Micros,
    pub idempotency_key: String,
    pub info: serde_json::Value,
}

/// Debit and credit totals (credit as a positive number); balance = debit − credit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub debit: i64,
    pub credit: i64,
}

impl Totals {
    pub fn of(amount: i64) -> Self {
        if amount >= 0 {
            Totals {
                debit: amount,
                credit: 0,
            }
        } else {
            Totals {
                debit: 0,
                credit: -amount,
            }
        }
    }
    pub fn balance(self) -> i64 {
        self.debit - self.credit
    }
    pub fn add(&mut self, other: Totals) {
        self.debit += other.debit;
        self.credit += other.credit;
    }
    pub fn minus(self, other: Totals) -> Totals {
        Totals {
            debit: self.debit - other.debit,
            credit: self.credit - other.credit,
        }
    }
}

/// One group's balance: the values of the grouping attributes (empty: no grouping).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Balance {
    pub group: Attributes,
    pub balance: i64,
}

/// One group's movements over a half-open period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Turnover {
    pub group: Attributes,
    pub opening: i64,
    pub debit: i64,
    pub credit: i64,
    pub closing: i64,
}

/// A page of events and the cursor of the next one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventPage {
    pub events: Vec<Event>,
    /// Pass back as `after` for the next page; None at the end.
    pub next: Option<i64>,
}

/// How a lock is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    Exclusive,
    Shared,
}

/// A typed entity (a lock's or a state's): its type and key attributes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EntityId {
    #[serde(rename = "type")]
    pub kind: String,
    pub key: Attributes,
}

/// A state's value and the version a compare-and-set names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct State {
    /// 0: never written.
    pub version: u64,
    pub value: serde_json::Value,
}
