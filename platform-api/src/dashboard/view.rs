//! What the pages share: the services a viewer may see, their environments' summaries (release,
//! health, last hour's figures, open problems, this month's cost), and small formatting helpers.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::charts;
use crate::Platform;
use crate::auth::Principal;
use crate::billing::period::{Asked, Period};
use crate::meter::now_us;
use crate::store::{Delta, MINUTE, Point, ServiceRow};

/// A query-string value, percent-encoded.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `3 min ago`, `2 h ago`, from an RFC 3339 time.
pub fn ago(rfc3339: &str) -> String {
    let Ok(at) = humantime::parse_rfc3339_weak(rfc3339.trim_end_matches('Z')) else {
        return rfc3339.to_owned();
    };
    let secs = std::time::SystemTime::now()
        .duration_since(at)
        .map_or(0, |d| d.as_secs());
    match secs {
        0..=59 => format!("{secs} s ago"),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=172_799 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

/// Seconds between two RFC 3339 times, as `12.3 s` or `4 min`.
pub fn took(from: &str, to: &str) -> String {
    let parse = |t: &str| humantime::parse_rfc3339_weak(t.trim_end_matches('Z')).ok();
    match (parse(from), parse(to)) {
        (Some(a), Some(b)) => {
            let s = b.duration_since(a).unwrap_or_default().as_secs_f64();
            if s < 120.0 {
                format!("{s:.1} s")
            } else {
                format!("{:.0} min", s / 60.0)
            }
        }
        _ => "-".into(),
    }
}

/// The services a viewer may see, by name.
pub fn services(p: &Platform, who: &Principal) -> Vec<ServiceRow> {
    let owner = (!who.is_admin()).then_some(who.tenant.as_str());
    p.store.services(owner).unwrap_or_default()
}

/// An environment on the overview.
#[derive(Debug, Clone, Serialize)]
pub struct EnvSummary {
    pub env: String,
    pub version: Option<u64>,
    pub instances: usize,
    pub healthy: usize,
    pub rps: String,
    pub error_pct: String,
    pub p99: String,
    pub requests: u64,
    pub chart: String,
    pub points: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceSummary {
    pub name: String,
    pub owner: String,
    pub envs: Vec<EnvSummary>,
    pub problems: i64,
    pub cost: String,
}

fn sum(points: &[&Point]) -> Delta {
    let mut d = Delta::default();
    for p in points {
        d.add(&p.delta);
    }
    d
}

/// Every visible service's summary: one read of the last hour's points for all of them.
pub async fn summaries(p: &Platform, who: &Principal) -> Vec<ServiceSummary> {
    let services = services(p, who);
    let now_s = now_us() / 1_000_000;
    let from_s = now_s - 3600 - (now_s % MINUTE);
    let points = p
        .store
        .all_release_points(MINUTE, from_s)
        .unwrap_or_default();
    let mut by_env: HashMap<(&str, &str), Vec<&Point>> = HashMap::new();
    for pt in &points {
        by_env
            .entry((pt.service.as_str(), pt.env.as_str()))
            .or_default()
            .push(pt);
    }
    let open = p.store.open_problem_counts().unwrap_or_default();
    let mut costs: HashMap<String, HashMap<String, String>> = HashMap::new();
    let mut out = Vec::with_capacity(services.len());
    for s in &services {
        if !costs.contains_key(&s.owner) {
            costs.insert(s.owner.clone(), month_costs(p, &s.owner).await);
        }
        let mut envs = Vec::new();
        for (env, _) in p.store.environments(&s.name).unwrap_or_default() {
            let version = p
                .store
                .current_release(&s.name, &env)
                .ok()
                .flatten()
                .map(|r| r.version);
            let instances =
                crate::api::services::instances_of(p, &s.name, &env).unwrap_or_default();
            let healthy = instances.iter().filter(|i| i.healthy).count();
            let pts = by_env
                .get(&(s.name.as_str(), env.as_str()))
                .cloned()
                .unwrap_or_default();
            let d = sum(&pts);
            let f = crate::series::query::figures(&d, 3600.0);
            let mut per_minute: std::collections::BTreeMap<i64, f64> =
                std::collections::BTreeMap::new();
            for pt in &pts {
                *per_minute.entry(pt.at).or_default() += pt.delta.requests as f64;
            }
            let series: Vec<(i64, f64)> = per_minute.into_iter().collect();
            envs.push(EnvSummary {
                env: env.clone(),
                version,
                instances: instances.len(),
                healthy,
                rps: format!("{:.2}", f.rps),
                error_pct: format!("{:.1}", f.error_ratio * 100.0),
                p99: f.p99_ms.map_or_else(|| "-".into(), |v| format!("{v:.0}")),
                requests: f.requests,
                chart: charts::sparkline(&series, from_s, now_s, "requests per minute, last hour"),
                points: charts::data(&series),
            });
        }
        out.push(ServiceSummary {
            name: s.name.clone(),
            owner: s.owner.clone(),
            envs,
            problems: open.get(&s.name).copied().unwrap_or(0),
            cost: costs
                .get(&s.owner)
                .and_then(|c| c.get(&s.name))
                .cloned()
                .unwrap_or_else(|| "-".into()),
        });
    }
    out
}

type CostCache = Mutex<HashMap<String, (Instant, HashMap<String, String>)>>;

/// This month's accrued cost of each of a tenant's services (`12.34 EUR`), read from the
/// ledger at most once a minute.
pub async fn month_costs(p: &Platform, tenant: &str) -> HashMap<String, String> {
    static CACHE: std::sync::OnceLock<CostCache> = std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some((at, costs)) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(tenant)
        && at.elapsed() < Duration::from_secs(60)
    {
        return costs.clone();
    }
    let mut costs = HashMap::new();
    if let Ok(period) = Period::resolve(&Asked::default(), now_us())
        && let Ok(bill) =
            crate::billing::report::report(p, tenant, &period, &["service".to_owned()], false).await
    {
        for s in &bill.subtotals {
            if let Some(svc) = s.group.get("service") {
                costs.insert(
                    svc.clone(),
                    format!(
                        "{} {}",
                        faas_spec::money::format_amount(s.cost_nanos, &s.currency),
                        s.currency
                    ),
                );
            }
        }
    }
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(tenant.to_owned(), (Instant::now(), costs.clone()));
    costs
}
