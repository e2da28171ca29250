//! What the router measures per service, environment and release: requests, 5xx answers and a
//! latency histogram (time to response headers). Counters only grow, so a window's figures (the
//! canary analysis) are the difference of two snapshots. Exposed as Prometheus text.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Upper bounds of the latency buckets, in microseconds.
pub const BUCKETS_US: [u64; 16] = [
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    30_000_000,
    u64::MAX,
];

#[derive(Debug, Default)]
pub struct Series {
    pub requests: AtomicU64,
    pub errors_5xx: AtomicU64,
    pub failed: AtomicU64,
    pub latency_sum_us: AtomicU64,
    pub buckets: [AtomicU64; BUCKETS_US.len()],
}

/// A copy of a series' counters at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub requests: u64,
    pub errors_5xx: u64,
    pub buckets: [u64; BUCKETS_US.len()],
}

impl Snapshot {
    /// The counts between `earlier` and `self`.
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        let mut buckets = [0; BUCKETS_US.len()];
        for (i, b) in buckets.iter_mut().enumerate() {
            *b = self.buckets[i].saturating_sub(earlier.buckets[i]);
        }
        Snapshot {
            requests: self.requests.saturating_sub(earlier.requests),
            errors_5xx: self.errors_5xx.saturating_sub(earlier.errors_5xx),
            buckets,
        }
    }

    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors_5xx as f64 / self.requests as f64
        }
    }

    /// The quantile, e.g. `quantile(0.99)` for p99: linear within its histogram bucket, as
    /// Prometheus' `histogram_quantile` estimates it.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut seen = 0u64;
        for (i, count) in self.buckets.iter().enumerate() {
            if *count == 0 {
                continue;
            }
            if (seen + count) as f64 >= rank {
                let lower = if i == 0 { 0 } else { BUCKETS_US[i - 1] };
                let upper = BUCKETS_US[i].min(60_000_000);
                let within = ((rank - seen as f64) / *count as f64).clamp(0.0, 1.0);
                return Some(Duration::from_micros(
                    lower + ((upper - lower) as f64 * within) as u64,
                ));
            }
            seen += count;
        }
        None
    }
}

impl Series {
    pub fn record(&self, status: u16, latency: Duration) {
        let us = latency.as_micros().min(u128::from(u64::MAX - 1)) as u64;
        self.requests.fetch_add(1, Ordering::Relaxed);
        if status >= 500 {
            self.errors_5xx.fetch_add(1, Ordering::Relaxed);
        }
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
        let i = BUCKETS_US
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(BUCKETS_US.len() - 1);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut buckets = [0; BUCKETS_US.len()];
        for (i, b) in buckets.iter_mut().enumerate() {
            *b = self.buckets[i].load(Ordering::Relaxed);
        }
        Snapshot {
            requests: self.requests.load(Ordering::Relaxed),
            errors_5xx: self.errors_5xx.load(Ordering::Relaxed),
            buckets,
        }
    }
}

type Key = (String, String, String);

#[derive(Debug, Default)]
pub struct Metrics {
    series: RwLock<HashMap<Key, Arc<Series>>>,
    /// Requests that found no service at their host.
    pub unrouted: AtomicU64,
}

impl Metrics {
    pub fn series(&self, service: &str, env: &str, release: &str) -> Arc<Series> {
        let key = (service.to_owned(), env.to_owned(), release.to_owned());
        if let Some(s) = self
            .series
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return s.clone();
        }
        self.series
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default()
            .clone()
    }

    pub fn snapshot(&self, service: &str, env: &str, release: &str) -> Snapshot {
        self.series(service, env, release).snapshot()
    }

    /// Every series' counters now: ((service, env, release), snapshot).
    pub fn snapshot_all(&self) -> Vec<((String, String, String), Snapshot)> {
        self.series
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, s)| (k.clone(), s.snapshot()))
            .collect()
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let series = self.series.read().unwrap_or_else(|p| p.into_inner());
        let mut keys: Vec<&Key> = series.keys().collect();
        keys.sort();
        let mut out = String::new();
        let labels = |(s, e, r): &Key| format!("service=\"{s}\",env=\"{e}\",release=\"{r}\"");
        out.push_str(
            "# HELP faas_router_requests_total Requests the router answered, by release.\n",
        );
        out.push_str("# TYPE faas_router_requests_total counter\n");
        for k in &keys {
            let _ = writeln!(
                out,
                "faas_router_requests_total{{{}}} {}",
                labels(k),
                series[*k].requests.load(Ordering::Relaxed)
            );
        }
        out.push_str(
            "# HELP faas_router_responses_5xx_total Answers with a 5xx status, by release.\n",
        );
        out.push_str("# TYPE faas_router_responses_5xx_total counter\n");
        for k in &keys {
            let _ = writeln!(
                out,
                "faas_router_responses_5xx_total{{{}}} {}",
                labels(k),
                series[*k].errors_5xx.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP faas_router_request_duration_seconds Time to response headers.\n");
        out.push_str("# TYPE faas_router_request_duration_seconds histogram\n");
        for k in &keys {
            let s = &series[*k];
            let mut cumulative = 0;
            for (i, bound) in BUCKETS_US.iter().enumerate() {
                cumulative += s.buckets[i].load(Ordering::Relaxed);
                let le = if *bound == u64::MAX {
                    "+Inf".to_owned()
                } else {
                    format!("{}", *bound as f64 / 1e6)
                };
                let _ = writeln!(
                    out,
                    "faas_router_request_duration_seconds_bucket{{{},le=\"{le}\"}} {cumulative}",
                    labels(k)
                );
            }
            let _ = writeln!(
                out,
                "faas_router_request_duration_seconds_sum{{{}}} {}",
                labels(k),
                s.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "faas_router_request_duration_seconds_count{{{}}} {cumulative}",
                labels(k)
            );
        }
        out.push_str("# HELP faas_router_unrouted_total Requests for a host no service serves.\n");
        out.push_str("# TYPE faas_router_unrouted_total counter\n");
        let _ = writeln!(
            out,
            "faas_router_unrouted_total {}",
            self.unrouted.load(Ordering::Relaxed)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_windows() {
        let s = Series::default();
        for _ in 0..98 {
            s.record(200, Duration::from_millis(3));
        }
        s.record(500, Duration::from_millis(400));
        s.record(503, Duration::from_millis(400));
        let snap = s.snapshot();
        assert_eq!(snap.requests, 100);
        assert_eq!(snap.error_rate(), 0.02);
        // Within the bucket of 2.5 to 5 ms, and half way through the one of 250 to 500 ms.
        let p50 = snap.quantile(0.5).unwrap();
        assert!(p50 > Duration::from_micros(2500) && p50 <= Duration::from_millis(5));
        assert_eq!(snap.quantile(0.99), Some(Duration::from_millis(375)));
        let later = {
            s.record(200, Duration::from_millis(1));
            s.snapshot()
        };
        let window = later.since(&snap);
        assert_eq!(window.requests, 1);
        assert_eq!(window.errors_5xx, 0);
    }

    #[test]
    fn prometheus_text_has_labels_and_buckets() {
        let m = Metrics::default();
        m.series("svc", "prod", "rel-1")
            .record(200, Duration::from_millis(2));
        let text = m.render();
        assert!(text.contains(
            "faas_router_requests_total{service=\"svc\",env=\"prod\",release=\"rel-1\"} 1"
        ));
        assert!(text.contains("le=\"+Inf\"} 1"));
    }
}
