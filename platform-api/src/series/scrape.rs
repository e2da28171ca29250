//! Per-function figures of services that expose metrics (`[metrics] path` in app.toml; the
//! python-function runtime serves `/_metrics`): each instance is scraped, the growth of its
//! counters since the last scrape is added into the function's points. A counter that went
//! down is an instance that restarted: its whole value is new.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::Platform;
use crate::router::metrics::BUCKETS_US;
use crate::store::{Buckets, Delta, InstanceRow};

/// One instance's counters: per function, its calls, 5xx answers and latency buckets.
pub type Counters = HashMap<String, (u64, u64, Buckets)>;

/// Reads the text of a `/_metrics` answer.
pub fn parse(text: &str) -> Counters {
    let mut out: Counters = HashMap::new();
    let mut cumulative: HashMap<String, Vec<(f64, u64)>> = HashMap::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once('{') else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let label = |key: &str| {
            labels.split(',').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k.trim() == key).then(|| v.trim().trim_matches('"').to_owned())
            })
        };
        let Some(function) = label("function") else {
            continue;
        };
        match name {
            "faas_function_calls_total" => {
                let entry = out.entry(function).or_insert((0, 0, [0; BUCKETS_US.len()]));
                entry.0 += value as u64;
                if label("status").is_some_and(|s| s.starts_with('5')) {
                    entry.1 += value as u64;
                }
            }
            "faas_function_duration_seconds_bucket" => {
                let le = match label("le").as_deref() {
                    Some("+Inf") => f64::INFINITY,
                    Some(v) => v.parse().unwrap_or(f64::INFINITY),
                    None => continue,
                };
                cumulative
                    .entry(function)
                    .or_default()
                    .push((le, value as u64));
            }
            _ => {}
        }
    }
    for (function, mut bounds) in cumulative {
        bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
        let entry = out.entry(function).or_insert((0, 0, [0; BUCKETS_US.len()]));
        let mut below = 0;
        for (le, count) in bounds {
            let us = le * 1e6;
            let i = BUCKETS_US
                .iter()
                .position(|b| (*b as f64) >= us - 0.5)
                .unwrap_or(BUCKETS_US.len() - 1);
            entry.2[i] += count.saturating_sub(below);
            below = count;
        }
    }
    out
}

/// What grew from `before` to `now`.
fn growth(before: Option<&Counters>, now: &Counters) -> Vec<(String, Delta)> {
    let mut out = Vec::new();
    for (function, (calls, errors, buckets)) in now {
        let prior = before.and_then(|b| b.get(function));
        let restarted = prior.is_some_and(|p| p.0 > *calls);
        let (pc, pe, pb) = match prior {
            Some(p) if !restarted => (p.0, p.1, p.2),
            _ => (0, 0, [0; BUCKETS_US.len()]),
        };
        let mut d = Delta {
            requests: calls - pc,
            errors: errors.saturating_sub(pe),
            ..Default::default()
        };
        for i in 0..d.buckets.len() {
            d.buckets[i] = buckets[i].saturating_sub(pb[i]);
        }
        if d.requests > 0 {
            out.push((function.clone(), d));
        }
    }
    out
}

/// Scrapes every instance whose release exposes metrics; adds what grew into the points.
pub async fn functions(
    p: &Platform,
    kept: &Mutex<HashMap<String, Counters>>,
    instances: &[InstanceRow],
    at_s: i64,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let mut sums: HashMap<(String, String, String), Delta> = HashMap::new();
    let mut live = Vec::new();
    for row in instances.iter().filter(|r| r.state != "draining") {
        let Some(manifest) = p.store.release_manifest(&row.release_id) else {
            continue;
        };
        let Some(endpoint) = manifest.metrics.as_ref() else {
            continue;
        };
        // Where the router sends it requests: no engine call per scrape.
        let Some(backend) = p.router.backend(&row.service, &row.env, &row.id) else {
            continue;
        };
        let url = format!("http://{}{}", backend.addr, endpoint.path);
        let Ok(answer) = client.get(&url).send().await else {
            continue;
        };
        let Ok(text) = answer.error_for_status().map(|a| a.text()) else {
            continue;
        };
        let Ok(text) = text.await else { continue };
        let now = parse(&text);
        live.push(row.id.clone());
        let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
        for (function, d) in growth(kept.get(&row.id), &now) {
            let sum = sums
                .entry((row.service.clone(), row.env.clone(), function))
                .or_default();
            sum.add(&d);
        }
        kept.insert(row.id.clone(), now);
    }
    kept.lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|id, _| instances.iter().any(|r| &r.id == id));
    let rows: Vec<(&str, &str, &str, Delta)> = sums
        .iter()
        .map(|((s, e, f), d)| (s.as_str(), e.as_str(), f.as_str(), d.clone()))
        .collect();
    if !rows.is_empty() {
        p.store.add_function_points(at_s, &rows)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# TYPE faas_function_calls_total counter
faas_function_calls_total{function="add",status="200"} 5
faas_function_calls_total{function="add",status="500"} 1
faas_function_duration_seconds_bucket{function="add",le="0.0005"} 2
faas_function_duration_seconds_bucket{function="add",le="0.001"} 4
faas_function_duration_seconds_bucket{function="add",le="0.0025"} 6
faas_function_duration_seconds_bucket{function="add",le="+Inf"} 6
"#;

    #[test]
    fn the_runtime_text_reads_into_calls_errors_and_buckets() {
        let c = parse(TEXT);
        let (calls, errors, buckets) = c["add"];
        assert_eq!((calls, errors), (6, 1));
        assert_eq!(&buckets[..3], &[2, 2, 2]);
        assert_eq!(buckets.iter().sum::<u64>(), 6);
    }

    #[test]
    fn growth_is_the_difference_and_a_restart_counts_anew() {
        let before = parse(TEXT);
        let mut now = before.clone();
        now.get_mut("add").unwrap().0 += 3;
        now.get_mut("add").unwrap().2[0] += 3;
        let g = growth(Some(&before), &now);
        assert_eq!(g[0].1.requests, 3);
        assert_eq!(g[0].1.buckets[0], 3);
        let restarted = parse("faas_function_calls_total{function=\"add\",status=\"200\"} 2\n");
        assert_eq!(growth(Some(&before), &restarted)[0].1.requests, 2);
    }
}
