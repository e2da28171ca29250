//! Task chains: actions that register themselves by heartbeat, and the durable runs of task
//! definitions over them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// What an action's name may be: a lowercase letter or digit, then lowercase letters, digits,
/// `-`, `_` and `.`; at most 63 (names starting `faas.` are the platform's).
pub const ACTION_NAME_PATTERN: &str = "^[a-z0-9][a-z0-9._-]{0,62}$";
/// What a worker's id may be: 1 to 200 printable characters without spaces.
pub const WORKER_PATTERN: &str = "^[!-~]{1,200}$";

/// How the platform reaches an action.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// A durable queue on the platform's RabbitMQ (the address is the queue's name); results
    /// come back on the queue named in each launch's `reply_to`.
    Rabbitmq,
    /// The platform POSTs each launch to the address (a URL); the action answers with its
    /// result, or 202 and posts the result later.
    Http,
    /// Built into the platform.
    Inprocess,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rabbitmq => "rabbitmq",
            Self::Http => "http",
            Self::Inprocess => "inprocess",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "rabbitmq" => Some(Self::Rabbitmq),
            "http" => Some(Self::Http),
            "inprocess" => Some(Self::Inprocess),
            _ => None,
        }
    }
}

/// `POST /v1/actions/heartbeat`: one worker of an action says it is alive, and what the
/// action is.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// The action's name, unique within the tenant: lowercase letters, digits, `-`, `_` and
    /// `.`, at most 63.
    pub name: String,
    /// The action's version, e.g. `1.2.0`.
    pub version: String,
    /// Which worker beats (one action has any number); e.g. `host-1234`.
    pub worker: String,
    /// The JSON Schema of the action's input.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    #[serde(default = "any_schema")]
    pub input_schema: Value,
    /// The JSON Schema of the action's output.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    #[serde(default = "any_schema")]
    pub output_schema: Value,
    pub transport: Transport,
    /// The queue (rabbitmq) or the URL (http) launches go to.
    pub address: String,
    /// How often this worker beats, in ms, from 100 to 60000 [default: 2000]. It is
    /// unavailable after three intervals without a beat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
}

fn any_schema() -> Value {
    Value::Object(Default::default())
}

/// What a heartbeat is answered with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct HeartbeatAck {
    pub action: String,
    pub worker: String,
    /// The worker is taken as gone after this many ms without a beat.
    pub missed_after_ms: u64,
    /// Where results of RabbitMQ launches go (the launch's `reply_to` says it too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results_queue: Option<String>,
}

/// `available` while at least one worker beats; `unavailable` after.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Action {
    pub name: String,
    pub tenant: String,
    pub version: String,
    pub transport: Transport,
    pub address: String,
    /// `available` or `unavailable`.
    pub state: String,
    /// Workers beating now.
    pub workers: u32,
    /// The last beat of any worker (RFC 3339).
    pub last_beat: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub input_schema: Value,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub output_schema: Value,
}

/// One launch of an action's step: what a worker receives (the RabbitMQ message's body, the
/// body POSTed to an HTTP action).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Launch {
    /// `<run>.<step>.<attempt>`: this attempt.
    pub id: String,
    /// The same for every attempt of one step of one run (or derived from the step's
    /// `idempotency` hint): the action makes its effect happen once per key.
    pub key: String,
    pub run: String,
    pub step: String,
    pub attempt: u32,
    pub action: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub input: Value,
    /// The step's deadline for this attempt (RFC 3339).
    pub deadline: String,
    /// Proves a result comes from a holder of this launch: results carry it back.
    pub token: String,
    /// Where a RabbitMQ worker publishes its result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
}

/// `POST /v1/actions/launches/{id}/claim`: a worker takes a launch before working on it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Claim {
    pub worker: String,
}

/// A worker's result of a launch: `output`, or `error` (then the step's retry policy decides).
/// Posted to `/v1/actions/launches/{id}/result` or published to the results queue.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LaunchResult {
    /// The launch's id (needed on the results queue; the URL says it over HTTP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<String>,
    /// The launch's token.
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a worker's `output` and `error` say of its attempt: an output, or why it failed (an
/// error wins); None when it says neither.
pub fn outcome(output: Option<Value>, error: Option<String>) -> Option<Result<Value, String>> {
    match (output, error) {
        (_, Some(error)) => Some(Err(error)),
        (Some(output), None) => Some(Ok(output)),
        (None, None) => None,
    }
}

/// `POST /v1/tasks`: run a task definition.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RunTask {
    /// The definition's TOML text.
    pub definition: String,
    /// How errors name the definition's file [default: `task.toml`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The task's input, `$input` in the steps' mappings [default: {}].
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    #[serde(default = "any_schema")]
    pub input: Value,
}

/// `POST /v1/tasks/{id}/steps/{step}/approve`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Approve {
    /// What the approver adds: the step's output, which later steps map from [default: {}].
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// Refuse instead: the step and the task fail.
    #[serde(default)]
    pub reject: bool,
}

/// A run of a task, with its steps.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TaskRun {
    pub id: String,
    pub tenant: String,
    /// The definition's name.
    pub task: String,
    /// `pending`, `running`, `succeeded`, `failed` or `cancelled`.
    pub state: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub input: Value,
    /// The last step's output, once it succeeded.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The run that launched this one (its launcher task), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// The run this launcher task launched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child: Option<String>,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    pub steps: Vec<StepRun>,
}

/// One step of a task run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct StepRun {
    pub name: String,
    /// The action, or `http` / `approval` for the built-in steps.
    pub action: String,
    /// `waiting`, `ready`, `launched`, `running`, `approval`, `succeeded`, `failed` or
    /// `cancelled`.
    pub state: String,
    /// Attempts made so far.
    pub attempt: u32,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The idempotency key every attempt of this step carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// When the current wait ends (an approval's timeout, a retry's backoff, an attempt's
    /// deadline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

impl TaskRun {
    pub fn is_over(&self) -> bool {
        !matches!(self.state.as_str(), "pending" | "running")
    }
}

/// A problem found in a task definition, with its place in the file (in a 422's `errors`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DefinitionError {
    pub code: String,
    pub message: String,
    /// 1-based.
    pub line: usize,
    pub column: usize,
    /// The byte range in the definition's text.
    pub start: usize,
    pub end: usize,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}
