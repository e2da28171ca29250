//! Task definitions: a TOML file naming steps in order, each an action (or a built-in `http`
//! or `approval` step) with an input mapping from the task's input and earlier steps' outputs.
//! [`TaskDefinition::parse`] checks what the file alone can say and reports every problem with
//! its place; the platform then checks the steps against the actions' schemas with the spans
//! kept here.
//!
//! ```toml
//! name = "order"
//! timeout = "1h"
//!
//! [[steps]]
//! name = "reserve"
//! action = "reserve-stock"
//! input = { sku = "$input.sku", count = 2 }
//! timeout = "30s"
//! retry = { attempts = 3, backoff = "1s", factor = 2, max_backoff = "1m" }
//! idempotency = "$input.order"
//!
//! [[steps]]
//! name = "ship"
//! approval = { message = "Ship it?" }
//! timeout = "1h"
//! ```
//!
//! In a mapping, a string that starts with `$` takes its value from `$input[.path]` or
//! `$steps.<step>[.path]` (that step's output); `$$` stands for a literal `$`.

mod parse;
#[cfg(test)]
mod tests;

use std::ops::Range;

use serde_json::Value;
use toml_edit::Item;

use crate::diagnostic::Report;
use crate::units::Duration;

/// The longest a task may run.
pub const MAX_TASK_TIMEOUT: Duration = Duration::from_secs(30 * 86_400);
pub(crate) const DEFAULT_TASK_TIMEOUT: Duration = Duration::from_secs(86_400);
pub(crate) const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(300);
pub(crate) const DEFAULT_APPROVAL_TIMEOUT: Duration = Duration::from_secs(3_600);
/// At most this many steps in one task.
pub const MAX_STEPS: usize = 1_000;

/// A checked task definition.
#[derive(Debug, Clone)]
pub struct TaskDefinition {
    pub name: String,
    pub description: Option<String>,
    pub timeout: Duration,
    pub steps: Vec<StepDefinition>,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    /// Launch an action of the tenant's.
    Action { name: String, span: Range<usize> },
    /// Call a REST API; the step's input is the request's body.
    Http(HttpCall),
    /// Wait for a person.
    Approval { message: Option<String> },
}

/// A built-in `http` step's request.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpCall {
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
    /// The statuses that count as success: codes (`200`) or classes (`"2xx"`).
    pub success: Vec<StatusMatch>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMatch {
    Code(u16),
    Class(u16),
}

impl StatusMatch {
    pub fn matches(self, status: u16) -> bool {
        match self {
            Self::Code(c) => c == status,
            Self::Class(c) => status / 100 == c,
        }
    }
}

/// How a failed attempt is retried: `attempts` in all, waiting `backoff × factor^(n-1)`
/// (at most `max_backoff`) before attempt n+1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retry {
    pub attempts: u32,
    pub backoff: Duration,
    pub factor: u32,
    pub max_backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 3,
            backoff: Duration::from_secs(1),
            factor: 2,
            max_backoff: Duration::from_secs(60),
        }
    }
}

impl Retry {
    /// The wait before the attempt after attempt `n` (1-based).
    pub fn backoff_after(&self, n: u32) -> std::time::Duration {
        let base = self.backoff.as_std();
        let factor = u64::from(self.factor).saturating_pow(n.saturating_sub(1).min(32));
        let ms = (base.as_millis() as u64).saturating_mul(factor);
        std::time::Duration::from_millis(ms).min(self.max_backoff.as_std())
    }
}

#[derive(Debug, Clone)]
pub struct StepDefinition {
    pub name: String,
    pub kind: StepKind,
    /// The input mapping (the `http` step's body), with `$` references unresolved.
    pub input: Value,
    /// Every reference in `input`, with its place.
    pub references: Vec<Reference>,
    /// Per attempt, and how long an unavailable action is waited for; an approval's wait.
    pub timeout: Duration,
    pub retry: Retry,
    /// What the idempotency key is derived from instead of the run and step: a literal, or
    /// a reference.
    pub idempotency: Option<Value>,
    pub idempotency_reference: Option<Reference>,
    pub span: Range<usize>,
    pub input_span: Range<usize>,
}

/// Where a reference takes its value from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Input,
    Step(String),
}

/// A `$input.a.b` or `$steps.s.a.b` in a mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub source: Source,
    pub path: Vec<String>,
    /// Where it is written.
    pub span: Range<usize>,
    /// Where its value goes in the mapped input (keys and indexes as strings).
    pub at: Vec<String>,
}

/// A reference in a mapping's string: `None` for a literal.
pub fn parse_reference(text: &str) -> Option<Result<(Source, Vec<String>), String>> {
    let rest = text.strip_prefix('$')?;
    if rest.starts_with('$') {
        return None;
    }
    let mut parts = rest.split('.');
    let head = parts.next().unwrap_or_default();
    let parsed = match head {
        "input" => Ok((Source::Input, parts.map(str::to_owned).collect::<Vec<_>>())),
        "steps" => match parts.next() {
            Some(step) if !step.is_empty() => Ok((
                Source::Step(step.to_owned()),
                parts.map(str::to_owned).collect(),
            )),
            _ => Err(format!(
                "`{text}` names no step: write `$steps.<step>` or `$steps.<step>.<field>`"
            )),
        },
        _ => Err(format!(
            "`{text}` is not a reference: write `$input.<field>` or `$steps.<step>.<field>` (a literal `$` is `$$`)"
        )),
    };
    Some(parsed.and_then(|(source, path)| {
        if path.iter().any(String::is_empty) {
            Err(format!("`{text}` has an empty field name"))
        } else {
            Ok((source, path))
        }
    }))
}

