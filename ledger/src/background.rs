//! Opening the ledger the configuration names, and its background work: the sequencer, the
//! aggregator and the housekeeping, in one task per process. Every process may run it: the
//! sequencer's lease (per shard) lets one stamp at a time, and the others wait their turn.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::sharded::Sharded;
use crate::sqlite::SqliteStorage;
use crate::storage::Storage;
use crate::{Ledger, LedgerConfig};

/// The storage the configuration names: its PostgreSQL shards, or else the SQLite file at
/// `sqlite`.
pub async fn open(config: LedgerConfig, sqlite: &Path) -> Result<Ledger> {
    let storage: Arc<dyn Storage> = if config.shards.is_empty() {
        Arc::new(SqliteStorage::open(sqlite)?)
    } else {
        Arc::new(Sharded::connect(&config.shards).await?)
    };
    Ok(Ledger::new(config, storage))
}

/// How long a sequencer's lease lasts without renewal: a dead holder's successor takes over
/// after at most this long.
pub const SEQUENCER_LEASE: Duration = Duration::from_secs(10);
/// How often the task looks for new events when the last round found none.
const IDLE: Duration = Duration::from_millis(200);
/// How often the housekeeping runs.
const HOUSEKEEPING: Duration = Duration::from_secs(3600);

/// Runs the sequencer, the aggregator and the housekeeping until `stop` resolves.
pub async fn run(ledger: Arc<Ledger>, holder: String, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    let mut last_housekeeping: Option<std::time::Instant> = None;
    loop {
        if last_housekeeping.is_none_or(|t| t.elapsed() >= HOUSEKEEPING) {
            if let Err(e) = ledger.maintain().await {
                tracing::warn!("ledger housekeeping: {e}");
            }
            last_housekeeping = Some(std::time::Instant::now());
        }
        let lease = SEQUENCER_LEASE.as_micros() as i64;
        let busy = match round(&ledger, &holder, lease).await {
            Ok(busy) => busy,
            Err(e) => {
                tracing::warn!("ledger background round: {e}");
                false
            }
        };
        if busy {
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(IDLE) => {}
        }
    }
}

/// One sequencer round and one aggregation round; true when either found work.
async fn round(ledger: &Ledger, holder: &str, lease: i64) -> Result<bool> {
    let sequenced = ledger.sequence(holder, lease).await?.unwrap_or(0);
    let aggregated = ledger.aggregate().await?;
    Ok(sequenced + aggregated > 0)
}
