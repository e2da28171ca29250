//! A definition against the tenant's actions, before anything is launched: each action
//! exists (it has beaten at least once, or it is built in), each reference to a step's output
//! names a field that output has, and each step's input, as far as the task's input decides
//! it, fits the action's input schema.

use faas_spec::Diagnostic;
use faas_spec::api::tasks::DefinitionError;
use faas_spec::task::{Reference, Source, StepDefinition, StepKind, TaskDefinition, resolve};
use serde_json::Value;

use super::schema_errors;
use crate::Platform;
use crate::error::ApiError;

/// What a step's `action` column says: the action, or `http` / `approval`.
pub fn action_label(step: &StepDefinition) -> String {
    match &step.kind {
        StepKind::Action { name, .. } => name.clone(),
        StepKind::Http(_) => "http".into(),
        StepKind::Approval { .. } => "approval".into(),
    }
}

/// The schemas of the actions a tenant may launch, by name: built-in, or from a beat.
fn schemas(p: &Platform, tenant: &str, name: &str) -> Option<(Value, Value)> {
    if let Some(s) = p.tasks.inprocess.schemas(name) {
        return Some(s);
    }
    let workers = p.store.workers_of(tenant, name).ok()?;
    let last = workers.iter().max_by_key(|w| w.last_beat_us)?;
    Some((last.input_schema.clone(), last.output_schema.clone()))
}

pub fn against_actions(
    p: &Platform,
    tenant: &str,
    def: &TaskDefinition,
    input: &Value,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut outputs: Vec<(&str, Option<Value>)> = Vec::new();
    for step in &def.steps {
        let action_schemas = match &step.kind {
            StepKind::Action { name, span } => match schemas(p, tenant, name) {
                Some(s) => Some(s),
                None => {
                    // The tenant's actions are read only when one is unknown.
                    let known: Vec<String> = p
                        .store
                        .workers(Some(tenant))
                        .unwrap_or_default()
                        .into_iter()
                        .map(|w| w.action)
                        .collect();
                    let known: Vec<&str> = known.iter().map(String::as_str).collect();
                    let suggestion =
                        faas_spec::nearest(name, &known).map(|k| format!("did you mean `{k}`?"));
                    out.push(
                        Diagnostic::new("unknown-action", span.clone(), format!("there is no action `{name}`"))
                            .label("no worker of yours has beaten for it")
                            .help_opt(suggestion.or_else(|| Some("start a worker of the action (it registers itself with its heartbeat); `faas action list` shows yours".into()))),
                    );
                    None
                }
            },
            _ => None,
        };
        for r in &step.references {
            if let Source::Step(name) = &r.source
                && let Some((_, Some(schema))) = outputs.iter().find(|(n, _)| n == name)
                && let Some(d) = missing_output(name, schema, r)
            {
                out.push(d);
            }
        }
        input_fits(
            p,
            step,
            action_schemas.as_ref().map(|s| &s.0),
            input,
            &mut out,
        );
        let output_schema = match &step.kind {
            StepKind::Http(_) => Some(
                serde_json::json!({"properties": {"status": {}, "body": {}, "headers": {}}, "additionalProperties": false}),
            ),
            StepKind::Approval { .. } => None,
            StepKind::Action { .. } => action_schemas.map(|s| s.1),
        };
        outputs.push((step.name.as_str(), output_schema));
    }
    out
}

