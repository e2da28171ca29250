//! The behaviour suite on the embedded SQLite file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod suite;

use std::sync::Arc;

use faas_ledger::sqlite::SqliteStorage;
use faas_ledger::{Ledger, LedgerConfig};

async fn ledger() -> (Ledger, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open(&dir.path().join("ledger.sqlite")).unwrap();
    (
        Ledger::new(LedgerConfig::defaults(), Arc::new(storage)),
        dir,
    )
}

suite::cases!(ledger);
