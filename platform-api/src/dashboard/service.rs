//! A service's page, for one environment: its release and the actions on it, the canary under
//! way with its weights and figures, charts of its golden metrics with deploy markers, its
//! deploy timeline (every step, each canary step's weights and figures), instances, problems
//! and exceptions, live logs, databases, cron entries and runs, and its cost by resource and
//! release this month.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::{Value, context};
use serde::Deserialize;
use serde_json::json;

use super::charts::{self, Marker};
use super::session::Viewer;
use super::view::{ago, took};
use super::{error_page, render};
use crate::api::Path;
use crate::billing::period::{Asked, Period};
use crate::meter::now_us;
use crate::{AppState, Platform};

/// The spans a page offers.
pub const SPANS: [&str; 5] = ["1h", "6h", "24h", "7d", "30d"];

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    pub env: Option<String>,
    pub span: Option<String>,
    /// What an action just did, said once at the top.
    pub done: Option<String>,
}

fn secs_of(rfc3339: &str) -> i64 {
    humantime::parse_rfc3339_weak(rfc3339.trim_end_matches('Z'))
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64)
}

pub async fn page(
    State(p): State<AppState>,
    viewer: Viewer,
    Path(svc): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let Ok(row) = crate::api::services::visible(&p, &viewer.principal, &svc) else {
        return error_page(
            StatusCode::NOT_FOUND,
            "No such service",
            &format!("There is no service `{svc}` you can see."),
            Some("The overview lists yours."),
        );
    };
    let envs: Vec<String> = p
        .store
        .environments(&svc)
        .unwrap_or_default()
        .into_iter()
        .map(|(e, _)| e)
        .collect();
    let env = match q.env {
        Some(e) if envs.contains(&e) => e,
        Some(e) => {
            return error_page(
                StatusCode::NOT_FOUND,
                "No such environment",
                &format!("{svc} has no environment `{e}`."),
                Some("Pick one of its environments on its page."),
            );
        }
        None if envs.iter().any(|e| e == "prod") => "prod".into(),
        None => envs.first().cloned().unwrap_or_else(|| "prod".into()),
    };
    let span_text = q
        .span
        .filter(|s| SPANS.contains(&s.as_str()))
        .unwrap_or_else(|| "1h".into());
    let span = humantime::parse_duration(&span_text).unwrap_or(Duration::from_secs(3600));
    let body = assemble(&p, &svc, &env, span).await;
    render(
        "service.html",
        context! {
            viewer => viewer.context(),
            page => "service",
            live => svc.clone(),
            service => svc.clone(),
            owner => row.owner,
            env => env.clone(),
            envs => envs,
            span => span_text,
            spans => SPANS,
            done => q.done,
            url => p.url(&svc, &env),
            ..Value::from_serialize(&body)
        },
    )
}

