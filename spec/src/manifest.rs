//! The typed app.toml model. Every field carries a doc comment: it becomes the JSON Schema's
//! description (shown by editors) and the reference in docs/app-toml.md is checked against it.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::names::{CronSchedule, DbName, Email, EnvName, ServiceName, TimeZoneName};
use crate::units::{Duration, Memory};

/// A faas service manifest (app.toml).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "faas app.toml")]
pub struct Manifest {
    /// The service's name, used in its URL (`http://<name>.<domain>`): a DNS label.
    pub name: ServiceName,
    /// What the service is for: `business` (a product service) or `infrastructure`.
    #[serde(default)]
    pub kind: Kind,
    /// The tenant that owns the service and is billed for it: an e-mail address.
    pub owner: Email,
    /// One line that says what the service does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How the service's image is built: a Dockerfile and context, or a prebuilt `image`.
    #[serde(default)]
    pub build: Build,
    /// How the service's process runs inside its container.
    #[serde(default)]
    pub run: Run,
    /// The health check: an instance is healthy while `path` answers 200.
    #[serde(default)]
    pub health: Health,
    /// Resources of each instance.
    #[serde(default)]
    pub size: Size,
    /// Where instances expose their own metrics (Prometheus text), which the platform scrapes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsEndpoint>,
    /// How many instances run.
    #[serde(default)]
    pub scale: Scale,
    /// How a new release replaces the running one.
    #[serde(default)]
    pub deploy: Deploy,
    /// Databases provisioned for the service, by name; each injects `<NAME>_URL`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = { "format": "db-name" }))]
    pub databases: BTreeMap<DbName, Database>,
    /// Other services this one calls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<Dependency>,
    /// Who may call this service through the router.
    #[serde(default, skip_serializing_if = "is_default_access")]
    pub access: Access,
    /// Commands run on a schedule in a one-off instance of the service's image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cron: Vec<CronJob>,
    /// Per-environment overrides of the tables above, e.g. `[environments.prod]`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = { "format": "env-name" }))]
    pub environments: BTreeMap<EnvName, Overrides>,
}

/// What an environment may override. Tables merge key by key into the base manifest; arrays and
/// plain values replace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    /// Overrides `description`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Overrides keys of `[build]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    /// Overrides keys of `[run]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<Run>,
    /// Overrides keys of `[health]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// Overrides keys of `[size]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Size>,
    /// Overrides keys of `[scale]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<Scale>,
    /// Overrides keys of `[deploy]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<Deploy>,
    /// Adds or overrides databases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("propertyNames" = { "format": "db-name" }))]
    pub databases: Option<BTreeMap<DbName, Database>>,
    /// Replaces `dependencies`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<Vec<Dependency>>,
    /// Replaces `cron`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<Vec<CronJob>>,
}

/// What the service is for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A product service.
    #[default]
    Business,
    /// A service other services stand on.
    Infrastructure,
}

/// How the service's image is built.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Build {
    /// The Dockerfile, relative to the directory of app.toml. Default `Dockerfile`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    /// The build context, relative to the directory of app.toml. Default `.`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Build arguments passed to the Dockerfile's `ARG`s.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, String>,
    /// The Dockerfile stage to build (`--target`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// A prebuilt image to deploy instead of building (exclusive with `dockerfile`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

impl Build {
    pub fn dockerfile(&self) -> &str {
        self.dockerfile.as_deref().unwrap_or("Dockerfile")
    }
    pub fn context(&self) -> &str {
        self.context.as_deref().unwrap_or(".")
    }
}

/// How the process runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Run {
    /// The port the process listens on inside the container.
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    /// Overrides the image's command; empty keeps the image's own.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Environment variables of every instance.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

impl Default for Run {
    fn default() -> Self {
        Self {
            port: 8080,
            command: Vec::new(),
            env: BTreeMap::new(),
        }
    }
}

/// An instance's metrics endpoint. The python-function runtime serves per-function request
/// counts and latencies at `/_metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricsEndpoint {
    /// The HTTP path on the service's port, e.g. `/_metrics`.
    pub path: String,
}

/// The health check of each instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Health {
    /// The HTTP path that answers 200 while the instance is healthy, e.g. `/_info`. Without it an
    /// instance counts as healthy once its container runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Time between two checks.
    pub interval: Duration,
    /// How long one check may take.
    pub timeout: Duration,
    /// How long a new instance may take to become healthy before the deployment fails.
    pub grace: Duration,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            path: None,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            grace: Duration::from_secs(30),
        }
    }
}

