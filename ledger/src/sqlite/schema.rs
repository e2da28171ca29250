//! The SQLite ledger's tables, and the move of a ledger file from the first layout to this one.
//!
//! Layout 2 (this one): an event's id is its sequence number. One connection writes, in
//! transactions that commit in id order, and a rolled-back transaction leaves no gap, so ids
//! are dense and in commit order: the sequencer moves a watermark over them instead of
//! stamping each row. Auxiliary attributes are interned in `dims`, so an event row and the
//! account index hold an integer where layout 1 held the attributes' JSON.

use rusqlite::{Connection, OptionalExtension};

use crate::error::Result;

/// `PRAGMA user_version` of a ledger file in this layout.
pub const VERSION: i64 = 2;

const TABLES: &str = r#"
CREATE TABLE IF NOT EXISTS accounts (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    UNIQUE (kind, key)
);
CREATE TABLE IF NOT EXISTS dims (
    id INTEGER PRIMARY KEY,
    aux TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS snapshots (
    account INTEGER NOT NULL,
    grouping TEXT NOT NULL,
    vals TEXT NOT NULL,
    boundary INTEGER NOT NULL,
    debit INTEGER NOT NULL,
    credit INTEGER NOT NULL,
    PRIMARY KEY (account, grouping, vals, boundary)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS progress (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS locks (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    holder TEXT NOT NULL,
    mode TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (kind, key, holder)
);
CREATE TABLE IF NOT EXISTS states (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    version INTEGER NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (kind, key)
);
"#;

/// The events table of this layout, under `name`.
fn events_table(name: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {name} (
            id INTEGER PRIMARY KEY,
            account INTEGER NOT NULL REFERENCES accounts(id),
            dim INTEGER NOT NULL REFERENCES dims(id),
            amount INTEGER NOT NULL,
            effective_at INTEGER NOT NULL,
            idem TEXT NOT NULL,
            hash BLOB NOT NULL,
            info TEXT NOT NULL,
            UNIQUE (account, idem)
        );"
    )
}

/// Covering (the id rides along in every SQLite index): a balance reads the events after its
/// snapshot from the index alone, in time order.
const INDEXES: &str = r#"
CREATE INDEX IF NOT EXISTS events_by_account_time ON events (account, effective_at, amount, dim);
"#;

/// Brings the file to this layout: creates what is missing, and moves a layout-1 file's
/// events over in one transaction (nothing half-moved).
pub fn init(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let layout_one: bool = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM pragma_table_info('events') WHERE name = 'seq')",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(false);
    tx.execute_batch(TABLES)?;
    if layout_one {
        from_layout_one(&tx)?;
    } else {
        tx.execute_batch(&events_table("events"))?;
    }
    tx.execute_batch(INDEXES)?;
    tx.pragma_update(None, "user_version", VERSION)?;
    tx.commit()?;
    Ok(())
}

/// Layout 1 kept each event's aux JSON in its row and a sequence number stamped in id order
/// (so equal to its id, ids being dense); the watermarks in `progress` are mapped from
/// sequence numbers to ids all the same.
fn from_layout_one(tx: &rusqlite::Transaction<'_>) -> Result<()> {
    tx.execute_batch(&events_table("events_v2"))?;
    tx.execute_batch(
        r#"
        INSERT OR IGNORE INTO dims (aux) SELECT DISTINCT aux FROM events ORDER BY aux;
        INSERT INTO events_v2 (id, account, dim, amount, effective_at, idem, hash, info)
            SELECT e.id, e.account, d.id, e.amount, e.effective_at, e.idem, e.hash, e.info
            FROM events e JOIN dims d ON d.aux = e.aux ORDER BY e.id;
        UPDATE progress
            SET value = COALESCE((SELECT id FROM events WHERE seq = progress.value), 0)
            WHERE name IN ('sequenced', 'aggregated') AND value > 0;
        DROP TABLE events;
        ALTER TABLE events_v2 RENAME TO events;
        "#,
    )?;
    Ok(())
}
