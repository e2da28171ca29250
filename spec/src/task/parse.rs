//! The definition's TOML, walked with its spans: every problem the file alone shows.

use std::ops::Range;
use std::str::FromStr;

use serde_json::Value;
use toml_edit::{Item, TableLike};

use super::{
    DEFAULT_APPROVAL_TIMEOUT, DEFAULT_STEP_TIMEOUT, DEFAULT_TASK_TIMEOUT, HttpCall, MAX_STEPS,
    MAX_TASK_TIMEOUT, Reference, Retry, Source, StatusMatch, StepDefinition, StepKind,
    TaskDefinition, is_action_name, is_step_name, item_to_json, parse_reference,
};
use crate::diagnostic::Diagnostic;
use crate::units::Duration;

pub(super) struct Parser {
    pub(super) diagnostics: Vec<Diagnostic>,
    pub(super) whole: Range<usize>,
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
                let suggestion = crate::nearest(key, known).map(|k| format!("did you mean `{k}`?"));
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

    pub(super) fn definition(&mut self, root: &toml_edit::Table) -> TaskDefinition {
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
