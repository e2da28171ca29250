//! A trace's hops on the dashboard: each under the hop that called it, with a bar where it ran
//! in the trace's time (SVG drawn by the server). Only hops of services the viewer may see.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::{Value, context};
use serde::Deserialize;
use serde_json::json;

use super::session::Viewer;
use super::{render, render_status};
use crate::AppState;
use crate::router::spans::is_trace_id;

#[derive(Debug, Deserialize)]
pub struct TraceQuery {
    pub id: Option<String>,
}

pub async fn page(
    State(p): State<AppState>,
    viewer: Viewer,
    Query(q): Query<TraceQuery>,
) -> Response {
    let base = |status: StatusCode, error: Option<String>, trace: Value, hops: Value| {
        render_status(
            status,
            "traces.html",
            context! { viewer => viewer.context(), page => "traces", id => q.id.clone(), error, trace, hops },
        )
    };
    let Some(id) = q.id.as_deref().map(str::trim).filter(|i| !i.is_empty()) else {
        return render(
            "traces.html",
            context! { viewer => viewer.context(), page => "traces" },
        );
    };
    if !is_trace_id(id) {
        return base(
            StatusCode::BAD_REQUEST,
            Some(format!(
                "`{id}` is not a trace id: it is 32 lowercase hex digits."
            )),
            Value::UNDEFINED,
            Value::UNDEFINED,
        );
    }
    let trace = match crate::traces::read(&p, &viewer.principal, id) {
        Ok(Some(t)) => t,
        Ok(None) => {
            return base(
                StatusCode::NOT_FOUND,
                Some(format!("No trace {id} is kept (traces are kept 7 days).")),
                Value::UNDEFINED,
                Value::UNDEFINED,
            );
        }
        Err(e) => {
            return base(
                StatusCode::INTERNAL_SERVER_ERROR,
                Some(e.to_string()),
                Value::UNDEFINED,
                Value::UNDEFINED,
            );
        }
    };
    let hops = hops_of(&trace);
    base(
        StatusCode::OK,
        None,
        Value::from_serialize(&trace),
        Value::from_serialize(&hops),
    )
}

/// Each hop with its depth under its caller and its bar's place.
fn hops_of(trace: &faas_spec::api::observe::Trace) -> Vec<serde_json::Value> {
    let total = trace.duration_ms.max(0.001);
    let ids: std::collections::HashMap<&str, Option<&str>> = trace
        .spans
        .iter()
        .map(|s| (s.span_id.as_str(), s.parent_id.as_deref()))
        .collect();
    trace
        .spans
        .iter()
        .map(|s| {
            let x = (s.offset_ms / total * 400.0).clamp(0.0, 399.0);
            let w = (s.duration_ms / total * 400.0).clamp(1.0, 400.0 - x);
            json!({
                "span_id": s.span_id, "parent_id": s.parent_id, "service": s.service, "env": s.env,
                "version": s.version, "method": s.method, "path": s.path, "status": s.status,
                "caller": s.caller, "instance": s.instance, "offset_ms": s.offset_ms,
                "duration_ms": s.duration_ms, "depth": depth(&ids, &s.span_id),
                "x": format!("{x:.1}"), "w": format!("{w:.1}"),
            })
        })
        .collect()
}

/// How many of the trace's hops are above this one.
fn depth<'a>(ids: &std::collections::HashMap<&'a str, Option<&'a str>>, span: &'a str) -> usize {
    let mut d = 0;
    let mut at = span;
    while let Some(Some(parent)) = ids.get(at) {
        if !ids.contains_key(parent) || d > 32 {
            break;
        }
        d += 1;
        at = parent;
    }
    d
}
