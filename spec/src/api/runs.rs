//! One-off runs: function runs a tenant asks for, and the runs of cron entries.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// What `timeout` of a run accepts: a whole number of ms, s, m or h, from 1 ms to 24 h.
pub const RUN_TIMEOUT_PATTERN: &str =
    "^([1-9][0-9]{0,6}ms|[1-9][0-9]{0,3}s|[1-9][0-9]{0,2}m|([1-9]|1[0-9]|2[0-4])h)$";
/// What `memory` of a run accepts: from 16 Mi to 999 Gi.
pub const RUN_MEMORY_PATTERN: &str = "^((1[6-9]|[2-9][0-9]|[1-9][0-9]{2,5})Mi|[1-9][0-9]{0,2}Gi)$";

/// `POST /v1/functions/run`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RunFunction {
    /// The image: an id or reference on the platform's engine (upload it first with
    /// `POST /v1/images` when the platform runs elsewhere).
    pub image_name: String,
    /// Where the run's report goes when it stops [default: the tenant].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The tenant billed [default: the token's own; only an admin names another].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The command, in place of the image's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// vCPUs, from 0.1 to 64 [default: 1].
    #[cfg_attr(feature = "openapi", schema(minimum = 0.1, maximum = 64.0))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    /// Memory, from `16Mi` to `999Gi`, e.g. `256Mi` [default: 512Mi].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// Stopped and recorded as timed out after this: a whole number of `ms`, `s`, `m` or `h`,
    /// e.g. `30s`, at most `24h` [default: 15m].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// A run, as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Run {
    pub id: String,
    /// `function` or `cron`.
    pub kind: String,
    pub tenant: String,
    /// A cron run's service, environment, entry and scheduled time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tick: Option<String>,
    pub image: String,
    pub command: Vec<String>,
    /// `pending`, `running`, `exited` (code 0), `failed` (another code), `timed_out`,
    /// `cancelled`, `oom_killed`, `lost` (its container vanished), and for cron ticks that did
    /// not run, `skipped` or `missed`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// Why it ended, or why a tick did not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    /// What it cost, in nano-units of `currency`, once priced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_nanos: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Where its report was mailed, and whether it was (`sent`, `failed: …`, `pending`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notified: Option<String>,
}

impl Run {
    /// Whether it has ended (or never ran).
    pub fn is_over(&self) -> bool {
        !matches!(self.state.as_str(), "pending" | "running")
    }
}

/// One `[[cron]]` entry of an environment's current release.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CronEntry {
    pub name: String,
    pub env: String,
    pub schedule: String,
    pub timezone: String,
    pub concurrency: String,
    pub command: Vec<String>,
    /// Its next time (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Its latest tick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Run>,
}
