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

use std::ops::Range;
use std::str::FromStr;

use serde_json::Value;
use toml_edit::{Item, TableLike};

use crate::diagnostic::{Diagnostic, Report};
use crate::units::Duration;

/// The longest a task may run.
pub const MAX_TASK_TIMEOUT: Duration = Duration::from_secs(30 * 86_400);
const DEFAULT_TASK_TIMEOUT: Duration = Duration::from_secs(86_400);
const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(300);
const DEFAULT_APPROVAL_TIMEOUT: Duration = Duration::from_secs(3_600);
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
            Err(e) => {
                let message = e.message().trim().to_owned();
                return Err(report(vec![
                    Diagnostic::new(
                        "toml-syntax",
                        e.span().unwrap_or(0..0),
                        format!("{file_name} is not valid TOML"),
                    )
                    .label(message.lines().next().unwrap_or_default().to_owned())
                    .help("see https://toml.io for the syntax; strings need quotes, tables are `[name]`"),
                ]));
            }
        };
        let mut p = Parser {
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

struct Parser {
    diagnostics: Vec<Diagnostic>,
    whole: Range<usize>,
}

fn key_span(table: &dyn TableLike, key: &str, fallback: &Range<usize>) -> Range<usize> {
    table
        .get_key_value(key)
        .and_then(|(k, v)| v.span().or_else(|| k.span()))
        .unwrap_or_else(|| fallback.clone())
}

const TOP_KEYS: &[&str] = &["name", "description", "timeout", "steps"];
const STEP_KEYS: &[&str] = &[
    "name",
    "action",
    "http",
    "approval",
    "input",
    "timeout",
    "retry",
    "idempotency",
];

impl Parser {
    fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    fn error(&mut self, code: &'static str, span: Range<usize>, message: impl Into<String>) {
        self.push(Diagnostic::new(code, span, message));
    }

    fn unknown_keys(&mut self, table: &dyn TableLike, known: &[&str], what: &str) {
        for (key, _) in table.iter() {
            if !known.contains(&key) {
                let span = table
                    .get_key_value(key)
                    .and_then(|(k, _)| k.span())
                    .unwrap_or_else(|| self.whole.clone());
                let suggestion = known
                    .iter()
                    .map(|k| (strsim::jaro_winkler(k, key), *k))
                    .filter(|(score, _)| *score > 0.8)
                    .max_by(|a, b| a.0.total_cmp(&b.0))
                    .map(|(_, k)| format!("did you mean `{k}`?"));
                self.push(
                    Diagnostic::new(
                        "unknown-key",
                        span,
                        format!("unknown key `{key}` in {what}"),
                    )
                    .label("not a key of this table")
                    .expected(
                        known
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", "),
                    )
                    .help_opt(suggestion),
                );
            }
        }
    }

    fn string(&mut self, table: &dyn TableLike, key: &str, span: &Range<usize>) -> Option<String> {
        let item = table.get(key)?;
        match item.as_str() {
            Some(s) => Some(s.to_owned()),
            None => {
                let at = key_span(table, key, span);
                self.push(
                    Diagnostic::new("wrong-type", at, format!("`{key}` must be a string"))
                        .label("not a string"),
                );
                None
            }
        }
    }

    fn duration(
        &mut self,
        table: &dyn TableLike,
        key: &str,
        span: &Range<usize>,
        max: Duration,
    ) -> Option<Duration> {
        let text = self.string(table, key, span)?;
        let at = key_span(table, key, span);
        match Duration::from_str(&text) {
            Ok(d) if d.as_std().is_zero() => {
                self.push(
                    Diagnostic::new(
                        "invalid-duration",
                        at,
                        format!("`{key}` must be more than zero"),
                    )
                    .label("zero"),
                );
                None
            }
            Ok(d) if d > max => {
                self.push(
                    Diagnostic::new(
                        "invalid-duration",
                        at,
                        format!("`{key}` is {text}: the most is {}", fmt_duration(max)),
                    )
                    .label("too long"),
                );
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.push(
                    Diagnostic::new("invalid-duration", at, e.message)
                        .label("not a duration")
                        .expected(e.expected),
                );
                None
            }
        }
    }

    fn definition(&mut self, root: &toml_edit::Table) -> TaskDefinition {
        let whole = self.whole.clone();
        self.unknown_keys(root, TOP_KEYS, "a task definition");
        let name = match self.string(root, "name", &whole) {
            Some(n) if crate::names::check_service_name(&n).is_ok() => n,
            Some(n) => {
                let at = key_span(root, "name", &whole);
                self.push(Diagnostic::new("invalid-name", at, format!("`{n}` is not a task name"))
                .label("not a name").expected("lowercase letters, digits and `-`, starting with a letter, at most 40 (e.g. `ship-order`)"));
                String::new()
            }
            None => {
                if !root.contains_key("name") {
                    self.push(
                        Diagnostic::new("missing-key", 0..0, "the task has no `name`")
                            .help("add `name = \"my-task\"` at the top"),
                    );
                }
                String::new()
            }
        };
        let description = self.string(root, "description", &whole);
        let timeout = if root.contains_key("timeout") {
            self.duration(root, "timeout", &whole, MAX_TASK_TIMEOUT)
                .unwrap_or(DEFAULT_TASK_TIMEOUT)
        } else {
            DEFAULT_TASK_TIMEOUT
        };
        let mut steps = Vec::new();
        match root.get("steps") {
            None => {
                self.push(
                    Diagnostic::new("no-steps", 0..0, "the task has no steps")
                        .help("add one with `[[steps]]`, a `name` and an `action`"),
                );
            }
            Some(item) => match item.as_array_of_tables() {
                Some(array) if array.is_empty() => {
                    self.error(
                        "no-steps",
                        key_span(root, "steps", &whole),
                        "the task has no steps",
                    );
                }
                Some(array) if array.len() > MAX_STEPS => {
                    self.error(
                        "too-many-steps",
                        key_span(root, "steps", &whole),
                        format!(
                            "the task has {} steps: the most is {MAX_STEPS}",
                            array.len()
                        ),
                    );
                }
                Some(array) => {
                    for table in array.iter() {
                        if let Some(step) = self.step(table, &steps) {
                            steps.push(step);
                        }
                    }
                }
                None => {
                    self.push(
                        Diagnostic::new(
                            "wrong-type",
                            key_span(root, "steps", &whole),
                            "`steps` must be an array of tables",
                        )
                        .label("not `[[steps]]`")
                        .help("write each step as a `[[steps]]` table"),
                    );
                }
            },
        }
        if self.diagnostics.is_empty() {
            self.check_references(&steps);
        }
        TaskDefinition {
            name,
            description,
            timeout,
            steps,
        }
    }

    fn step(
        &mut self,
        table: &toml_edit::Table,
        earlier: &[StepDefinition],
    ) -> Option<StepDefinition> {
        let span = table.span().unwrap_or_else(|| self.whole.clone());
        let errors_before = self.diagnostics.len();
        self.unknown_keys(table, STEP_KEYS, "a step");
        let name = match self.string(table, "name", &span) {
            Some(n) if is_step_name(&n) => {
                if earlier.iter().any(|s| s.name == n) {
                    let at = key_span(table, "name", &span);
                    self.push(
                        Diagnostic::new(
                            "duplicate-step",
                            at,
                            format!("there are two steps named `{n}`"),
                        )
                        .label("used before")
                        .help("give each step its own name"),
                    );
                }
                n
            }
            Some(n) => {
                let at = key_span(table, "name", &span);
                self.push(
                    Diagnostic::new("invalid-name", at, format!("`{n}` is not a step name"))
                        .label("not a name")
                        .expected(
                            "letters, digits, `-` and `_`, starting with a letter, at most 63",
                        ),
                );
                String::new()
            }
            None => {
                if !table.contains_key("name") {
                    self.push(
                        Diagnostic::new("missing-key", span.clone(), "this step has no `name`")
                            .label("here")
                            .help("add `name = \"<step>\"`"),
                    );
                }
                String::new()
            }
        };
        let kinds: Vec<&str> = ["action", "http", "approval"]
            .into_iter()
            .filter(|k| table.contains_key(k))
            .collect();
        if kinds.len() != 1 {
            let at = if kinds.len() > 1 {
                key_span(table, kinds[1], &span)
            } else {
                span.clone()
            };
            self.push(Diagnostic::new("step-kind", at, format!("step `{name}` must say exactly one of `action`, `http` or `approval` ({} given)", kinds.len()))
            .label("here").help("an action's name (`action = \"charge\"`), an `http = { url = \"…\" }` call or `approval = {}`"));
            return None;
        }
        let kind = match kinds[0] {
            "action" => {
                let action = self.string(table, "action", &span)?;
                let at = key_span(table, "action", &span);
                if !is_action_name(&action) {
                    self.push(
                        Diagnostic::new(
                            "invalid-name",
                            at.clone(),
                            format!("`{action}` is not an action name"),
                        )
                        .label("not a name")
                        .expected("lowercase letters, digits, `-`, `_` and `.`, at most 63"),
                    );
                }
                StepKind::Action {
                    name: action,
                    span: at,
                }
            }
            "http" => self.http(table, &span)?,
            _ => {
                let item = table.get("approval")?;
                let Some(t) = item.as_table_like() else {
                    self.push(
                        Diagnostic::new(
                            "wrong-type",
                            key_span(table, "approval", &span),
                            "`approval` must be a table",
                        )
                        .label("not a table")
                        .help("write `approval = {}` or `approval = { message = \"Ship it?\" }`"),
                    );
                    return None;
                };
                self.unknown_keys(t, &["message"], "`approval`");
                StepKind::Approval {
                    message: self.string(t, "message", &span),
                }
            }
        };
        let (input, input_span) = match table.get("input") {
            None => (Value::Object(Default::default()), span.clone()),
            Some(item) => (item_to_json(item), key_span(table, "input", &span)),
        };
        let mut references = Vec::new();
        if let Some(item) = table.get("input") {
            self.references(item, &mut Vec::new(), &mut references, &input_span);
        }
        let default_timeout = if matches!(kind, StepKind::Approval { .. }) {
            DEFAULT_APPROVAL_TIMEOUT
        } else {
            DEFAULT_STEP_TIMEOUT
        };
        let timeout = if table.contains_key("timeout") {
            self.duration(table, "timeout", &span, MAX_TASK_TIMEOUT)
                .unwrap_or(default_timeout)
        } else {
            default_timeout
        };
        let retry = self.retry(table, &span);
        let (idempotency, idempotency_reference) = match table.get("idempotency") {
            None => (None, None),
            Some(item) => {
                let at = key_span(table, "idempotency", &span);
                let mut refs = Vec::new();
                self.references(item, &mut Vec::new(), &mut refs, &at);
                (Some(item_to_json(item)), refs.into_iter().next())
            }
        };
        if self.diagnostics.len() > errors_before {
            return None;
        }
        Some(StepDefinition {
            name,
            kind,
            input,
            references,
            timeout,
            retry,
            idempotency,
            idempotency_reference,
            span,
            input_span,
        })
    }

    fn http(&mut self, table: &toml_edit::Table, span: &Range<usize>) -> Option<StepKind> {
        let at = key_span(table, "http", span);
        let Some(t) = table.get("http").and_then(Item::as_table_like) else {
            self.push(
                Diagnostic::new("wrong-type", at, "`http` must be a table")
                    .label("not a table")
                    .help("write `http = { url = \"https://…\", method = \"POST\" }`"),
            );
            return None;
        };
        self.unknown_keys(t, &["url", "method", "headers", "success"], "`http`");
        let url = match self.string(t, "url", &at) {
            Some(u) if u.starts_with("http://") || u.starts_with("https://") => u,
            Some(u) => {
                self.push(
                    Diagnostic::new(
                        "invalid-url",
                        key_span(t, "url", &at),
                        format!("`{u}` is not an http(s) URL"),
                    )
                    .label("not a URL")
                    .expected("`http://…` or `https://…`"),
                );
                return None;
            }
            None => {
                self.push(
                    Diagnostic::new("missing-key", at, "`http` has no `url`")
                        .label("here")
                        .help("add `url = \"https://…\"`"),
                );
                return None;
            }
        };
        let method = self
            .string(t, "method", &at)
            .unwrap_or_else(|| "POST".into())
            .to_ascii_uppercase();
        if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
            self.push(
                Diagnostic::new(
                    "invalid-method",
                    key_span(t, "method", &at),
                    format!("`{method}` is not a method an http step sends"),
                )
                .expected("GET, POST, PUT, PATCH or DELETE"),
            );
        }
        let mut headers = Vec::new();
        if let Some(item) = t.get("headers") {
            match item.as_table_like() {
                Some(h) => {
                    for (k, v) in h.iter() {
                        match v.as_str() {
                            Some(v) => headers.push((k.to_owned(), v.to_owned())),
                            None => {
                                self.error(
                                    "wrong-type",
                                    key_span(h, k, &at),
                                    format!("header `{k}` must be a string"),
                                );
                            }
                        }
                    }
                }
                None => {
                    self.error(
                        "wrong-type",
                        key_span(t, "headers", &at),
                        "`headers` must be a table of strings",
                    );
                }
            }
        }
        let mut success = Vec::new();
        match t.get("success") {
            None => success.push(StatusMatch::Class(2)),
            Some(item) => {
                let list = item
                    .as_array()
                    .map(|a| a.iter().collect::<Vec<_>>())
                    .unwrap_or_default();
                let sp = key_span(t, "success", &at);
                if list.is_empty() {
                    self.push(
                        Diagnostic::new(
                            "invalid-success",
                            sp.clone(),
                            "`success` must be a non-empty list of statuses",
                        )
                        .expected("codes and classes, e.g. `[\"2xx\", 404]`"),
                    );
                }
                for v in list {
                    let parsed = match (v.as_integer(), v.as_str()) {
                        (Some(code @ 100..=599), _) => Some(StatusMatch::Code(code as u16)),
                        (_, Some(class)) if class.len() == 3 && class.ends_with("xx") => class[..1]
                            .parse::<u16>()
                            .ok()
                            .filter(|c| (1..=5).contains(c))
                            .map(StatusMatch::Class),
                        _ => None,
                    };
                    match parsed {
                        Some(m) => success.push(m),
                        None => {
                            self.push(
                                Diagnostic::new(
                                    "invalid-success",
                                    v.span().unwrap_or(sp.clone()),
                                    format!("`{}` is not a status", v.to_string().trim()),
                                )
                                .expected("a code from 100 to 599, or a class `1xx` to `5xx`"),
                            );
                        }
                    }
                }
            }
        }
        Some(StepKind::Http(HttpCall {
            url,
            method,
            headers,
            success,
        }))
    }

    fn retry(&mut self, table: &toml_edit::Table, span: &Range<usize>) -> Retry {
        let mut retry = Retry::default();
        let Some(item) = table.get("retry") else {
            return retry;
        };
        let at = key_span(table, "retry", span);
        let Some(t) = item.as_table_like() else {
            self.push(
                Diagnostic::new("wrong-type", at, "`retry` must be a table")
                    .help("write `retry = { attempts = 3, backoff = \"1s\" }`"),
            );
            return retry;
        };
        self.unknown_keys(
            t,
            &["attempts", "backoff", "factor", "max_backoff"],
            "`retry`",
        );
        for (key, max) in [("attempts", 100), ("factor", 10)] {
            if let Some(v) = t.get(key) {
                match v.as_integer() {
                    Some(n @ 1..) if n <= max => {
                        if key == "attempts" {
                            retry.attempts = n as u32
                        } else {
                            retry.factor = n as u32
                        }
                    }
                    _ => {
                        self.push(
                            Diagnostic::new(
                                "invalid-retry",
                                key_span(t, key, &at),
                                format!("`{key}` must be a whole number from 1 to {max}"),
                            )
                            .label("out of range"),
                        );
                    }
                }
            }
        }
        if t.contains_key("backoff") {
            retry.backoff = self
                .duration(t, "backoff", &at, Duration::from_secs(86_400))
                .unwrap_or(retry.backoff);
        }
        if t.contains_key("max_backoff") {
            retry.max_backoff = self
                .duration(t, "max_backoff", &at, Duration::from_secs(86_400))
                .unwrap_or(retry.max_backoff);
        }
        retry
    }

    /// Collects the references in a mapping, reporting malformed ones.
    fn references(
        &mut self,
        item: &Item,
        at: &mut Vec<String>,
        out: &mut Vec<Reference>,
        fallback: &Range<usize>,
    ) {
        match item {
            Item::Value(v) => self.value_references(v, at, out, fallback),
            Item::Table(t) => {
                for (k, v) in t.iter() {
                    at.push(k.to_owned());
                    self.references(v, at, out, fallback);
                    at.pop();
                }
            }
            _ => {}
        }
    }

    fn value_references(
        &mut self,
        v: &toml_edit::Value,
        at: &mut Vec<String>,
        out: &mut Vec<Reference>,
        fallback: &Range<usize>,
    ) {
        match v {
            toml_edit::Value::String(s) => {
                let span = s.span().unwrap_or_else(|| fallback.clone());
                match parse_reference(s.value()) {
                    None => {}
                    Some(Ok((source, path))) => out.push(Reference {
                        source,
                        path,
                        span,
                        at: at.clone(),
                    }),
                    Some(Err(message)) => {
                        self.push(
                            Diagnostic::new("invalid-reference", span, message)
                                .label("not a reference"),
                        );
                    }
                }
            }
            toml_edit::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    at.push(i.to_string());
                    self.value_references(item, at, out, fallback);
                    at.pop();
                }
            }
            toml_edit::Value::InlineTable(t) => {
                for (k, item) in t.iter() {
                    at.push(k.to_owned());
                    self.value_references(item, at, out, fallback);
                    at.pop();
                }
            }
            _ => {}
        }
    }

    /// A reference to a step names an earlier one.
    fn check_references(&mut self, steps: &[StepDefinition]) {
        for (i, step) in steps.iter().enumerate() {
            for r in step
                .references
                .iter()
                .chain(step.idempotency_reference.iter())
            {
                let Source::Step(name) = &r.source else {
                    continue;
                };
                match steps.iter().position(|s| &s.name == name) {
                    Some(j) if j < i => {}
                    Some(_) => {
                        self.push(
                            Diagnostic::new(
                                "later-step",
                                r.span.clone(),
                                format!(
                                    "step `{}` maps from `{name}`, which runs after it",
                                    step.name
                                ),
                            )
                            .label("not run yet")
                            .help("a step maps only from the task's input and the steps before it"),
                        );
                    }
                    None => {
                        let known: Vec<&str> = steps[..i].iter().map(|s| s.name.as_str()).collect();
                        self.push(
                            Diagnostic::new(
                                "unknown-step",
                                r.span.clone(),
                                format!("there is no step `{name}`"),
                            )
                            .label("no such step")
                            .help_opt((!known.is_empty()).then(|| {
                                format!(
                                    "the steps before `{}` are {}",
                                    step.name,
                                    known
                                        .iter()
                                        .map(|k| format!("`{k}`"))
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                )
                            })),
                        );
                    }
                }
            }
        }
    }
}