/// Resources of each instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Size {
    /// vCPUs, from 0.01 to 64.
    #[schemars(range(min = 0.01, max = 64.0))]
    pub cpu: f64,
    /// Memory limit, e.g. `256Mi`, `1Gi`.
    pub memory: Memory,
}

impl Default for Size {
    fn default() -> Self {
        Self {
            cpu: 0.5,
            memory: Memory::mebibytes(256),
        }
    }
}

/// The most instances an environment runs.
pub const MAX_REPLICAS: u32 = 100;

/// How many instances run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Scale {
    /// Instances per environment, from 0 to 100.
    #[schemars(range(max = 100))]
    pub replicas: u32,
}

impl Default for Scale {
    fn default() -> Self {
        Self { replicas: 1 }
    }
}

/// How a new release replaces the running one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Start the new set, then stop the old one.
    Immediate,
    /// Replace instances in batches, each health-gated.
    #[default]
    Rolling,
    /// A new set beside the old one takes a growing share of traffic, judged at each step.
    Canary,
    /// A full new set, switched to atomically; the old one stays warm for rollback.
    Bluegreen,
}

impl Strategy {
    pub const ALL: [Strategy; 4] = [
        Self::Immediate,
        Self::Rolling,
        Self::Canary,
        Self::Bluegreen,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Immediate => "immediate",
            Self::Rolling => "rolling",
            Self::Canary => "canary",
            Self::Bluegreen => "bluegreen",
        }
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!("`{s}` is not a strategy: use immediate, rolling, canary or bluegreen")
            })
    }
}

/// How deploys run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Deploy {
    /// `immediate`, `rolling`, `canary` or `bluegreen`.
    pub strategy: Strategy,
    /// Settings of the rolling strategy.
    pub rolling: Rolling,
    /// Settings of the canary strategy.
    pub canary: Canary,
    /// Settings of the blue-green strategy.
    pub bluegreen: BlueGreen,
}

/// Settings of the rolling strategy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Rolling {
    /// How many instances may be replaced at once (the batch size), at least 1.
    #[schemars(range(min = 1, max = 100))]
    pub max_unavailable: u32,
    /// How long a drained instance may take to finish its in-flight requests.
    pub drain_timeout: Duration,
}

impl Default for Rolling {
    fn default() -> Self {
        Self {
            max_unavailable: 1,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// Settings of the canary strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Canary {
    /// Percent of traffic the canary gets at each step, increasing, ending at 100.
    #[schemars(length(min = 1), inner(range(min = 1, max = 100)))]
    pub steps: Vec<u8>,
    /// How long each step is observed before it is judged.
    pub interval: Duration,
    /// The 5xx ratio (0 to 1) above which the canary is rolled back.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_error_rate: f64,
    /// The p99 latency above which the canary is rolled back.
    pub max_p99: Duration,
    /// Requests a step must see before it is judged; fewer extend the step by `interval`.
    pub min_requests: u32,
    /// How long a step may wait for `min_requests` in all before `on_quiet` ends the
    /// deployment (at least `interval`). A `--manual` canary waits until told instead.
    pub max_wait: Duration,
    /// What a quiet canary comes to after `max_wait`: `rollback` (the default) or `promote`.
    pub on_quiet: OnQuiet,
    /// `false` holds at each step until `faas service canary promote`.
    pub auto: bool,
}

/// What becomes of a canary that never saw `min_requests` within `max_wait`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnQuiet {
    /// Roll back: without figures the new release is not trusted (exit 1 in the CLI).
    #[default]
    Rollback,
    /// Promote: the new release takes every request, judged by its health checks alone.
    Promote,
}

impl Default for Canary {
    fn default() -> Self {
        Self {
            steps: vec![10, 50, 100],
            interval: Duration::from_secs(30),
            max_error_rate: 0.01,
            max_p99: Duration::from_millis(500),
            min_requests: 100,
            max_wait: Duration::from_secs(300),
            on_quiet: OnQuiet::Rollback,
            auto: true,
        }
    }
}

/// Settings of the blue-green strategy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BlueGreen {
    /// How long the previous set stays warm after the switch, for instant rollback.
    pub keep_previous: Duration,
    /// A path that must answer 2xx on the new set before the switch, e.g. `/smoke`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smoke: Option<String>,
}

impl Default for BlueGreen {
    fn default() -> Self {
        Self {
            keep_previous: Duration::from_secs(600),
            smoke: None,
        }
    }
}

