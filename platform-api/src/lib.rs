//! faas-platform: the daemon the CLI talks to. It keeps its state in SQLite ([`store`]), runs
//! instances through a runtime ([`runtime`]: the Docker Engine today), routes traffic to them ([`router`]) and moves
//! environments from release to release through persisted, resumable deployments
//! ([`deployer`]). [`api::app`] builds the HTTP API apart from any socket.

pub mod addresses;
pub mod api;
pub mod auth;
pub mod billing;
pub mod config;
pub mod dashboard;
pub mod databases;
pub mod dependencies;
pub mod deployer;
pub mod error;
pub mod events;
pub mod logs;
pub mod meter;
pub mod problems;
pub mod reconcile;
pub mod router;
pub mod runs;
pub mod runtime;
pub mod secrets;
pub mod series;
pub mod store;
pub mod tasks;
pub mod traces;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use api::{app, openapi_json};
use config::Config;

/// Everything the API handlers and the deployer share.
pub struct Platform {
    pub config: Config,
    pub store: Arc<store::Store>,
    pub runtime: Arc<dyn runtime::Runtime>,
    pub router: Arc<router::Router>,
    pub events: events::Events,
    pub sealer: secrets::Sealer,
    pub logs: Arc<logs::LogHub>,
    /// The accounts ledger billing posts into (SQLite in the data directory, or PostgreSQL).
    pub ledger: Arc<faas_ledger::Ledger>,
    /// Reads what every instance uses, and prices it into the ledger.
    pub meter: meter::Meter,
    /// Turns true when the daemon stops: endless streams (followed logs) end then, so that the
    /// graceful shutdown is not held open by them.
    pub stopping: tokio::sync::watch::Sender<bool>,
    pub started: Instant,
    /// Deployments this daemon is driving, by id.
    pub running: Mutex<HashMap<String, tokio::task::AbortHandle>>,
    /// The canaries under way, by deployment id: their step and the start of its window.
    pub canaries: Mutex<HashMap<String, deployer::LiveCanary>>,
    /// Where each engine's database server comes from.
    pub databases: databases::servers::Servers,
    /// The one-off runs this daemon follows.
    pub runs: runs::Runner,
    /// Task chains: the action registry's and the runs' engine.
    pub tasks: tasks::Engine,
    /// Problems as they happen, and who wants to hear of them.
    pub problems: problems::Problems,
    /// The golden metrics kept over time.
    pub series: series::Recorder,
    /// The router's spans, kept in their own file.
    pub traces: traces::Traces,
}

pub type AppState = Arc<Platform>;

impl Platform {
    /// The secrets of an environment as they were at `version`, opened, as environment
    /// variables for its instances.
    pub fn secret_env(
        &self,
        service: &str,
        env: &str,
        version: u64,
    ) -> anyhow::Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for (name, nonce, sealed) in self.store.sealed_secrets_at(service, env, version)? {
            let value = self.sealer.open_value(&name, &nonce, &sealed)?;
            out.push((name, value));
        }
        Ok(out)
    }

    /// Stops an environment: the deployments driving it, then its instances (drained, removed)
    /// and its router pool. Its history stays in the store.
    pub async fn tear_down(&self, service: &str, env: &str) -> Result<(), runtime::RuntimeError> {
        let deployments = self
            .store
            .deployments(service, Some(env))
            .unwrap_or_default();
        for d in deployments {
            if let Some(handle) = self
                .running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&d.id)
            {
                handle.abort();
            }
            deployer::canary::forget(self, &d.id);
        }
        let grace = std::time::Duration::from_secs(5);
        for inst in self.store.instances(service, env).unwrap_or_default() {
            self.router
                .drain_and_remove(service, env, &inst.id, grace)
                .await;
            let container = inst
                .container_id
                .clone()
                .unwrap_or(inst.container_name.clone());
            // Its last reading before the stop, and its usage closed at its finish after.
            self.meter.read_one(self, &inst).await;
            self.runtime.stop(&container, grace).await?;
            self.meter.read_one(self, &inst).await;
            self.logs.finish(&inst.id, grace).await;
            self.runtime.remove(&container).await?;
            let _ = self.store.remove_instance(&inst.id);
        }
        self.router.remove_environment(service, env);
        Ok(())
    }

    /// Where the router sends an instance's requests.
    pub fn upstream_addr(
        &self,
        state: &runtime::InstanceState,
        container_port: u16,
    ) -> Option<std::net::SocketAddr> {
        match (self.config.upstream, state.ip, state.host_port) {
            (config::Upstream::ContainerIp, Some(ip), _) => {
                Some(std::net::SocketAddr::new(ip, container_port))
            }
            (_, _, Some(port)) => Some(std::net::SocketAddr::from(([127, 0, 0, 1], port))),
            _ => None,
        }
    }

    /// The URL a service's environment is served at.
    pub fn url(&self, service: &str, env: &str) -> String {
        self.url_of_host(&self.router.host_for(service, env))
    }

    /// The preview URL of the new (green) or the previous (blue) set of an environment.
    pub fn preview_url(&self, service: &str, env: &str, green: bool) -> String {
        self.url_of_host(&self.router.preview_host(service, env, green))
    }

    pub fn url_of_host(&self, host: &str) -> String {
        match self.config.router.port() {
            80 => format!("http://{host}"),
            port => format!("http://{host}:{port}"),
        }
    }
}