/// Why a value could not be taken from a reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ResolveError(pub String);

/// The value a mapping gives, from the task's input and the outputs of the steps so far.
pub fn resolve(
    mapping: &Value,
    input: &Value,
    output_of: &dyn Fn(&str) -> Option<Value>,
) -> Result<Value, ResolveError> {
    Ok(match mapping {
        Value::String(s) => match parse_reference(s) {
            None => Value::String(s.strip_prefix('$').map_or_else(|| s.clone(), str::to_owned)),
            Some(Err(e)) => return Err(ResolveError(e)),
            Some(Ok((source, path))) => {
                let root = match &source {
                    Source::Input => input.clone(),
                    Source::Step(step) => output_of(step).ok_or_else(|| {
                        ResolveError(format!("`{s}`: step `{step}` has no output yet"))
                    })?,
                };
                let mut value = &root;
                for field in &path {
                    value = match value {
                        Value::Object(map) => map.get(field),
                        Value::Array(items) => {
                            field.parse::<usize>().ok().and_then(|i| items.get(i))
                        }
                        _ => None,
                    }
                    .ok_or_else(|| {
                        ResolveError(format!(
                            "`{s}`: there is no `{field}` in {}",
                            describe(value)
                        ))
                    })?;
                }
                value.clone()
            }
        },
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| resolve(v, input, output_of))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), resolve(v, input, output_of)?)))
                .collect::<Result<_, ResolveError>>()?,
        ),
        other => other.clone(),
    })
}

fn describe(value: &Value) -> String {
    match value {
        Value::Object(map) if map.is_empty() => "an empty object".into(),
        Value::Object(map) => format!(
            "an object with {}",
            map.keys()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Array(items) => format!("a list of {}", items.len()),
        Value::Null => "null".into(),
        Value::String(_) => "a string".into(),
        Value::Number(_) => "a number".into(),
        Value::Bool(_) => "a boolean".into(),
    }
}

impl TaskDefinition {
    /// Checks a definition given as text; `file_name` is how errors name it.
    pub fn parse(file_name: &str, source: &str) -> Result<Self, Report> {
        let report = |diagnostics| Report {
            file_name: file_name.to_owned(),
            source: source.to_owned(),
            diagnostics,
        };
        let doc = match toml_edit::Document::parse(source) {
            Ok(doc) => doc,
            Err(e) => return Err(report(vec![crate::diagnostic::toml_syntax(file_name, &e)])),
        };
        let mut p = parse::Parser {
            diagnostics: Vec::new(),
            whole: 0..source.len(),
        };
        let definition = p.definition(doc.as_table());
        if p.diagnostics.is_empty() {
            Ok(definition)
        } else {
            Err(report(p.diagnostics))
        }
    }
}

/// Every code a definition's problem may have (the platform's included).
const CODES: &[&str] = &[
    "toml-syntax",
    "unknown-key",
    "wrong-type",
    "invalid-duration",
    "invalid-name",
    "missing-key",
    "no-steps",
    "too-many-steps",
    "duplicate-step",
    "step-kind",
    "invalid-url",
    "invalid-method",
    "invalid-success",
    "invalid-retry",
    "invalid-reference",
    "later-step",
    "unknown-step",
    "unknown-action",
    "unknown-output",
    "missing-input",
    "input-schema",
];

/// A problem code as a [`Diagnostic`] keeps it (`invalid-definition` for one this build does
/// not know).
pub fn code(text: &str) -> &'static str {
    CODES
        .iter()
        .find(|c| **c == text)
        .copied()
        .unwrap_or("invalid-definition")
}

/// Step names: a letter, then letters, digits, `-` and `_`; at most 63.
pub fn is_step_name(text: &str) -> bool {
    let mut chars = text.chars();
    text.len() <= 63
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Action names: a lowercase letter or digit, then lowercase letters, digits, `-`, `_` and `.`;
/// at most 63.
pub fn is_action_name(text: &str) -> bool {
    let mut chars = text.chars();
    text.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

/// A TOML item as JSON (dates become strings).
pub fn item_to_json(item: &Item) -> Value {
    match item {
        Item::Value(v) => value_to_json(v),
        Item::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.to_owned(), item_to_json(v)))
                .collect(),
        ),
        Item::ArrayOfTables(a) => Value::Array(
            a.iter()
                .map(|t| {
                    Value::Object(
                        t.iter()
                            .map(|(k, v)| (k.to_owned(), item_to_json(v)))
                            .collect(),
                    )
                })
                .collect(),
        ),
        Item::None => Value::Null,
    }
}

fn value_to_json(v: &toml_edit::Value) -> Value {
    use toml_edit::Value as V;
    match v {
        V::String(s) => Value::String(s.value().clone()),
        V::Integer(i) => Value::from(*i.value()),
        V::Float(f) => serde_json::Number::from_f64(*f.value()).map_or(Value::Null, Value::Number),
        V::Boolean(b) => Value::Bool(*b.value()),
        V::Datetime(d) => Value::String(d.value().to_string()),
        V::Array(a) => Value::Array(a.iter().map(value_to_json).collect()),
        V::InlineTable(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.to_owned(), value_to_json(v)))
                .collect(),
        ),
    }
}