/// A database engine faas can provision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// PostgreSQL; the first one is also injected as `DATABASE_URL`.
    Postgresql,
    /// Redis.
    Redis,
    /// RabbitMQ.
    Rabbitmq,
    /// MongoDB.
    Mongodb,
}

impl Engine {
    pub const ALL: [Engine; 4] = [Self::Postgresql, Self::Redis, Self::Rabbitmq, Self::Mongodb];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgresql => "postgresql",
            Self::Redis => "redis",
            Self::Rabbitmq => "rabbitmq",
            Self::Mongodb => "mongodb",
        }
    }

    /// The name `faas <engine> add` gives a database when none is given.
    pub fn default_name(self) -> &'static str {
        match self {
            Self::Postgresql => "main",
            Self::Redis => "cache",
            Self::Rabbitmq => "queue",
            Self::Mongodb => "docs",
        }
    }
}

/// A database of the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Database {
    /// `postgresql`, `redis`, `rabbitmq` or `mongodb`.
    pub engine: Engine,
    /// The engine's major version; the platform's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

fn is_default_access(a: &Access) -> bool {
    *a == Access::default()
}

/// Another service this one calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Dependency {
    /// The other service's name.
    pub service: ServiceName,
    /// The environment of the other service to call when it has none of this one's name
    /// (e.g. `prod` for a preview environment); without it such a deploy is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<EnvName>,
}

/// Who may call this service through the platform's router.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Access {
    /// `any` (the default): every caller; `declared`: of the platform's services, only those
    /// that list this one in their `[[dependencies]]` (others get 403). Requests from outside the
    /// platform are not affected.
    pub callers: Callers,
}

/// Which services may call a service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Callers {
    #[default]
    Any,
    Declared,
}

/// A command run on a schedule, in a one-off container of the environment's current release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CronJob {
    /// The job's name, unique within the service.
    pub name: ServiceName,
    /// When it runs: five cron fields (minute hour day-of-month month day-of-week), or six
    /// with seconds first, in `timezone`.
    pub schedule: CronSchedule,
    /// The command, as a list of arguments.
    #[schemars(length(min = 1))]
    pub command: Vec<String>,
    /// The IANA time zone the schedule is read in, e.g. `Europe/Paris`.
    #[serde(default = "TimeZoneName::utc")]
    pub timezone: TimeZoneName,
    /// What a tick does while the last run still runs: `forbid` (skip it, and say so),
    /// `allow` (run beside it) or `replace` (stop the last run, then start).
    #[serde(default)]
    pub concurrency: Concurrency,
    /// How late after its time a tick may still start (after a platform restart); later, it is
    /// recorded as missed. Only the most recent missed tick ever runs.
    #[serde(default = "CronJob::default_deadline")]
    pub starting_deadline: Duration,
    /// A run still going after this is stopped and recorded as timed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

impl CronJob {
    fn default_deadline() -> Duration {
        Duration::from_secs(60)
    }
}

/// What a cron tick does while the entry's last run still runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Concurrency {
    /// Skip the tick (recorded as skipped, naming the run it waited for).
    #[default]
    Forbid,
    /// Run beside the last one.
    Allow,
    /// Stop the last one, then run.
    Replace,
}

impl Concurrency {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Forbid => "forbid",
            Self::Allow => "allow",
            Self::Replace => "replace",
        }
    }
}

impl Manifest {
    /// The environment variables a database injects: `<NAME>_URL` (`-` made `_`), and the
    /// conventional `DATABASE_URL`, `REDIS_URL` and `AMQP_URL` for the first PostgreSQL, Redis
    /// and RabbitMQ database in name order.
    pub fn database_env_names(&self) -> Vec<(String, &DbName)> {
        let mut names = Vec::new();
        let mut seen = Vec::new();
        for (name, db) in &self.databases {
            let own = name.as_str().to_ascii_uppercase().replace('-', "_");
            names.push((format!("{own}_URL"), name));
            let conventional = match db.engine {
                Engine::Postgresql => Some("DATABASE_URL"),
                Engine::Redis => Some("REDIS_URL"),
                Engine::Rabbitmq => Some("AMQP_URL"),
                Engine::Mongodb => None,
            };
            if let Some(var) = conventional.filter(|v| !seen.contains(v)) {
                seen.push(var);
                if names.iter().all(|(n, _)| n != var) {
                    names.push((var.to_owned(), name));
                }
            }
        }
        names
    }
}