async fn assemble(p: &Platform, svc: &str, env: &str, span: Duration) -> serde_json::Value {
    let current = p.store.current_release(svc, env).ok().flatten();
    let releases: Vec<serde_json::Value> = p
        .store
        .releases(svc, Some(env))
        .unwrap_or_default()
        .iter()
        .map(|r| json!({ "version": r.version, "id": r.id, "created": ago(&r.created_at), "image": r.image_ref }))
        .collect();
    let replicas = p.store.replicas(svc, env).ok().flatten().or_else(|| {
        current
            .as_ref()
            .and_then(|r| r.manifest().ok())
            .map(|m| m.scale.replicas)
    });

    // The deploy timeline, newest first, every step with its canary figures.
    let deployments = p.store.deployments(svc, Some(env)).unwrap_or_default();
    let version = |id: &str| p.store.release(id).ok().flatten().map(|r| r.version);
    let mut timeline = Vec::new();
    let mut markers = Vec::new();
    let mut canary = serde_json::Value::Null;
    for d in deployments.iter().take(15) {
        let steps: Vec<serde_json::Value> = p
            .store
            .steps(&d.id, 0)
            .unwrap_or_default()
            .iter()
            .map(|s| {
                let figures = s.canary.as_ref().map(|c| json!({
                    "step": c.step + 1, "steps": c.steps.len(),
                    "canary_weight": c.canary.weight, "baseline_weight": c.baseline.weight,
                    "canary_requests": c.canary.requests, "baseline_requests": c.baseline.requests,
                    "canary_errors": format!("{:.2}", c.canary.error_rate * 100.0),
                    "baseline_errors": format!("{:.2}", c.baseline.error_rate * 100.0),
                    "canary_p99": c.canary.p99_ms.map(|v| format!("{v:.0}")),
                    "baseline_p99": c.baseline.p99_ms.map(|v| format!("{v:.0}")),
                }));
                json!({ "at": s.at, "kind": s.kind, "message": s.message, "state": s.state.as_str(), "canary": figures })
            })
            .collect();
        if d.state.is_terminal() {
            markers.push(Marker {
                at: secs_of(&d.created_at),
                good: d.state.as_str() == "succeeded",
            });
        } else if let Some((live, report)) = crate::deployer::canary_status(p, &d.id) {
            canary = json!({
                "deployment": d.id, "step": report.step + 1, "steps": report.steps,
                "holding": live.holding,
                "canary_version": report.canary.version, "canary_weight": report.canary.weight,
                "baseline_version": report.baseline.version, "baseline_weight": report.baseline.weight,
                "canary_requests": report.canary.requests, "canary_errors": format!("{:.2}", report.canary.error_rate * 100.0),
                "baseline_requests": report.baseline.requests, "baseline_errors": format!("{:.2}", report.baseline.error_rate * 100.0),
                "canary_p99": report.canary.p99_ms.map(|v| format!("{v:.0}")),
                "baseline_p99": report.baseline.p99_ms.map(|v| format!("{v:.0}")),
            });
        }
        timeline.push(json!({
            "id": d.id, "version": version(&d.release_id), "previous": d.previous_release.as_deref().and_then(version),
            "strategy": d.strategy.to_string(), "state": d.state.as_str(), "reason": d.reason,
            "when": d.created_at, "ago": ago(&d.created_at),
            "took": if d.state.is_terminal() { took(&d.created_at, &d.updated_at) } else { "running".into() },
            "steps": steps,
        }));
    }

    // Golden metrics over the span, with the deploys marked.
    let metrics = crate::series::query::service_metrics(p, svc, env, span).ok();
    let now_s = now_us() / 1_000_000;
    let from_s = now_s - span.as_secs() as i64;
    let (mut requests, mut errors, mut p99) = (Vec::new(), Vec::new(), Vec::new());
    let res = crate::series::query::resolution(span) as f64;
    for pt in metrics.iter().flat_map(|m| m.series.iter()) {
        requests.push((pt.at, pt.requests as f64 / res));
        errors.push((pt.at, pt.errors_5xx as f64));
        if let Some(v) = pt.p99_ms {
            p99.push((pt.at, v));
        }
    }
    let draw = |pts: &[(i64, f64)], label: &str| {
        json!({
            "svg": charts::chart(pts, from_s, now_s, &markers, label, 600.0, 120.0),
            "points": charts::data(pts),
            "max": pts.iter().map(|(_, v)| *v).fold(0.0_f64, f64::max),
        })
    };
    let charts = json!({
        "rps": draw(&requests, "requests per second"),
        "errors": draw(&errors, "5xx answers"),
        "p99": draw(&p99, "p99 latency in ms"),
    });

    // Instances, with their last reading.
    let readings: std::collections::HashMap<String, crate::series::Reading> =
        p.series.latest().into_iter().collect();
    let instances: Vec<serde_json::Value> = crate::api::services::instances_of(p, svc, env)
        .unwrap_or_default()
        .iter()
        .map(|i| {
            let r = readings.get(&i.id);
            json!({
                "id": i.id, "version": i.version, "state": i.state, "healthy": i.healthy, "role": i.role,
                "address": i.address,
                "memory": r.map(|r| crate::problems::bytes(r.memory_bytes)),
                "memory_pct": r.and_then(|r| r.memory_limit.filter(|l| *l > 0).map(|l| format!("{:.0}", r.memory_bytes as f64 / l as f64 * 100.0))),
                "limit": r.and_then(|r| r.memory_limit).map(crate::problems::bytes),
            })
        })
        .collect();

    let problems: Vec<_> = p
        .store
        .problems(svc, Some(env), now_us() - 7 * 86_400_000_000, 50)
        .unwrap_or_default()
        .iter()
        .map(|r| crate::problems::view(p, r))
        .collect();
    let errors: Vec<_> = p
        .store
        .error_groups(svc, Some(env))
        .unwrap_or_default()
        .iter()
        .map(crate::problems::error_view)
        .collect();
    let databases = crate::api::databases::infos(p, svc, env).unwrap_or_default();
    let cron = crate::api::cron::entries(p, svc, env).unwrap_or_default();
    let owner = p
        .store
        .service(svc)
        .ok()
        .flatten()
        .map(|s| s.owner)
        .unwrap_or_default();
    let runs: Vec<_> = p
        .store
        .runs(Some(&owner), None, 200)
        .unwrap_or_default()
        .iter()
        .filter(|r| r.service.as_deref() == Some(svc) && r.env.as_deref() == Some(env))
        .take(15)
        .map(crate::runs::view)
        .collect();
    json!({
        "current": current.as_ref().map(|r| json!({ "version": r.version, "image": r.image_ref, "created": ago(&r.created_at) })),
        "releases": releases,
        "replicas": replicas,
        "canary": canary,
        "timeline": timeline,
        "metrics": metrics,
        "charts": charts,
        "instances": instances,
        "problems": problems,
        "errors": errors,
        "databases": databases,
        "cron": cron,
        "runs": runs,
        "costs": costs(p, &owner, svc).await,
    })
}

/// This month's cost of the service by resource and release.
async fn costs(p: &Platform, owner: &str, svc: &str) -> serde_json::Value {
    let Ok(period) = Period::resolve(&Asked::default(), now_us()) else {
        return serde_json::Value::Null;
    };
    let by = ["service".to_owned(), "release".to_owned()];
    let Ok(bill) = crate::billing::report::report(p, owner, &period, &by, false).await else {
        return serde_json::Value::Null;
    };
    let rows: Vec<serde_json::Value> = bill
        .rows
        .iter()
        .filter(|r| r.group.get("service").map(String::as_str) == Some(svc))
        .map(|r| {
            json!({
                "resource": r.resource,
                "release": r.group.get("release"),
                "quantity": format!("{} {}", r.quantity, r.unit),
                "cost": format!("{} {}", faas_spec::money::format_amount(r.cost_nanos, &r.currency), r.currency),
            })
        })
        .collect();
    let total: Vec<String> = bill
        .subtotals
        .iter()
        .filter(|s| s.group.get("service").map(String::as_str) == Some(svc))
        .fold(
            std::collections::BTreeMap::<String, i64>::new(),
            |mut acc, s| {
                *acc.entry(s.currency.clone()).or_default() += s.cost_nanos;
                acc
            },
        )
        .into_iter()
        .map(|(c, n)| format!("{} {c}", faas_spec::money::format_amount(n, &c)))
        .collect();
    json!({ "from": bill.period.from, "rows": rows, "total": total.join(" + ") })
}
