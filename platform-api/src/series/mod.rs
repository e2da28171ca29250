//! The golden metrics kept over time: every few seconds the recorder adds what each release
//! did since its last look (the router's counters, each instance's CPU and memory) into the
//! store's minute and hour points, and scrapes the functions of services that expose metrics
//! ([`scrape`]). [`query`] turns points back into figures per release and series to draw.

pub mod query;
pub mod scrape;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::Platform;
use crate::meter::now_us;
use crate::router::metrics::Snapshot;
use crate::store::{Delta, InstanceRow};

/// How often the recorder looks.
pub const INTERVAL: Duration = Duration::from_secs(5);

/// An instance's last reading.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    pub at_us: i64,
    pub cpu_ns: u64,
    pub memory_bytes: u64,
    pub memory_limit: Option<u64>,
}

#[derive(Default)]
pub struct Recorder {
    latest: Mutex<HashMap<String, Reading>>,
    router: Mutex<HashMap<(String, String, String), Snapshot>>,
    functions: Mutex<HashMap<String, scrape::Counters>>,
}

impl Recorder {
    /// Every instance's last reading, by instance id.
    pub fn latest(&self) -> Vec<(String, Reading)> {
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// One look: router counters, instance readings, function scrapes, into the store.
    pub async fn record(&self, p: &Platform) -> anyhow::Result<()> {
        let at_s = now_us() / 1_000_000;
        let mut deltas: HashMap<(String, String, String), Delta> = HashMap::new();
        {
            let mut before = self.router.lock().unwrap_or_else(|e| e.into_inner());
            for (key, snap) in p.router.metrics.snapshot_all() {
                let zero = Snapshot::default();
                let d = snap.since(before.get(&key).unwrap_or(&zero));
                if d.requests > 0 {
                    deltas.insert(
                        key.clone(),
                        Delta {
                            requests: d.requests,
                            errors: d.errors_5xx,
                            buckets: d.buckets,
                            ..Default::default()
                        },
                    );
                }
                before.insert(key, snap);
            }
        }
        let instances = p.store.all_instances()?;
        let readings =
            futures_util::future::join_all(instances.iter().map(|row| read(p, row))).await;
        {
            let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
            let mut live = std::collections::HashSet::new();
            for (row, reading) in instances.iter().zip(readings) {
                live.insert(row.id.clone());
                let Some(now) = reading else { continue };
                let key = (row.service.clone(), row.env.clone(), row.release_id.clone());
                let d = deltas.entry(key).or_default();
                if let Some(before) = latest.get(&row.id)
                    && now.cpu_ns >= before.cpu_ns
                    && now.at_us > before.at_us
                {
                    d.cpu_ns += now.cpu_ns - before.cpu_ns;
                    d.cpu_wall_ns += ((now.at_us - before.at_us) * 1000) as u64;
                }
                d.mem_bytes = d.mem_bytes.max(Some(now.memory_bytes));
                d.mem_limit = now.memory_limit.or(d.mem_limit);
                d.cpu_limit = cpu_limit(p, &row.release_id).or(d.cpu_limit);
                latest.insert(row.id.clone(), now);
            }
            latest.retain(|id, _| live.contains(id));
        }
        let rows: Vec<(&str, &str, &str, Delta)> = deltas
            .iter()
            .filter(|(_, d)| !d.is_empty())
            .map(|((s, e, r), d)| (s.as_str(), e.as_str(), r.as_str(), d.clone()))
            .collect();
        p.store.add_release_points(at_s, &rows)?;
        scrape::functions(p, &self.functions, &instances, at_s).await?;
        Ok(())
    }
}

fn cpu_limit(p: &Platform, release: &str) -> Option<f64> {
    Some(p.store.release_manifest(release)?.size.cpu)
}

async fn read(p: &Platform, row: &InstanceRow) -> Option<Reading> {
    if row.state == "draining" {
        return None;
    }
    let stats = p.runtime.stats(row.container()).await.ok()?;
    Some(Reading {
        at_us: stats.read_at_us.unwrap_or_else(now_us),
        cpu_ns: stats.cpu_ns,
        memory_bytes: stats.memory_bytes,
        memory_limit: stats.memory_limit,
    })
}

/// Records every [`INTERVAL`] and prunes old points hourly, until the daemon stops.
pub async fn run(p: Arc<Platform>) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stopping = p.stopping.subscribe();
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopping.changed() => return,
        }
        if let Err(e) = p.series.record(&p).await {
            tracing::warn!("metrics: a look failed: {e:#}");
        }
        if n.is_multiple_of(720) {
            let _ = p.store.prune_points(now_us() / 1_000_000);
        }
        n += 1;
    }
}
