//! The platform API's wire types, shared by the daemon and the CLI. With the `openapi` feature
//! they also describe themselves for the OpenAPI document.

use serde::{Deserialize, Serialize};

use crate::manifest::Strategy;

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// An error, as an RFC 9457 problem document with a stable machine code and the request id.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// A stable machine code, e.g. `service-not-found`.
    pub code: String,
    /// What the user can do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The request's id, as in the X-Request-Id header and the daemon's log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// For `deployment-in-progress`: the running deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// For `invalid-definition`: every problem in the task definition, with its place.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<tasks::DefinitionError>,
}

/// `GET /_info`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PlatformInfo {
    pub status: String,
    /// This platform's id: its containers carry it in the `io.faas.platform` label.
    pub id: String,
    pub service: String,
    pub version: String,
    pub uptime_s: f64,
    /// The domain services are served under.
    pub domain: String,
    /// Where the router listens, e.g. `127.0.0.1:7780`.
    pub router: String,
    pub docker: DockerStatus,
    /// Where this platform keeps its data, said only by a platform that listens on loopback
    /// (a CLI tells its own local platform from another user's by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DockerStatus {
    pub available: bool,
    /// The engine's ID: a client on the same engine need not upload images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `POST /v1/services`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateService {
    pub name: String,
    /// The owning tenant; a member's own tenant when absent. Only an admin may name another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Service {
    pub name: String,
    pub owner: String,
    pub created_at: String,
    pub environments: Vec<EnvironmentStatus>,
}

/// A service's state in one environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EnvironmentStatus {
    pub env: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<ReleaseSummary>,
    pub instances: Vec<Instance>,
    /// The deployment under way, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// The percent of requests a canary takes, while one runs (0: a blue-green set before its
    /// switch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_weight: Option<u8>,
    /// Until when the previous set is kept warm after a blue-green switch (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standby_until: Option<String>,
    /// Its databases: engine, provider and state.
    #[serde(default)]
    pub databases: Vec<databases::DatabaseInfo>,
    /// Its cron entries with their latest tick.
    #[serde(default)]
    pub cron: Vec<runs::CronEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ReleaseSummary {
    pub id: String,
    pub version: u64,
    pub image: String,
}

/// One running copy of a release.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Instance {
    pub id: String,
    pub release: String,
    pub version: u64,
    pub container: String,
    /// `starting`, `running`, `draining`, `stopped`.
    pub state: String,
    pub healthy: bool,
    /// The published address, e.g. `127.0.0.1:49153`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Its set's part while the traffic is split: `live`, `canary`, `green` (a blue-green set
    /// before its switch) or `standby` (warm, no traffic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Its pod, on the Kubernetes runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodPlacement>,
}

/// Where an instance runs on Kubernetes: its pod, the node, the pod's readiness (its probe as
/// the kubelet sees it) and how often its container restarted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PodPlacement {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub ready: bool,
    pub restarts: u32,
}

/// An immutable release: image, effective manifest and secrets version.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Release {
    pub id: String,
    pub service: String,
    pub env: String,
    /// 1, 2, 3… per service and environment.
    pub version: u64,
    /// The image's ID (`sha256:…`).
    pub image: String,
    /// The reference the deployment named.
    pub image_ref: String,
    /// The effective manifest of the environment.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub manifest: serde_json::Value,
    pub secrets_version: u64,
    pub created_at: String,
    /// Whether this release serves the environment now.
    pub current: bool,
}

/// `POST /v1/services/{svc}/deployments`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateDeployment {
    pub env: String,
    /// An image ID, digest or reference present on the platform's Docker Engine.
    pub image: String,
    /// The service's app.toml, as text.
    pub manifest: String,
    /// Overrides the manifest's `deploy.strategy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    /// A canary holds at each step until promoted (overrides `deploy.canary.auto`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub manual: bool,
}

/// `POST /v1/services/{svc}/scale`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Scale {
    pub env: String,
    /// Instances of the current release, until the next release.
    #[serde(deserialize_with = "crate::whole::number")]
    pub replicas: u32,
}

/// `POST /v1/services/{svc}/rollback`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    pub env: String,
    /// The release version to go back to; the one before the current one when absent.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::whole::optional"
    )]
    pub release: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    Pending,
    Running,
    Succeeded,
    Failed,
    RolledBack,
    /// A state this client does not know (a newer platform).
    #[serde(other)]
    Unknown,
}

