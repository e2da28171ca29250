//! `faas task run|list|show|cancel|approve`: durable runs of task definitions. `run` checks the
//! definition here first (its TOML, its steps and mappings), then the platform checks it against
//! the actions' schemas; problems come with their file:line:col either way. Without `--detach`
//! it follows the run step by step, prints the task's output and exits 1 if it failed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use faas_spec::api::tasks::{Approve, RunTask, StepRun, TaskRun};
use faas_spec::task::{TaskDefinition, code};
use faas_spec::{Diagnostic, Report};

use crate::client::{Client, encode};
use crate::error::{CliError, CliResult};
use crate::printer::Printer;
use crate::session;

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Run a task definition (a TOML file of steps) with its input
    Run {
        /// The definition's file
        definition: PathBuf,
        /// The task's input, a JSON object (`$input` in the steps' mappings) [default: {}]
        #[arg(long, value_name = "JSON")]
        input: Option<String>,
        /// Print the run's id and return at once
        #[arg(long)]
        detach: bool,
        /// Print the ended run as JSON
        #[arg(long)]
        json: bool,
    },
    /// Task runs, newest first
    List {
        /// Only those in this state: pending, running, succeeded, failed, cancelled
        #[arg(long)]
        state: Option<String>,
        /// With the launcher tasks that started the others
        #[arg(long)]
        all: bool,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// One run and each of its steps
    Show {
        run: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Cancel a run: it and its step under way end as cancelled
    Cancel { run: String },
    /// Approve a step waiting for a person; its input is the step's output
    Approve {
        run: String,
        step: String,
        /// What the approver adds, a JSON value (later steps map from it) [default: {}]
        #[arg(long, value_name = "JSON")]
        input: Option<String>,
        /// Refuse instead: the step and the task fail
        #[arg(long, conflicts_with = "input")]
        reject: bool,
    },
}

fn json_arg(text: Option<&str>, flag: &str) -> CliResult<Option<serde_json::Value>> {
    text.map(|t| {
        serde_json::from_str(t).map_err(|e| {
            CliError::usage(
                format!("`--{flag}` is not JSON: {e}"),
                format!("quote it for the shell, e.g. --{flag} '{{\"order\": 42}}'"),
            )
        })
    })
    .transpose()
}

pub fn run(printer: &Printer, context: Option<&str>, cmd: TaskCommand) -> CliResult {
    match cmd {
        TaskCommand::Run {
            definition,
            input,
            detach,
            json,
        } => run_definition(
            printer,
            context,
            &definition,
            input.as_deref(),
            detach,
            json,
        ),
        TaskCommand::List {
            state,
            all,
            limit,
            json,
        } => {
            let client = session::connect(printer, context)?;
            let mut path = format!("/v1/tasks?limit={limit}&launchers={all}");
            if let Some(s) = state {
                path.push_str(&format!("&state={}", encode(&s)));
            }
            let runs: Vec<TaskRun> = client.get(&path)?;
            if json {
                printer.json(&runs);
            } else if runs.is_empty() {
                printer.info("no task runs yet: `faas task run DEFINITION.toml` starts one");
            } else {
                for r in &runs {
                    let done = r.steps.iter().filter(|s| s.state == "succeeded").count();
                    printer.result(format!(
                        "{:<18} {:<20} {:<10} {:>3}/{:<3} {}",
                        r.id,
                        r.task,
                        r.state,
                        done,
                        r.steps.len(),
                        r.created_at
                    ));
                }
            }
            Ok(())
        }
        TaskCommand::Show { run, json } => {
            let client = session::connect(printer, context)?;
            let r: TaskRun = client.get(&format!("/v1/tasks/{}", encode(&run)))?;
            if json {
                printer.json(&r);
            } else {
                show(printer, &r);
            }
            Ok(())
        }
        TaskCommand::Cancel { run } => {
            let client = session::connect(printer, context)?;
            let r: TaskRun = client.post(
                &format!("/v1/tasks/{}/cancel", encode(&run)),
                &serde_json::json!({}),
            )?;
            printer.status("Cancelled", format!("{} ({})", r.id, r.state));
            Ok(())
        }
        TaskCommand::Approve {
            run,
            step,
            input,
            reject,
        } => {
            let client = session::connect(printer, context)?;
            let body = Approve {
                input: json_arg(input.as_deref(), "input")?,
                reject,
            };
            let r: TaskRun = client.post(
                &format!("/v1/tasks/{}/steps/{}/approve", encode(&run), encode(&step)),
                &body,
            )?;
            printer.status(
                if reject { "Refused" } else { "Approved" },
                format!("step `{step}` of {}", r.id),
            );
            Ok(())
        }
    }
}

fn run_definition(
    printer: &Printer,
    context: Option<&str>,
    path: &std::path::Path,
    input: Option<&str>,
    detach: bool,
    json: bool,
) -> CliResult {
    let file = path.display().to_string();
    let source = std::fs::read_to_string(path).map_err(|e| {
        CliError::usage(
            format!("cannot read {file}: {e}"),
            "give the path of a task definition (TOML)",
        )
    })?;
    // What the file alone can say, before the network.
    TaskDefinition::parse(&file, &source).map_err(|r| CliError::Manifest(Box::new(r)))?;
    let input = json_arg(input, "input")?.unwrap_or_else(|| serde_json::json!({}));
    let client = session::connect(printer, context)?;
    let body = RunTask {
        definition: source.clone(),
        file: Some(file.clone()),
        input,
    };
    let run: TaskRun = client
        .post("/v1/tasks", &body)
        .map_err(|e| located(e, &file, &source))?;
    if detach {
        printer.result(&run.id);
        return Ok(());
    }
    printer.status(
        "Running",
        format!("{} ({}, {} steps)", run.id, run.task, run.steps.len()),
    );
    let run = follow(printer, &client, &run.id)?;
    if json {
        printer.json(&run);
    } else if let Some(output) = &run.output {
        printer.result(serde_json::to_string_pretty(output).unwrap_or_default());
    }
    match run.state.as_str() {
        "succeeded" => Ok(()),
        "cancelled" => Err(CliError::Interrupted),
        _ => Err(CliError::failed(
            format!(
                "task run {} failed: {}",
                run.id,
                run.error.unwrap_or_default()
            ),
            Some(format!("`faas task show {}` has each step", run.id)),
        )),
    }
}

/// The platform's problems with a definition, rendered over the file like app.toml's.
fn located(e: CliError, file: &str, source: &str) -> CliError {
    match e {
        CliError::Platform { errors, .. } if !errors.is_empty() => {
            let diagnostics = errors
                .into_iter()
                .map(|d| {
                    let mut out =
                        Diagnostic::new(code(&d.code), d.start..d.end, d.message).label(d.label);
                    if let Some(x) = d.expected {
                        out = out.expected(x);
                    }
                    out.help_opt(d.help)
                })
                .collect();
            CliError::Manifest(Box::new(Report {
                file_name: file.to_owned(),
                source: source.to_owned(),
                diagnostics,
            }))
        }
        other => other,
    }
}

/// Follows a run to its end, a line per step as it moves.
fn follow(printer: &Printer, client: &Client, id: &str) -> CliResult<TaskRun> {
    let mut seen: HashMap<String, (String, u32)> = HashMap::new();
    loop {
        let run: TaskRun = client.get(&format!("/v1/tasks/{}", encode(id)))?;
        for (i, s) in run.steps.iter().enumerate() {
            let now = (s.state.clone(), s.attempt);
            if seen.get(&s.name) != Some(&now) {
                if s.state != "waiting" {
                    step_line(printer, &run, i, s);
                }
                seen.insert(s.name.clone(), now);
            }
        }
        if run.is_over() {
            return Ok(run);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn step_line(printer: &Printer, run: &TaskRun, i: usize, s: &StepRun) {
    let n = run.steps.len();
    let at = format!("{}/{n} {} ({})", i + 1, s.name, s.action);
    let attempt = if s.attempt > 1 {
        format!(", attempt {}/{}", s.attempt, s.attempts)
    } else {
        String::new()
    };
    match s.state.as_str() {
        "approval" => printer.status(
            "Waiting",
            format!(
                "{at} for approval: faas task approve {} {} [--input JSON]",
                run.id, s.name
            ),
        ),
        "ready" if s.error.is_some() => printer.status(
            "Retrying",
            format!("{at}: {}", s.error.clone().unwrap_or_default()),
        ),
        "ready" => printer.status("Waiting", format!("{at} for its action to be available")),
        "launched" | "running" => printer.status(
            "Started",
            format!(
                "{at}{attempt}{}",
                s.worker
                    .as_ref()
                    .map(|w| format!(" on {w}"))
                    .unwrap_or_default()
            ),
        ),
        "succeeded" => printer.status("Done", format!("{at}{attempt}")),
        "failed" => printer.status(
            "Failed",
            format!("{at}: {}", s.error.clone().unwrap_or_default()),
        ),
        other => printer.status("Step", format!("{at} {other}")),
    }
}

fn show(printer: &Printer, r: &TaskRun) {
    printer.result(format!("{} {} ({})", r.id, r.task, r.tenant));
    printer.result(format!("  state    {}", r.state));
    if let Some(e) = &r.error {
        printer.result(format!("  error    {e}"));
    }
    printer.result(format!("  started  {}", r.created_at));
    if let Some(f) = &r.finished_at {
        printer.result(format!("  ended    {f}"));
    }
    if let Some(p) = &r.parent {
        printer.result(format!("  launcher {p}"));
    }
    printer.result("  steps");
    for (i, s) in r.steps.iter().enumerate() {
        let worker = s
            .worker
            .as_ref()
            .map(|w| format!(" on {w}"))
            .unwrap_or_default();
        printer.result(format!(
            "    {:>2}. {:<16} {:<22} {:<10} attempt {}/{}{worker}",
            i + 1,
            s.name,
            s.action,
            s.state,
            s.attempt,
            s.attempts
        ));
        if let Some(e) = &s.error {
            printer.result(format!("        {e}"));
        }
    }
    if let Some(o) = &r.output {
        printer.result(format!("  output   {o}"));
    }
}
