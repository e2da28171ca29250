//! Points back into figures: per release over a span, per function, and the series to draw.
//! Spans up to 6 hours read minute points, longer ones hour points.

use std::collections::BTreeMap;
use std::time::Duration;

use faas_spec::api::observe::{
    Figures, FunctionMetrics, MetricPoint, ReleaseMetrics, ServiceMetrics,
};

use crate::Platform;
use crate::meter::now_us;
use crate::router::metrics::Snapshot;
use crate::store::{Delta, HOUR, MINUTE, Point, rfc3339_ms};

/// The resolution a span is read at.
pub fn resolution(span: Duration) -> i64 {
    if span <= Duration::from_secs(6 * 3600) {
        MINUTE
    } else {
        HOUR
    }
}

/// Golden figures of a sum of points over `span_s` seconds.
pub fn figures(d: &Delta, span_s: f64) -> Figures {
    let snap = Snapshot {
        requests: d.requests,
        errors_5xx: d.errors,
        buckets: d.buckets,
    };
    let ms = |q: f64| {
        snap.quantile(q)
            .map(|t| (t.as_micros() as f64 / 1000.0 * 10.0).round() / 10.0)
    };
    Figures {
        requests: d.requests,
        rps: if span_s > 0.0 {
            ((d.requests as f64 / span_s) * 1000.0).round() / 1000.0
        } else {
            0.0
        },
        errors_5xx: d.errors,
        error_ratio: (snap.error_rate() * 10_000.0).round() / 10_000.0,
        p50_ms: ms(0.5),
        p95_ms: ms(0.95),
        p99_ms: ms(0.99),
    }
}

/// The series of points, every release together, oldest first.
pub fn series(points: &[Point]) -> Vec<MetricPoint> {
    let mut by_at: BTreeMap<i64, Delta> = BTreeMap::new();
    for p in points {
        by_at.entry(p.at).or_default().add(&p.delta);
    }
    by_at
        .into_iter()
        .map(|(at, d)| MetricPoint {
            at,
            requests: d.requests,
            errors_5xx: d.errors,
            p99_ms: figures(&d, 1.0).p99_ms,
        })
        .collect()
}

/// One release's figures from the sum of its points.
pub fn release_metrics(
    release: &str,
    version: u64,
    current: bool,
    d: &Delta,
    span_s: f64,
) -> ReleaseMetrics {
    let cores = (d.cpu_wall_ns > 0).then(|| d.cpu_ns as f64 / d.cpu_wall_ns as f64);
    let round = |v: f64| (v * 1000.0).round() / 1000.0;
    ReleaseMetrics {
        release: release.to_owned(),
        version,
        current,
        figures: figures(d, span_s),
        cpu_cores: cores.map(round),
        cpu_percent: cores
            .zip(d.cpu_limit.filter(|l| *l > 0.0))
            .map(|(c, l)| round(c / l * 100.0)),
        memory_bytes: d.mem_bytes,
        memory_limit: d.mem_limit,
        memory_percent: d
            .mem_bytes
            .zip(d.mem_limit.filter(|l| *l > 0))
            .map(|(m, l)| round(m as f64 / l as f64 * 100.0)),
    }
}

/// An environment's figures over the last `span`.
pub fn service_metrics(
    p: &Platform,
    service: &str,
    env: &str,
    span: Duration,
) -> anyhow::Result<ServiceMetrics> {
    let now_s = now_us() / 1_000_000;
    let res = resolution(span);
    let from_s = now_s - span.as_secs() as i64;
    let points = p
        .store
        .release_points(service, env, res, from_s - (from_s.rem_euclid(res)))?;
    let current = p.store.current_release(service, env)?.map(|r| r.id);
    let mut per_release: BTreeMap<String, Delta> = BTreeMap::new();
    for pt in &points {
        per_release
            .entry(pt.key.clone())
            .or_default()
            .add(&pt.delta);
    }
    let span_s = span.as_secs_f64();
    let mut releases: Vec<ReleaseMetrics> = per_release
        .iter()
        .map(|(id, d)| {
            let version = p.store.release(id).ok().flatten().map_or(0, |r| r.version);
            release_metrics(id, version, current.as_deref() == Some(id), d, span_s)
        })
        .collect();
    releases.sort_by_key(|r| std::cmp::Reverse(r.version));
    let mut per_function: BTreeMap<String, Delta> = BTreeMap::new();
    for pt in p
        .store
        .function_points(service, env, res, from_s - from_s.rem_euclid(res))?
    {
        per_function.entry(pt.key).or_default().add(&pt.delta);
    }
    Ok(ServiceMetrics {
        service: service.to_owned(),
        env: env.to_owned(),
        from: rfc3339_ms(from_s * 1_000_000),
        to: rfc3339_ms(now_s * 1_000_000),
        releases,
        functions: per_function
            .iter()
            .map(|(f, d)| FunctionMetrics {
                function: f.clone(),
                figures: figures(d, span_s),
            })
            .collect(),
        series: series(&points),
    })
}
