//! `faas service problems`: what went wrong with a service and when (OOM kills, crash loops,
//! 5xx bursts, slow releases, memory near its limit, failed deployments and runs), each with
//! its start, its end once it cleared, its count and the last log lines before it; then the
//! exceptions its code raised, grouped by type and place.

use clap::Args;
use faas_spec::api::observe::{ErrorGroup, ProblemList, ServiceProblem};

use crate::client::encode;
use crate::error::CliResult;
use crate::printer::Printer;
use crate::session;

#[derive(Debug, Args)]
pub struct ProblemsArgs {
    /// Only this environment [default: every one]
    #[arg(short, long, value_name = "ENV")]
    pub env: Option<String>,
    /// Also the problems that ended within this span, e.g. `1h`, `7d`
    #[arg(long, value_name = "DURATION", default_value = "7d")]
    pub since: String,
    /// The service [default: app.toml's name]
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

fn problem_lines(p: &ServiceProblem) -> Vec<String> {
    let state = match &p.ended_at {
        Some(end) => format!("cleared {end}"),
        None => "OPEN".to_owned(),
    };
    let mut out = vec![format!(
        "#{:<5} {:<18} {:<8} {state}  ×{}  since {}",
        p.id, p.kind, p.env, p.count, p.started_at
    )];
    out.push(format!("       {}", p.summary));
    for line in p.logs.iter().rev().take(5).rev() {
        out.push(format!("       | {line}"));
    }
    out
}

fn error_line(e: &ErrorGroup) -> String {
    format!(
        "{:<6} ×{:<5} {} at {}  (first {}, last {})\n       {}",
        e.env, e.count, e.error_type, e.location, e.first_seen, e.last_seen, e.message
    )
}

pub fn run(
    printer: &Printer,
    context: Option<&str>,
    service: &str,
    args: ProblemsArgs,
) -> CliResult {
    let client = session::connect(printer, context)?;
    let mut path = format!(
        "/v1/services/{service}/problems?since={}",
        encode(&args.since)
    );
    if let Some(env) = &args.env {
        path.push_str(&format!("&env={}", encode(env)));
    }
    let list: ProblemList = client.get(&path)?;
    if args.json {
        printer.json(&list);
        return Ok(());
    }
    if list.problems.is_empty() {
        printer.result(format!(
            "{service} has had no problems in the last {}",
            args.since
        ));
    }
    for p in &list.problems {
        for line in problem_lines(p) {
            printer.result(line);
        }
    }
    if !list.errors.is_empty() {
        printer.result("");
        printer.result("Exceptions, grouped:");
        for e in &list.errors {
            printer.result(error_line(e));
        }
    }
    Ok(())
}
