//! Structural validation: walks the parsed TOML (with its spans) alongside the JSON Schema
//! generated from the model, and reports every unknown key, wrong type, bad unit, bad name and
//! out-of-range number at once.

use std::ops::Range;

use serde_json::Value as Json;
use toml_edit::{Item, TableLike, Value};

use crate::diagnostic::Diagnostic;
use crate::names;
use crate::schema::{app_schema, resolve};
use crate::units::{Duration, Memory};

/// Keys that are the same in every environment and so cannot be overridden.
const TOP_LEVEL_ONLY: [&str; 4] = ["name", "kind", "owner", "environments"];

pub(crate) struct Walker<'a> {
    root: &'a Json,
    /// Where each key of the schema lives (`replicas` → `scale`), for "belongs in" hints.
    homes: Vec<(String, String)>,
    pub(crate) diagnostics: Vec<Diagnostic>,
}

impl Walker<'_> {
    pub(crate) fn new() -> Self {
        let root = app_schema();
        let mut homes = Vec::new();
        for path in crate::schema::key_paths() {
            if let Some((table, key)) = path.rsplit_once('.') {
                if !table.contains('<') {
                    homes.push((key.to_owned(), table.to_owned()));
                }
            } else {
                homes.push((path.clone(), String::new()));
            }
        }
        Walker {
            root,
            homes,
            diagnostics: Vec::new(),
        }
    }

    pub(crate) fn walk_document(&mut self, table: &dyn TableLike, doc_span: Range<usize>) {
        let root = self.root;
        self.walk_table(table, root, &[], doc_span);
    }

    fn walk_table(
        &mut self,
        table: &dyn TableLike,
        schema: &Json,
        path: &[String],
        span: Range<usize>,
    ) {
        let schema = resolve(self.root, schema);
        let props = schema.get("properties").and_then(Json::as_object);
        let extra = schema.get("additionalProperties").filter(|v| v.is_object());
        let key_format = schema
            .get("propertyNames")
            .and_then(|p| p.get("format"))
            .and_then(Json::as_str);

        for (key, item) in table.iter() {
            let key_span = table
                .get_key_value(key)
                .and_then(|(k, _)| k.span())
                .or_else(|| item.span())
                .unwrap_or_else(|| span.clone());
            let mut child_path = path.to_vec();
            child_path.push(key.to_owned());

            if let Some(child) = props.and_then(|p| p.get(key)) {
                self.walk_item(item, child, &child_path, key_span);
            } else if let Some(child) = extra {
                if let Some(format) = key_format
                    && let Err(e) = check_format(format, key)
                {
                    self.diagnostics.push(
                        Diagnostic::new("invalid-name", key_span.clone(), e.message)
                            .label("invalid name")
                            .expected(e.expected),
                    );
                }
                self.walk_item(item, child, &child_path, key_span);
            } else {
                let known: Vec<&str> = props
                    .map(|p| p.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                self.unknown_key(key, &known, path, key_span);
            }
        }

        if let Some(required) = schema.get("required").and_then(Json::as_array) {
            for key in required.iter().filter_map(Json::as_str) {
                if !table.contains_key(key) {
                    let description = props
                        .and_then(|p| p.get(key))
                        .map(|s| describe(self.root, s))
                        .unwrap_or_default();
                    let example = match key {
                        "owner" => "owner = \"team@example.com\"".to_owned(),
                        "name" => "name = \"my-service\"".to_owned(),
                        "engine" => "engine = \"postgresql\"".to_owned(),
                        "service" => "service = \"users\"".to_owned(),
                        "schedule" => "schedule = \"0 3 * * *\"".to_owned(),
                        "command" => "command = [\"python3\", \"-m\", \"app.job\"]".to_owned(),
                        _ => format!("{key} = …"),
                    };
                    let at = if span.start == 0 && path.is_empty() {
                        0..0
                    } else {
                        span.clone()
                    };
                    self.diagnostics.push(
                        Diagnostic::new(
                            "missing-key",
                            at,
                            format!("missing `{}`", join(path, key)),
                        )
                        .label(format!("`{key}` is required {}", where_(path)))
                        .expected(description)
                        .help(format!("add `{example}`")),
                    );
                }
            }
        }
    }

    fn unknown_key(&mut self, key: &str, known: &[&str], path: &[String], span: Range<usize>) {
        let in_env = path.first().is_some_and(|p| p == "environments") && path.len() == 2;
        let help = if in_env && TOP_LEVEL_ONLY.contains(&key) {
            Some(format!(
                "`{key}` is the same in every environment: set it at the top of the file"
            ))
        } else if let Some(near) = nearest(key, known) {
            Some(format!("did you mean `{near}`?"))
        } else {
            let current = path
                .iter()
                .filter(|p| !p.starts_with('<'))
                .cloned()
                .collect::<Vec<_>>()
                .join(".");
            self.homes
                .iter()
                .find(|(k, home)| k == key && *home != current && !home.starts_with("environments"))
                .map(|(_, home)| {
                    if home.is_empty() {
                        format!("`{key}` belongs at the top of the file, before any table")
                    } else {
                        format!("`{key}` belongs in `[{home}]`: move it there")
                    }
                })
        };
        let mut d = Diagnostic::new(
            "unknown-key",
            span,
            format!("unknown key `{key}` {}", where_(path)),
        )
        .label("unknown key")
        .help_opt(help);
        if !known.is_empty() {
            d = d.expected(format!("one of {}", list(known)));
        }
        self.diagnostics.push(d);
    }

    fn walk_item(&mut self, item: &Item, schema: &Json, path: &[String], key_span: Range<usize>) {
        match item {
            Item::None => {}
            Item::Value(value) => self.walk_value(value, schema, path, key_span),
            Item::Table(table) => {
                let span = table.span().unwrap_or(key_span);
                self.expect_kind(schema, "object", "a table", span.clone(), path, || {
                    format!("a table `[{}]`", path.join("."))
                })
                .then(|| self.walk_table(table, schema, path, span));
            }
            Item::ArrayOfTables(array) => {
                let schema = resolve(self.root, schema);
                let span = array.span().unwrap_or(key_span);
                if self.expect_kind(
                    schema,
                    "array",
                    "an array of tables",
                    span,
                    path,
                    String::new,
                ) {
                    let items = schema.get("items").unwrap_or(&Json::Null);
                    for (i, table) in array.iter().enumerate() {
                        let mut p = path.to_vec();
                        p.push(format!("[{i}]"));
                        let span = table.span().unwrap_or(0..0);
                        self.walk_table(table, items, &p, span);
                    }
                }
            }
        }
    }

    fn walk_value(
        &mut self,
        value: &Value,
        schema: &Json,
        path: &[String],
        key_span: Range<usize>,
    ) {
        let schema = resolve(self.root, schema);
        let span = value.span().unwrap_or(key_span);
        match value {
            Value::InlineTable(table) => {
                if self.expect_kind(schema, "object", "a table", span.clone(), path, String::new) {
                    self.walk_table(table, schema, path, span);
                }
            }
            Value::Array(array) => {
                if self.expect_kind(schema, "array", "an array", span.clone(), path, String::new) {
                    if let Some(min) = schema.get("minItems").and_then(Json::as_u64)
                        && (array.len() as u64) < min
                    {
                        self.diagnostics.push(
                            Diagnostic::new(
                                "empty-array",
                                span.clone(),
                                format!("`{}` is empty", display_path(path)),
                            )
                            .label("needs at least one element")
                            .expected(describe(self.root, schema)),
                        );
                    }
                    let items = schema.get("items").unwrap_or(&Json::Null);
                    for (i, element) in array.iter().enumerate() {
                        let mut p = path.to_vec();
                        p.push(format!("[{i}]"));
                        self.walk_value(element, items, &p, span.clone());
                    }
                }
            }
            Value::String(s) => {
                if self.expect_kind(
                    schema,
                    "string",
                    "a string",
                    span.clone(),
                    path,
                    String::new,
                ) {
                    self.check_string(s.value(), schema, path, span);
                }
            }
            Value::Integer(i) => {
                let n = *i.value();
                if self.expect_kind(schema, "integer", "an integer", span.clone(), path, || {
                    suggest_quoted(schema, n)
                }) {
                    self.check_range(n as f64, schema, path, span);
                }
            }
            Value::Float(f) => {
                let n = *f.value();
                if self.expect_kind(schema, "number", "a float", span.clone(), path, String::new) {
                    self.check_range(n, schema, path, span);
                }
            }
            Value::Boolean(_) => {
                self.expect_kind(schema, "boolean", "a boolean", span, path, String::new);
            }
            Value::Datetime(_) => {
                self.expect_kind(schema, "datetime", "a date-time", span, path, String::new);
            }
        }
    }

    /// Checks that the schema accepts a value of TOML kind `found_kind`; reports and returns
    /// false when it does not. `help` may suggest the fix.
    fn expect_kind(
        &mut self,
        schema: &Json,
        found_kind: &str,
        found_words: &str,
        span: Range<usize>,
        path: &[String],
        help: impl FnOnce() -> String,
    ) -> bool {
        let schema = resolve(self.root, schema);
        let Some(want) = schema_type(schema) else {
            return true;
        };
        let accepted = match found_kind {
            "integer" => want == "integer" || want == "number",
            "number" => want == "number",
            other => want == other,
        };
        if accepted {
            return true;
        }
        let expected = describe(self.root, schema);
        let help = help();
        self.diagnostics.push(
            Diagnostic::new(
                "invalid-type",
                span,
                format!(
                    "`{}` must be {}, found {found_words}",
                    display_path(path),
                    type_words(want)
                ),
            )
            .label(format!("expected {}", type_words(want)))
            .expected(expected)
            .help_opt((!help.is_empty()).then_some(help)),
        );
        false
    }

    fn check_string(&mut self, text: &str, schema: &Json, path: &[String], span: Range<usize>) {
        if let Some(options) = enum_values(schema) {
            if !options.contains(&text) {
                let help = nearest(text, &options).map(|n| format!("did you mean `{n}`?"));
                self.diagnostics.push(
                    Diagnostic::new(
                        "invalid-value",
                        span,
                        format!("`{text}` is not a valid `{}`", display_path(path)),
                    )
                    .label("not one of the accepted values")
                    .expected(format!("one of {}", list(&options)))
                    .help_opt(help),
                );
            }
            return;
        }
        if let Some(min) = schema.get("minLength").and_then(Json::as_u64)
            && (text.chars().count() as u64) < min
        {
            self.diagnostics.push(
                Diagnostic::new(
                    "invalid-value",
                    span.clone(),
                    format!("`{}` is empty", display_path(path)),
                )
                .label("empty string"),
            );
            return;
        }
        if let Some(format) = schema.get("format").and_then(Json::as_str)
            && let Err(e) = check_format(format, text)
        {
            let code = if matches!(format, "duration" | "memory") {
                "invalid-unit"
            } else {
                "invalid-name"
            };
            let label = match format {
                "duration" => "not a duration",
                "memory" => "not a memory size",
                "cron" => "not a cron schedule",
                "timezone" => "not a time zone",
                "email" => "not an e-mail address",
                _ => "breaks the naming rule",
            };
            self.diagnostics.push(
                Diagnostic::new(
                    code,
                    span,
                    format!("`{}`: {}", display_path(path), e.message),
                )
                .label(label)
                .expected(e.expected),
            );
        }
    }

    fn check_range(&mut self, n: f64, schema: &Json, path: &[String], span: Range<usize>) {
        let min = schema.get("minimum").and_then(Json::as_f64);
        let max = schema.get("maximum").and_then(Json::as_f64);
        if min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m) {
            self.diagnostics.push(
                Diagnostic::new(
                    "out-of-range",
                    span,
                    format!(
                        "`{}` is {}, outside the accepted range",
                        display_path(path),
                        fmt_number(n)
                    ),
                )
                .label("out of range")
                .expected(describe(self.root, schema)),
            );
        }
    }
}