fn fmt_duration(d: Duration) -> String {
    let s = d.as_std().as_secs();
    if s.is_multiple_of(86_400) {
        format!("{}d", s / 86_400)
    } else {
        format!("{s}s")
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const GOOD: &str = r#"
name = "order"
timeout = "1h"

[[steps]]
name = "reserve"
action = "reserve-stock"
input = { sku = "$input.sku", count = 2, note = "$$5 off" }
retry = { attempts = 5, backoff = "100ms", factor = 3, max_backoff = "1s" }
idempotency = "$input.order"

[[steps]]
name = "ship"
approval = { message = "Ship it?" }

[[steps]]
name = "tell"
http = { url = "http://127.0.0.1:9/hook", success = ["2xx", 404] }
input = { reserved = "$steps.reserve.id", by = "$steps.ship" }
"#;

    #[test]
    fn a_good_definition_reads_with_its_references() {
        let d = TaskDefinition::parse("t.toml", GOOD).unwrap();
        assert_eq!(d.name, "order");
        assert_eq!(d.steps.len(), 3);
        let reserve = &d.steps[0];
        assert_eq!(reserve.retry.attempts, 5);
        assert_eq!(
            reserve.retry.backoff_after(1),
            std::time::Duration::from_millis(100)
        );
        assert_eq!(
            reserve.retry.backoff_after(2),
            std::time::Duration::from_millis(300)
        );
        assert_eq!(
            reserve.retry.backoff_after(4),
            std::time::Duration::from_secs(1),
            "capped"
        );
        assert_eq!(reserve.references[0].source, Source::Input);
        assert_eq!(reserve.references[0].at, ["sku"]);
        assert_eq!(&GOOD[reserve.references[0].span.clone()], "\"$input.sku\"");
        assert_eq!(d.steps[1].timeout, DEFAULT_APPROVAL_TIMEOUT);
        let StepKind::Http(call) = &d.steps[2].kind else {
            panic!()
        };
        assert_eq!(call.method, "POST");
        assert!(call.success.iter().any(|m| m.matches(404)));
        assert!(!call.success.iter().any(|m| m.matches(500)));
        let outputs = |s: &str| match s {
            "reserve" => Some(json!({"id": "r-1"})),
            "ship" => Some(json!({"by": "ann"})),
            _ => None,
        };
        let input = json!({"sku": "A", "order": 7});
        assert_eq!(
            resolve(&reserve.input, &input, &outputs).unwrap(),
            json!({"sku": "A", "count": 2, "note": "$5 off"})
        );
        assert_eq!(
            resolve(&d.steps[2].input, &input, &outputs).unwrap(),
            json!({"reserved": "r-1", "by": {"by": "ann"}})
        );
        let err = resolve(&json!("$input.nope"), &input, &outputs).unwrap_err();
        assert!(err.0.contains("no `nope`"), "{err}");
    }

    #[test]
    fn every_problem_is_reported_with_its_place() {
        let text = r#"
name = "Bad Name"
timeot = "1h"

[[steps]]
name = "a"
action = "x"
http = { url = "http://h" }

[[steps]]
name = "b"
action = "y"
input = { v = "$steps.c.out", w = "$nothing" }
retry = { attempts = 0 }

[[steps]]
name = "c"
action = "z"
timeout = "soon"
"#;
        let report = TaskDefinition::parse("t.toml", text).unwrap_err();
        let codes: Vec<&str> = report.diagnostics.iter().map(|d| d.code).collect();
        assert!(codes.contains(&"invalid-name"), "{codes:?}");
        assert!(codes.contains(&"unknown-key"), "{codes:?}");
        assert!(codes.contains(&"step-kind"), "{codes:?}");
        assert!(codes.contains(&"invalid-reference"), "{codes:?}");
        assert!(codes.contains(&"invalid-retry"), "{codes:?}");
        assert!(codes.contains(&"invalid-duration"), "{codes:?}");
        let rendered = report.render(false);
        assert!(rendered.contains("t.toml:3:1"), "{rendered}");
        assert!(rendered.contains("did you mean `timeout`?"), "{rendered}");
    }

    #[test]
    fn a_step_maps_only_from_earlier_steps() {
        let text = "name = \"tt\"\n[[steps]]\nname = \"a\"\naction = \"x\"\ninput = { v = \"$steps.b.out\" }\n[[steps]]\nname = \"b\"\naction = \"y\"\ninput = \"$steps.zed\"\n";
        let report = TaskDefinition::parse("t.toml", text).unwrap_err();
        let codes: Vec<&str> = report.diagnostics.iter().map(|d| d.code).collect();
        assert_eq!(codes, ["later-step", "unknown-step"]);
        let located = report.located();
        assert_eq!((located[0].line, located[0].column), (5, 15));
    }
}
