//! Instances the runtime moves while they run (a Kubernetes pod replaced on another address):
//! the router follows each to its new address, so that a lost pod costs its instance only the
//! time its replacement takes to start, never its traffic for good.

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::StreamExt;

use crate::Platform;

/// Runs for the daemon's life; returns at once on a runtime whose addresses never change.
pub async fn follow(p: Arc<Platform>) {
    let Some(mut changes) = p.runtime.address_changes() else {
        return;
    };
    while let Some(change) = changes.next().await {
        let row = p
            .store
            .all_instances()
            .ok()
            .and_then(|rows| rows.into_iter().find(|r| r.id == change.instance));
        let Some(row) = row else { continue };
        let Some(manifest) = p.store.release_manifest(&row.release_id) else {
            continue;
        };
        let addr = SocketAddr::new(change.ip, manifest.run.port);
        if p.router.readdress(&row.service, &row.env, &row.id, addr) {
            tracing::info!(instance = %row.id, %addr, "its pod was replaced: the router follows it to its new address");
        }
    }
}