/// What a format accepts, and whether `text` passes.
pub(crate) struct FormatError {
    pub message: String,
    pub expected: String,
}

pub(crate) fn check_format(format: &str, text: &str) -> Result<(), FormatError> {
    let from_name = |e: names::NameError| FormatError {
        message: e.message,
        expected: e.rule.to_owned(),
    };
    match format {
        "duration" => text.parse::<Duration>().map(drop).map_err(|e| FormatError {
            message: e.message,
            expected: e.expected.to_owned(),
        }),
        "memory" => text.parse::<Memory>().map(drop).map_err(|e| FormatError {
            message: e.message,
            expected: e.expected.to_owned(),
        }),
        "dns-label" => names::check_service_name(text).map_err(from_name),
        "env-name" => names::check_env_name(text).map_err(from_name),
        "db-name" => names::check_db_name(text).map_err(from_name),
        "email" => names::check_email(text).map_err(from_name),
        "cron" => names::check_cron(text).map_err(from_name),
        "timezone" => names::check_timezone(text).map_err(from_name),
        _ => Ok(()),
    }
}

/// The accepted strings of an enum: `enum`, or a `oneOf` of `const`s (variants with docs).
fn enum_values(schema: &Json) -> Option<Vec<&str>> {
    if let Some(options) = schema.get("enum").and_then(Json::as_array) {
        return Some(options.iter().filter_map(Json::as_str).collect());
    }
    let options = schema.get("oneOf")?.as_array()?;
    options
        .iter()
        .map(|o| o.get("const").and_then(Json::as_str))
        .collect()
}

