//! Unhandled exceptions, grouped like an error tracker: the python runtimes log each as one
//! JSON line with `error_type`, `location` (`file:line in function`), `error` and `traceback`.
//! Lines are grouped by service, environment, type and location, with counts and first and
//! last seen; each group is also an `exception` problem while it keeps happening.

use std::sync::Arc;

use serde::Deserialize;
use tokio::sync::mpsc;

use super::LogLine;
use crate::Platform;
use crate::meter::now_us;
use crate::store::{Occurrence, Raised};

/// Whether a line may carry an exception (cheap: the capture asks for every line).
pub fn may_carry(line: &str) -> bool {
    line.starts_with('{') && line.contains("\"error_type\"")
}

#[derive(Debug, Deserialize)]
struct Logged {
    error_type: String,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    function: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    msg: Option<String>,
    #[serde(default)]
    traceback: Option<String>,
}

pub async fn consume(p: Arc<Platform>, lines: Option<mpsc::UnboundedReceiver<LogLine>>) {
    let Some(mut lines) = lines else { return };
    while let Some(l) = lines.recv().await {
        record(&p, &l);
    }
}

fn record(p: &Platform, l: &LogLine) {
    let Ok(logged) = serde_json::from_str::<Logged>(&l.line) else {
        return;
    };
    let location = logged.location.unwrap_or_else(|| "unknown".into());
    let message = logged
        .error
        .or(logged.msg)
        .unwrap_or_else(|| logged.error_type.clone());
    let at_us = now_us();
    let count = match p.store.exception_raised(&Raised {
        service: &l.service,
        env: &l.env,
        error_type: &logged.error_type,
        location: &location,
        function: logged.function.as_deref(),
        message: &message,
        traceback: logged.traceback.as_deref(),
        at_us,
    }) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!("cannot group an exception of {}: {e}", l.service);
            return;
        }
    };
    let subject = format!("{} at {location}", logged.error_type);
    let summary = format!(
        "{message} ({} raised at {location}{}; {count} so far)",
        logged.error_type,
        logged
            .function
            .as_deref()
            .map(|f| format!(" by {f}"))
            .unwrap_or_default()
    );
    let logs: Vec<String> = logged
        .traceback
        .as_deref()
        .map(|t| t.lines().map(str::to_owned).collect())
        .unwrap_or_default();
    p.problems.occurred(
        &p.store,
        &Occurrence {
            service: &l.service,
            env: &l.env,
            kind: "exception",
            subject: &subject,
            release_id: None,
            summary: &summary,
            at_us,
            count: 1,
            logs: &logs,
        },
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_structured_exception_lines_are_looked_at() {
        assert!(super::may_carry(
            r#"{"level":"error","msg":"function raised","error_type":"ZeroDivisionError"}"#
        ));
        assert!(!super::may_carry("ZeroDivisionError: division by zero"));
        assert!(!super::may_carry(r#"{"level":"info","msg":"request"}"#));
    }
}
