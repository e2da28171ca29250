//! The overview (every visible service with its environments, health, last hour's figures,
//! open problems and this month's cost), the release feed across services, and the open
//! problems across services.

use axum::extract::State;
use axum::response::Response;
use minijinja::{Value, context};
use serde::Serialize;

use super::render;
use super::session::Viewer;
use super::view::{self, ago, took};
use crate::AppState;

pub async fn overview(State(p): State<AppState>, viewer: Viewer) -> Response {
    let services = view::summaries(&p, &viewer.principal).await;
    let problems: i64 = services.iter().map(|s| s.problems).sum();
    render(
        "overview.html",
        context! {
            viewer => viewer.context(),
            page => "overview",
            live => "*",
            services => Value::from_serialize(&services),
            open_problems => problems,
        },
    )
}

#[derive(Debug, Serialize)]
struct FeedRow {
    id: String,
    service: String,
    env: String,
    version: u64,
    previous: Option<u64>,
    strategy: String,
    state: String,
    who: String,
    when: String,
    ago: String,
    took: String,
    reason: Option<String>,
}

pub async fn releases(State(p): State<AppState>, viewer: Viewer) -> Response {
    let names: Vec<String> = view::services(&p, &viewer.principal)
        .into_iter()
        .map(|s| s.name)
        .collect();
    let rows = p.store.recent_deployments(&names, 100).unwrap_or_default();
    let version = |id: &str| p.store.release(id).ok().flatten().map(|r| r.version);
    let feed: Vec<FeedRow> = rows
        .iter()
        .map(|(d, actor)| FeedRow {
            id: d.id.clone(),
            service: d.service.clone(),
            env: d.env.clone(),
            version: version(&d.release_id).unwrap_or(0),
            previous: d.previous_release.as_deref().and_then(version),
            strategy: d.strategy.to_string(),
            state: d.state.as_str().to_owned(),
            who: actor.clone().unwrap_or_else(|| "the platform".into()),
            when: d.created_at.clone(),
            ago: ago(&d.created_at),
            took: if d.state.is_terminal() {
                took(&d.created_at, &d.updated_at)
            } else {
                "running".into()
            },
            reason: d.reason.clone(),
        })
        .collect();
    render(
        "releases.html",
        context! {
            viewer => viewer.context(),
            page => "releases",
            live => "*",
            feed => Value::from_serialize(&feed),
        },
    )
}

pub async fn problems(State(p): State<AppState>, viewer: Viewer) -> Response {
    let mut rows = Vec::new();
    for s in view::services(&p, &viewer.principal) {
        for r in p
            .store
            .problems(&s.name, None, crate::meter::now_us() - 86_400_000_000, 50)
            .unwrap_or_default()
        {
            rows.push(crate::problems::view(&p, &r));
        }
    }
    rows.sort_by(|a, b| {
        (a.ended_at.is_some(), std::cmp::Reverse(&a.last_seen))
            .cmp(&(b.ended_at.is_some(), std::cmp::Reverse(&b.last_seen)))
    });
    render(
        "problems.html",
        context! {
            viewer => viewer.context(),
            page => "problems",
            live => "*",
            problems => Value::from_serialize(&rows),
        },
    )
}
