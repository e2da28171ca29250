//! Metering: what every instance the platform runs uses, read at an interval ([`sampler`]),
//! turned from samples of its counters into exact usage ([`usage`]) and stored as usage
//! records, then priced at the tenant's tariff and posted to the ledger ([`pricing`]).

pub mod pricing;
pub mod sampler;
pub mod usage;

use std::sync::Arc;
use std::time::Duration;

use crate::Platform;

/// The meter of one daemon.
pub struct Meter {
    /// None: metering is off.
    interval: Option<Duration>,
    /// Rounds, single readings and pricing runs never overlap.
    lock: tokio::sync::Mutex<()>,
    /// Pricing runs one at a time.
    pricing: tokio::sync::Mutex<()>,
    /// This daemon's life: the router's request counters start at 0 with each.
    life: String,
    started_us: i64,
}

pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

impl Meter {
    pub fn new(interval: Option<Duration>) -> Self {
        let started_us = now_us();
        Self {
            interval,
            lock: tokio::sync::Mutex::new(()),
            pricing: tokio::sync::Mutex::new(()),
            life: format!("router:{started_us}:{}", std::process::id()),
            started_us,
        }
    }

    pub fn enabled(&self) -> bool {
        self.interval.is_some()
    }

    pub fn interval(&self) -> Option<Duration> {
        self.interval
    }
}

/// Reads every instance at the interval and prices what was read, until the daemon stops.
pub async fn run(p: Arc<Platform>) {
    let Some(interval) = p.meter.interval else {
        tracing::info!("metering is off");
        return;
    };
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stopping = p.stopping.subscribe();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopping.changed() => return,
        }
        if p.runtime.status().available
            && let Err(e) = p.meter.round(&p).await
        {
            tracing::warn!("meter: a round failed: {e:#}");
        }
        if let Err(e) = pricing::price_pending(&p).await {
            tracing::warn!("meter: pricing failed: {e:#}");
        }
    }
}
