//! Live updates without reloading: one server-sent event stream per page says `changed` when a
//! problem, a deployment, a step or an instance changed (at once for problems, within a second
//! for the rest, and every 10 s for the figures); the page then fetches itself and swaps its
//! live parts. Logs stream as they are written, the last 200 lines first.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::Deserialize;

use super::session::Viewer;
use crate::AppState;
use crate::api::Path;

#[derive(Debug, Deserialize)]
pub struct LiveQuery {
    /// The service the page shows, or `*` for pages across services.
    pub service: Option<String>,
}

/// `changed` events for a page.
pub async fn changes(
    State(p): State<AppState>,
    viewer: Viewer,
    Query(q): Query<LiveQuery>,
) -> Response {
    let only = q.service.filter(|s| s != "*");
    if let Some(svc) = &only
        && crate::api::services::visible(&p, &viewer.principal, svc).is_err()
    {
        return (StatusCode::NOT_FOUND, "no such service").into_response();
    }
    let mut problems = p.problems.subscribe();
    let mut stopping = p.stopping.subscribe();
    let stream = async_stream::stream! {
        let mut mark = p.store.change_mark().unwrap_or_default();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut n: u64 = 0;
        yield Ok::<_, Infallible>(Event::default().event("ready").data("ok"));
        loop {
            let changed = tokio::select! {
                got = problems.recv() => match got {
                    Ok(svc) => only.as_ref().is_none_or(|o| *o == svc),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => true,
                    Err(_) => break,
                },
                _ = tick.tick() => {
                    n += 1;
                    let now = p.store.change_mark().unwrap_or_default();
                    let moved = now != mark;
                    mark = now;
                    moved || n.is_multiple_of(10)
                }
                _ = stopping.changed() => break,
            };
            if changed {
                yield Ok(Event::default().event("changed").data(only.clone().unwrap_or_else(|| "*".into())));
            }
        }
    };
    sse(stream)
}

fn sse(stream: impl Stream<Item = Result<Event, Infallible>> + Send + 'static) -> Response {
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    response.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    response
}

#[derive(Debug, Deserialize)]
pub struct LogsQuery {
    pub env: Option<String>,
}

/// An environment's log lines: the last 200, then each as it is written.
pub async fn logs(
    State(p): State<AppState>,
    viewer: Viewer,
    Path(svc): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Response {
    if crate::api::services::visible(&p, &viewer.principal, &svc).is_err() {
        return (StatusCode::NOT_FOUND, "no such service").into_response();
    }
    let env = q.env.unwrap_or_else(|| "prod".into());
    if crate::api::deployments::check_env(&env).is_err() {
        return (StatusCode::BAD_REQUEST, "not an environment name").into_response();
    }
    let journal = match p.logs.journal(&svc, &env) {
        Ok(j) => j,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let mut live = journal.subscribe();
    let mut stopping = p.stopping.subscribe();
    let stream = async_stream::stream! {
        let mut last = 0;
        for r in journal.tail(200, |_| true) {
            last = r.seq;
            yield Ok::<_, Infallible>(Event::default().event("line").data(serde_json::to_string(&r).unwrap_or_default()));
        }
        loop {
            tokio::select! {
                got = live.recv() => match got {
                    Ok(r) if r.seq > last => {
                        last = r.seq;
                        yield Ok(Event::default().event("line").data(serde_json::to_string(&*r).unwrap_or_default()));
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        yield Ok(Event::default().event("gap").data(format!("{n} lines skipped here; the full log is in faas service logs")));
                    }
                    Err(_) => break,
                },
                _ = stopping.changed() => break,
            }
        }
    };
    sse(stream)
}
