//! `GET /v1/services/{svc}/logs`: the environment's captured output as NDJSON, merged in time
//! order across instances; with `follow`, then every new line as it is captured.

use axum::Extension;
use axum::body::Body;
use axum::extract::State;

use super::{Path, Query};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use faas_spec::api::LogRecord;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use super::services::visible;
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::logs::normalize_ts;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct LogsQuery {
    /// The environment.
    pub env: String,
    /// From this time: RFC 3339, or a duration back from now such as `10m`.
    pub since: Option<String>,
    /// Up to this time: RFC 3339, or a duration back from now.
    pub until: Option<String>,
    /// Only the last N lines.
    #[serde(default, deserialize_with = "faas_spec::whole::optional_in_query")]
    pub tail: Option<usize>,
    /// Keep the stream open and send new lines as they come.
    #[serde(default)]
    pub follow: bool,
    pub instance: Option<String>,
    /// A release id.
    pub release: Option<String>,
    /// A regular expression the line must match.
    pub grep: Option<String>,
    /// Only records after this sequence number (to resume a dropped stream without a gap).
    #[serde(default, deserialize_with = "faas_spec::whole::optional_in_query")]
    pub after: Option<u64>,
}

fn when(text: &str, what: &str) -> ApiResult<String> {
    if let Ok(d) = text.parse::<faas_spec::units::Duration>() {
        let t = std::time::SystemTime::now() - d.as_std();
        return Ok(normalize_ts(
            &humantime::format_rfc3339_nanos(t).to_string(),
        ));
    }
    humantime::parse_rfc3339_weak(text)
        .map(|t| normalize_ts(&humantime::format_rfc3339_nanos(t).to_string()))
        .map_err(|_| {
            ApiError::bad_request(
                "invalid-time",
                format!("`{what}={text}` is neither a duration (`10m`) nor an RFC 3339 time"),
            )
        })
}

/// The output of a service's instances in one environment.
#[utoipa::path(get, path = "/v1/services/{svc}/logs", tag = "logs", params(("svc" = String, Path), LogsQuery),
    responses((status = 200, description = "One LogRecord per line", content_type = "application/x-ndjson", body = LogRecord)))]
pub async fn logs(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(svc): Path<String>,
    Query(q): Query<LogsQuery>,
) -> ApiResult<Response> {
    visible(&p, &who, &svc)?;
    faas_spec::names::check_env_name(&q.env)
        .map_err(|e| ApiError::bad_request("invalid-env", e.message))?;
    let since = q.since.as_deref().map(|s| when(s, "since")).transpose()?;
    let until = q.until.as_deref().map(|s| when(s, "until")).transpose()?;
    let grep = q
        .grep
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .map_err(|e| {
            ApiError::bad_request(
                "invalid-grep",
                format!("`grep` is not a regular expression: {e}"),
            )
        })?;
    let journal = p.logs.journal(&svc, &q.env).map_err(ApiError::internal)?;
    let keep = move |r: &LogRecord| {
        q.after.is_none_or(|a| r.seq > a)
            && since.as_ref().is_none_or(|s| r.ts >= *s)
            && until.as_ref().is_none_or(|u| r.ts <= *u)
            && q.instance.as_ref().is_none_or(|i| r.instance == *i)
            && q.release.as_ref().is_none_or(|rel| r.release == *rel)
            && grep.as_ref().is_none_or(|g| g.is_match(&r.line))
    };
    // Subscribe before reading the history, so no line falls between the two.
    let mut live = q.follow.then(|| journal.subscribe());
    let mut history = match q.tail {
        Some(n) => journal.tail(n, &keep),
        None => journal.scan(&keep),
    };
    if q.after.is_none() {
        history.sort_by(|a, b| a.ts.cmp(&b.ts).then(a.seq.cmp(&b.seq)));
    }
    let stopping = p.stopping.subscribe();
    let stream = async_stream::stream! {
        let mut last = history.iter().map(|r| r.seq).max().unwrap_or(q.after.unwrap_or(0));
        for r in history {
            yield Ok::<_, std::convert::Infallible>(line(&r));
        }
        if let Some(live) = live.as_mut() {
            let mut stopping = stopping;
            loop {
                let received = tokio::select! {
                    r = live.recv() => r,
                    _ = stopping.wait_for(|s| *s) => break,
                };
                match received {
                    Ok(r) => {
                        if r.seq > last && keep(&r) {
                            last = r.seq;
                            yield Ok(line(&r));
                        }
                    }
                    // Fell behind the writer: the journal has every line.
                    Err(RecvError::Lagged(_)) => {
                        for r in journal.scan(|r| r.seq > last && keep(r)) {
                            last = r.seq;
                            yield Ok(line(&r));
                        }
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        }
    };
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

pub(super) fn line(r: &LogRecord) -> String {
    let mut text = serde_json::to_string(r).unwrap_or_default();
    text.push('\n');
    text
}
