//! The ledger's errors, each with a stable code; they know nothing of HTTP.

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("there is no account type `{0}`")]
    UnknownAccountType(String),
    #[error("there is no {section} type `{name}`")]
    UnknownEntityType { section: &'static str, name: String },
    #[error("`{kind}` needs the key attribute `{attribute}`")]
    MissingKeyAttribute { kind: String, attribute: String },
    #[error("`{attribute}` is not an attribute of `{kind}` (key: {key}; auxiliary: {aux})")]
    UnknownAttribute {
        kind: String,
        attribute: String,
        key: String,
        aux: String,
    },
    #[error("`{kind}` may not be grouped by {wanted}; allowed: {allowed}")]
    GroupingNotAllowed {
        kind: String,
        wanted: String,
        allowed: String,
    },
    #[error("the period ends ({to}) before it starts ({from})")]
    InvalidPeriod { from: i64, to: i64 },
    #[error("an idempotency key is empty")]
    EmptyIdempotencyKey,
    #[error(
        "the idempotency key `{0}` was written before with other content; nothing of this batch was written"
    )]
    IdempotencyConflict(String),
    #[error("the {mode} lock {entity} is held by another holder")]
    LockHeld { entity: String, mode: &'static str },
    #[error("the write needs the lock {0}, which this holder does not hold")]
    LockNotHeld(String),
    #[error("the state {entity} is at version {current}, not {expected}")]
    StateConflict {
        entity: String,
        expected: u64,
        current: u64,
    },
    #[error("there is no shard {shard}: the ledger has {shards} (0 to {})", shards - 1)]
    NoSuchShard { shard: usize, shards: usize },
    #[error("the sum overflows 64-bit minor units")]
    Overflow,
    #[error("ledger storage: {0}")]
    Storage(String),
}

impl LedgerError {
    /// A stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownAccountType(_) => "unknown-account-type",
            Self::UnknownEntityType { .. } => "unknown-entity-type",
            Self::MissingKeyAttribute { .. } => "missing-key-attribute",
            Self::UnknownAttribute { .. } => "unknown-attribute",
            Self::GroupingNotAllowed { .. } => "grouping-not-allowed",
            Self::InvalidPeriod { .. } => "invalid-period",
            Self::EmptyIdempotencyKey => "empty-idempotency-key",
            Self::IdempotencyConflict(_) => "idempotency-conflict",
            Self::LockHeld { .. } => "lock-held",
            Self::LockNotHeld(_) => "lock-not-held",
            Self::StateConflict { .. } => "state-conflict",
            Self::NoSuchShard { .. } => "no-such-shard",
            Self::Overflow => "overflow",
            Self::Storage(_) => "storage",
        }
    }
}

impl From<rusqlite::Error> for LedgerError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Storage(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, LedgerError>;