/// A reference to a field the step's output schema says it does not have.
fn missing_output(step: &str, schema: &Value, r: &Reference) -> Option<Diagnostic> {
    let mut at = schema;
    for (depth, field) in r.path.iter().enumerate() {
        let props = at.get("properties").and_then(Value::as_object)?;
        match props.get(field) {
            Some(next) => at = next,
            None => {
                let closed = at.get("additionalProperties") == Some(&Value::Bool(false))
                    || at.get("additionalProperties").is_none();
                if !closed {
                    return None;
                }
                let whose = if depth == 0 {
                    format!("step `{step}`'s output")
                } else {
                    format!("`{}` of step `{step}`'s output", r.path[..depth].join("."))
                };
                let has: Vec<String> = props.keys().map(|k| format!("`{k}`")).collect();
                return Some(
                    Diagnostic::new(
                        "unknown-output",
                        r.span.clone(),
                        format!("{whose} has no `{field}`"),
                    )
                    .label("no such output")
                    .help_opt((!has.is_empty()).then(|| format!("it has {}", has.join(", ")))),
                );
            }
        }
    }
    None
}

/// The step's input as the task's input decides it, against the action's input schema (the
/// places that earlier steps fill are left to the launch).
fn input_fits(
    p: &Platform,
    step: &StepDefinition,
    schema: Option<&Value>,
    input: &Value,
    out: &mut Vec<Diagnostic>,
) {
    let placeholder = |_: &str| Some(Value::Null);
    // Each reference to the task's input must be there.
    let mut missing = false;
    for r in step
        .references
        .iter()
        .chain(step.idempotency_reference.iter())
    {
        if r.source != Source::Input {
            continue;
        }
        let text = format!(
            "$input{}",
            r.path.iter().map(|f| format!(".{f}")).collect::<String>()
        );
        if let Err(e) = resolve(&Value::String(text), input, &placeholder) {
            missing = true;
            out.push(
                Diagnostic::new(
                    "missing-input",
                    r.span.clone(),
                    format!("step `{}`: {e}", step.name),
                )
                .label("not in the task's input")
                .help("give it in --input, or map from another field"),
            );
        }
    }
    let Some(schema) = schema else { return };
    if missing {
        return;
    }
    let Ok(value) = resolve(&step.input, input, &placeholder) else {
        return;
    };
    let Ok(validator) = p.tasks.validator(schema) else {
        return;
    };
    let filled: Vec<String> = step
        .references
        .iter()
        .filter(|r| r.source != Source::Input)
        .map(|r| r.at.iter().map(|k| format!("/{k}")).collect())
        .collect();
    let skip = |at: &str| {
        filled
            .iter()
            .any(|f| at == f || at.starts_with(&format!("{f}/")) || f.is_empty())
    };
    let errors = schema_errors(&validator, &value, &skip);
    if !errors.is_empty() {
        let action = action_label(step);
        out.push(
            Diagnostic::new(
                "input-schema",
                step.input_span.clone(),
                format!(
                    "step `{}`: its input does not fit action `{action}`'s input schema",
                    step.name
                ),
            )
            .label(errors.join("; "))
            .help(format!(
                "`faas action list --json` shows `{action}`'s input_schema"
            )),
        );
    }
}

/// A report of a definition's problems as a 422 with each problem's place.
pub fn api_error(report: &faas_spec::Report) -> ApiError {
    let located = report.located();
    let first = located.first().map(|d| {
        format!(
            "{}:{}:{}: {}",
            d.file, d.line, d.column, d.diagnostic.message
        )
    });
    let mut e = ApiError::unprocessable(
        "invalid-definition",
        format!(
            "{} has {} problem{}{}",
            report.file_name,
            located.len(),
            if located.len() == 1 { "" } else { "s" },
            first
                .map(|f| format!(", the first at {f}"))
                .unwrap_or_default()
        ),
    )
    .hint("`errors` lists each with its place; fix them and run again: nothing was launched");
    e.errors = Some(Box::new(crate::error::DefinitionErrors(
        located
            .iter()
            .map(|d| DefinitionError {
                code: d.diagnostic.code.to_owned(),
                message: d.diagnostic.message.clone(),
                line: d.line,
                column: d.column,
                start: d.diagnostic.span.start,
                end: d.diagnostic.span.end,
                label: d.diagnostic.label.clone(),
                expected: d.diagnostic.expected.clone(),
                help: d.diagnostic.help.clone(),
            })
            .collect(),
    )));
    e
}