fn schema_type(schema: &Json) -> Option<&str> {
    if schema.get("type").is_none() {
        return schema
            .get("oneOf")?
            .as_array()?
            .first()?
            .get("type")?
            .as_str();
    }
    match schema.get("type")? {
        Json::String(s) => Some(s.as_str()),
        Json::Array(types) => types.iter().filter_map(Json::as_str).find(|t| *t != "null"),
        _ => None,
    }
}

fn type_words(t: &str) -> &'static str {
    match t {
        "object" => "a table",
        "array" => "an array",
        "string" => "a string",
        "integer" => "an integer",
        "number" => "a number",
        "boolean" => "`true` or `false`",
        _ => "a value of another type",
    }
}

/// What a schema accepts, in words, for the `expected:` line.
pub(crate) fn describe(root: &Json, schema: &Json) -> String {
    let schema = resolve(root, schema);
    if let Some(options) = enum_values(schema) {
        return format!("one of {}", list(&options));
    }
    let format = schema.get("format").and_then(Json::as_str).unwrap_or("");
    if let Err(e) = check_format(format, "\u{0}")
        && !format.is_empty()
    {
        return e.expected;
    }
    let range = |kind: &str| {
        let min = schema.get("minimum").and_then(Json::as_f64);
        let max = schema.get("maximum").and_then(Json::as_f64);
        match (min, max) {
            (Some(a), Some(b)) => format!("{kind} from {} to {}", fmt_number(a), fmt_number(b)),
            (Some(a), None) => format!("{kind} of at least {}", fmt_number(a)),
            (None, Some(b)) => format!("{kind} of at most {}", fmt_number(b)),
            (None, None) => kind.to_owned(),
        }
    };
    match schema_type(schema) {
        Some("integer") => range("an integer"),
        Some("number") => range("a number"),
        Some("array") => {
            let at_least_one = schema.get("minItems").and_then(Json::as_u64).unwrap_or(0) > 0;
            let items = schema
                .get("items")
                .map(|i| describe(root, i))
                .unwrap_or_default();
            let items = match items.as_str() {
                "a string" => "strings".to_owned(),
                "" => "values".to_owned(),
                other => format!("elements each {other}"),
            };
            format!(
                "{} array of {items}",
                if at_least_one { "a non-empty" } else { "an" }
            )
        }
        Some("object") => "a table".into(),
        Some("string") => "a string".into(),
        Some("boolean") => "`true` or `false`".into(),
        _ => schema
            .get("description")
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_owned(),
    }
}

