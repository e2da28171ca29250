//! `faas function run|list|show|logs|cancel`: one-off runs of an image for a tenant. `run`
//! follows the run to its end, its stdout to ours and its stderr to ours, and exits with its
//! exit code (124 when it timed out, 130 when it was cancelled, 137 when it ran out of memory).

use std::io::Write;

use clap::Subcommand;
use faas_spec::api::LogRecord;
use faas_spec::api::runs::{Run, RunFunction};
use faas_spec::money::format_nanos;

use crate::client::{Client, encode};
use crate::error::CliResult;
use crate::printer::Printer;
use crate::session;

#[derive(Debug, Subcommand)]
pub enum FunctionCommand {
    /// Run an image to completion: its output is shown, its exit code is faas's
    Run {
        /// The image (an id or reference on this Docker Engine; uploaded when the platform has another)
        image: String,
        /// A variable, KEY=VALUE (repeatable)
        #[arg(long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// The tenant billed [default: the token's own]
        #[arg(long, value_name = "EMAIL")]
        tenant: Option<String>,
        /// Where its report is mailed [default: the tenant]
        #[arg(long, value_name = "EMAIL")]
        email: Option<String>,
        /// Stop it after this long, e.g. 30s [default: 15m]
        #[arg(long, value_name = "DURATION")]
        timeout: Option<String>,
        /// vCPUs [default: 1]
        #[arg(long)]
        cpu: Option<f64>,
        /// Memory, e.g. 256Mi [default: 512Mi]
        #[arg(long)]
        memory: Option<String>,
        /// Print the run's id and return at once
        #[arg(long)]
        detach: bool,
        /// The command, in place of the image's, after `--`
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Function runs, newest first
    List {
        /// Only this tenant's (admin)
        #[arg(long, value_name = "EMAIL")]
        tenant: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// One run: how it ended, how long it took, what it cost
    Show {
        id: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// A run's output
    Logs {
        id: String,
        /// Follow it until the run ends
        #[arg(short, long)]
        follow: bool,
    },
    /// Stop a run; it is recorded as cancelled
    Cancel { id: String },
}

pub fn run(printer: &Printer, context: Option<&str>, cmd: FunctionCommand) -> CliResult {
    let client = session::connect(printer, context)?;
    match cmd {
        FunctionCommand::Run {
            image,
            env,
            tenant,
            email,
            timeout,
            cpu,
            memory,
            detach,
            command,
        } => {
            let env = super::key_values(&env, "env")?;
            let image = super::deploy::upload_if_needed(printer, &client, &image)?;
            let run: Run = client.post(
                "/v1/functions/run",
                &RunFunction {
                    image_name: image,
                    email,
                    tenant,
                    env,
                    command: (!command.is_empty()).then_some(command),
                    cpu,
                    memory,
                    timeout,
                },
            )?;
            if detach {
                printer.result(&run.id);
                return Ok(());
            }
            printer.status("Running", format!("{} ({})", run.id, run.image));
            follow_output(&client, &run.id, true)?;
            let run = wait_end(&client, &run.id)?;
            printer.status("Ended", summary(&run));
            let code = exit_code(&run);
            if code != 0 {
                let _ = std::io::stdout().flush();
                std::process::exit(code);
            }
            Ok(())
        }
        FunctionCommand::List {
            tenant,
            limit,
            json,
        } => {
            let mut path = format!("/v1/functions/runs?limit={limit}");
            if let Some(t) = tenant {
                path.push_str(&format!("&tenant={}", encode(&t)));
            }
            let runs: Vec<Run> = client.get(&path)?;
            if json {
                printer.json(&runs);
            } else if runs.is_empty() {
                printer.info("no function runs yet: `faas function run IMAGE` starts one");
            } else {
                for r in &runs {
                    printer.result(format!(
                        "{:<16} {:<10} {:<24} {:<28} {}",
                        r.id,
                        r.state,
                        r.created_at,
                        truncate(&r.image, 28),
                        cost(r)
                    ));
                }
            }
            Ok(())
        }
        FunctionCommand::Show { id, json } => {
            let run: Run = client.get(&format!("/v1/functions/runs/{}", encode(&id)))?;
            if json {
                printer.json(&run);
            } else {
                printer.result(format!("{} ({})", run.id, run.tenant));
                printer.result(format!("  image     {}", run.image));
                printer.result(format!("  command   {}", run.command.join(" ")));
                printer.result(format!("  state     {}", summary(&run)));
                if let Some(n) = &run.notified {
                    printer.result(format!(
                        "  report    {} to {}",
                        n,
                        run.email.clone().unwrap_or_default()
                    ));
                }
            }
            Ok(())
        }
        FunctionCommand::Logs { id, follow } => follow_output(&client, &id, follow),
        FunctionCommand::Cancel { id } => {
            let run: Run = client.post(
                &format!("/v1/functions/runs/{}/cancel", encode(&id)),
                &serde_json::json!({}),
            )?;
            printer.status("Cancelling", &run.id);
            Ok(())
        }
    }
}

/// Prints a run's output: stdout lines to stdout, stderr lines to stderr.
fn follow_output(client: &Client, id: &str, follow: bool) -> CliResult {
    let path = format!("/v1/functions/runs/{}/logs?follow={follow}", encode(id));
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    client.stream(&path, |r: LogRecord| {
        // The platform's own notes (`event`) are not the run's output.
        let _ = match r.stream.as_str() {
            "stderr" => writeln!(err, "{}", r.line),
            "stdout" => writeln!(out, "{}", r.line),
            _ => Ok(()),
        };
        true
    })?;
    let _ = out.flush();
    Ok(())
}

/// The run once it has ended and been priced.
fn wait_end(client: &Client, id: &str) -> CliResult<Run> {
    loop {
        let run: Run = client.get(&format!("/v1/functions/runs/{}?wait=30", encode(id)))?;
        if run.is_over() && run.cost_nanos.is_some() {
            return Ok(run);
        }
    }
}

fn cost(run: &Run) -> String {
    match (&run.cost_nanos, run.currency.as_deref()) {
        (Some(c), Some(cur)) if !cur.is_empty() => format!("{} {cur}", format_nanos(*c)),
        (Some(_), _) => "not priced (no tariff)".into(),
        _ => "-".into(),
    }
}

fn summary(run: &Run) -> String {
    let how = run.reason.clone().unwrap_or_else(|| run.state.clone());
    let took = run.duration_ms.map_or(String::new(), |ms| {
        format!(" after {:.1} s", ms as f64 / 1000.0)
    });
    format!("{} {how}{took}, cost {}", run.id, cost(run))
}

/// faas's exit code for how a run ended.
fn exit_code(run: &Run) -> i32 {
    match run.state.as_str() {
        "exited" => 0,
        "failed" => run
            .exit_code
            .and_then(|c| i32::try_from(c).ok())
            .unwrap_or(1),
        "timed_out" => 124,
        "cancelled" => 130,
        "oom_killed" => 137,
        _ => 1,
    }
}

fn truncate(text: &str, n: usize) -> String {
    if text.chars().count() <= n {
        text.to_owned()
    } else {
        text.chars().take(n - 1).collect::<String>() + "…"
    }
}
