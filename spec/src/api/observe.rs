//! What the platform observes of a service: its problems (recorded as they happen), the
//! errors its code raised (grouped like an error tracker) and its golden metrics per release.

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// The kinds of problem the platform records.
pub const PROBLEM_KINDS: [&str; 8] = [
    "oom-killed",
    "crash-loop",
    "high-5xx",
    "slow-p99",
    "memory-near-limit",
    "deploy-failed",
    "run-failed",
    "exception",
];

/// One problem of a service's environment: open while it lasts, ended when it cleared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ServiceProblem {
    pub id: i64,
    pub service: String,
    pub env: String,
    /// One of `oom-killed`, `crash-loop`, `high-5xx`, `slow-p99`, `memory-near-limit`,
    /// `deploy-failed`, `run-failed`, `exception`.
    pub kind: String,
    /// What it is about within its kind: an instance, a release, a cron entry, an exception.
    pub subject: String,
    /// The release serving when it began, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// One line that says what happened, with its figures.
    pub summary: String,
    /// When it began (RFC 3339).
    pub started_at: String,
    /// When it last happened or was last seen true.
    pub last_seen: String,
    /// When it cleared; absent while it is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    /// How many times it happened while open (OOM kills, deaths, failed runs, …).
    pub count: u64,
    /// The instance's last log lines before it happened.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<String>,
}

/// Unhandled exceptions of one type at one place in the code, as the runtime logged them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorGroup {
    pub service: String,
    pub env: String,
    /// The exception's type, e.g. `ZeroDivisionError`.
    pub error_type: String,
    /// Where it was raised: `file:line in function`.
    pub location: String,
    /// The function (endpoint) that raised it, when the runtime says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// The last message.
    pub message: String,
    pub count: u64,
    pub first_seen: String,
    pub last_seen: String,
    /// The last traceback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceback: Option<String>,
}

/// `GET /v1/services/{svc}/problems`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ProblemList {
    pub service: String,
    pub problems: Vec<ServiceProblem>,
    pub errors: Vec<ErrorGroup>,
}

/// Golden figures over a span of time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Figures {
    pub requests: u64,
    /// Requests per second over the span.
    pub rps: f64,
    pub errors_5xx: u64,
    /// 5xx answers over requests, 0 to 1.
    pub error_ratio: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
}

/// One release's figures in an environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ReleaseMetrics {
    pub release: String,
    pub version: u64,
    /// Whether it serves the environment now.
    pub current: bool,
    #[serde(flatten)]
    pub figures: Figures,
    /// CPU used, in cores (1.0 = one full core), averaged over the span.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_cores: Option<f64>,
    /// Percent of its CPU size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    /// The largest working-set memory one instance had, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_percent: Option<f64>,
}

/// One function (endpoint) of a python-function service, from its runtime's metrics endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct FunctionMetrics {
    pub function: String,
    #[serde(flatten)]
    pub figures: Figures,
}

/// A point of a series: its start (Unix seconds) and its figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MetricPoint {
    pub at: i64,
    pub requests: u64,
    pub errors_5xx: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
}

/// `GET /v1/services/{svc}/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ServiceMetrics {
    pub service: String,
    pub env: String,
    /// The span's start and end (RFC 3339).
    pub from: String,
    pub to: String,
    pub releases: Vec<ReleaseMetrics>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<FunctionMetrics>,
    /// Every release together, point by point (a minute or an hour each).
    pub series: Vec<MetricPoint>,
}

/// One hop of a trace through the router.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TraceSpan {
    pub span_id: String,
    /// The span it was called from (the caller's hop), absent for the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    pub service: String,
    pub env: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    pub instance: String,
    /// Who called (`service/env`), absent from outside the platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    pub method: String,
    pub path: String,
    pub status: u16,
    /// When it started (RFC 3339) and its offset from the trace's start.
    pub start: String,
    pub offset_ms: f64,
    pub duration_ms: f64,
}

/// `GET /v1/traces/{id}`: the hops of one trace the caller may see, in the order they started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Trace {
    pub trace_id: String,
    pub duration_ms: f64,
    pub spans: Vec<TraceSpan>,
}