fn suggest_quoted(schema: &Json, n: i64) -> String {
    match schema.get("format").and_then(Json::as_str) {
        Some("duration") => format!("write it with a unit, as a string: `\"{n}s\"` or `\"{n}ms\"`"),
        Some("memory") => format!("write it with a unit, as a string: `\"{n}Mi\"`"),
        _ if schema_type(schema) == Some("string") => format!("quote it: `\"{n}\"`"),
        _ => String::new(),
    }
}

fn fmt_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

fn display_path(path: &[String]) -> String {
    let mut out = String::new();
    for p in path {
        if !p.starts_with('[') && !out.is_empty() {
            out.push('.');
        }
        out.push_str(p);
    }
    out
}

fn join(path: &[String], key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{}.{key}", display_path(path))
    }
}

fn where_(path: &[String]) -> String {
    if path.is_empty() {
        "at the top level".to_owned()
    } else {
        format!("in `[{}]`", display_path(path))
    }
}

fn list(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The known word closest to `word`, when it is close enough to be a typo.
pub fn nearest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| {
            (
                *k,
                strsim::damerau_levenshtein(word, k),
                strsim::jaro_winkler(word, k),
            )
        })
        .filter(|(k, distance, similarity)| {
            *distance <= 2.max(k.len() / 4) && *distance < k.len() || *similarity >= 0.88
        })
        .min_by(|a, b| a.1.cmp(&b.1).then(b.2.total_cmp(&a.2)))
        .map(|(k, _, _)| k)
}

#[cfg(test)]
mod tests {
    use super::nearest;

    #[test]
    fn typos_find_their_key() {
        let keys = ["replicas"];
        assert_eq!(nearest("replcas", &keys), Some("replicas"));
        assert_eq!(nearest("replica", &keys), Some("replicas"));
        assert_eq!(nearest("zzz", &keys), None);
        assert_eq!(
            nearest("bluegren", &["immediate", "rolling", "canary", "bluegreen"]),
            Some("bluegreen")
        );
    }
}