impl DeploymentState {
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::RolledBack)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::RolledBack => "rolled_back",
            Self::Unknown => "unknown",
        }
    }
    pub fn parse(s: &str) -> Self {
        match s {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "rolled_back" => Self::RolledBack,
            _ => Self::Unknown,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Deployment {
    pub id: String,
    pub service: String,
    pub env: String,
    pub release: String,
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_version: Option<u64>,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub strategy: Strategy,
    pub state: DeploymentState,
    /// Why it failed or rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub url: String,
    pub created_at: String,
    pub updated_at: String,
    pub steps: Vec<Step>,
}

/// One persisted step of a deployment; the events stream sends these as they happen.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Step {
    pub seq: u64,
    pub at: String,
    /// e.g. `started`, `instance-starting`, `instance-healthy`, `instance-failed`,
    /// `instance-stopped`, `rolling-back`, `succeeded`, `rolled-back`.
    pub kind: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The failed container's last log lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<String>,
    /// The deployment's state after this step.
    pub state: DeploymentState,
    /// A canary step's weights and the figures of both sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryReport>,
}

/// One set of instances (one release) during a canary, as the router measured it over a
/// window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SetFigures {
    pub release: String,
    pub version: u64,
    /// Percent of requests the router sends to this set.
    pub weight: u8,
    pub requests: u64,
    pub errors_5xx: u64,
    /// 5xx answers per request, 0 to 1.
    pub error_rate: f64,
    /// The 99th percentile of the time to response headers (a histogram bucket's upper
    /// bound), in milliseconds; absent without requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
}

/// Where a canary stands: its step, and both sets' figures over the step's window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CanaryReport {
    /// 1-based index into `steps`.
    pub step: u32,
    pub steps: Vec<u8>,
    /// How long the figures were measured, in seconds.
    pub window_s: f64,
    pub canary: SetFigures,
    pub baseline: SetFigures,
}

/// `POST /v1/services/{svc}/canary/promote` and `…/abort`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CanaryControl {
    pub env: String,
}

/// `GET /v1/services/{svc}/canary?env=`: the canary under way.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CanaryStatus {
    pub deployment: String,
    pub service: String,
    pub env: String,
    /// Whether each step is judged and promoted by the platform (`false`: held until
    /// `promote`).
    pub auto: bool,
    /// Waiting for `promote` or `abort`.
    pub holding: bool,
    /// A command sent and not yet carried out: `promote` or `abort`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
    pub report: CanaryReport,
}

/// `POST /v1/tokens` (admin).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub tenant: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TokenCreated {
    /// Shown once; the platform keeps only its hash.
    pub token: String,
    pub tenant: String,
    pub role: Role,
}

/// `GET /v1/whoami`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct WhoAmI {
    pub tenant: String,
    pub role: Role,
}

/// `POST /v1/images`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ImagesLoaded {
    /// What the Docker Engine loaded: references and image IDs.
    pub images: Vec<String>,
    pub sha256: String,
    pub bytes: u64,
}

/// `PUT /v1/services/{svc}/secrets`: sets values (others are kept).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetSecrets {
    pub env: String,
    pub values: std::collections::BTreeMap<String, String>,
}

/// `DELETE /v1/services/{svc}/secrets`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UnsetSecrets {
    pub env: String,
    pub names: Vec<String>,
}

/// A secret as the API shows it: never its value.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SecretInfo {
    pub name: String,
    /// The secrets version that set it.
    pub version: u64,
    pub updated_at: String,
}

/// The environment's secrets after a change; the next deploy picks this version up.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SecretsChanged {
    pub env: String,
    pub version: u64,
    pub secrets: Vec<SecretInfo>,
}

/// One line of an instance's output (or an event of its life), as `…/logs` streams them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LogRecord {
    /// Its place in the environment's journal: resume a stream with `after=<seq>`.
    pub seq: u64,
    /// When the instance wrote it (RFC 3339, nanoseconds).
    pub ts: String,
    pub instance: String,
    pub release: String,
    /// `stdout`, `stderr`, or `event` (the platform's note, e.g. that an instance stopped).
    pub stream: String,
    pub line: String,
}

pub mod billing;
pub mod databases;
pub mod invoices;
pub mod ledger;
pub mod observe;
pub mod runs;
pub mod tariffs;
pub mod tasks;
