//! `faas service canary status|promote|abort`: the canary under way in an environment.

use std::path::Path;

use faas_spec::api::{CanaryControl, CanaryReport, CanaryStatus, SetFigures};

use crate::cli::{CanaryArgs, CanaryCommand};
use crate::error::CliResult;
use crate::printer::Printer;
use crate::session;

pub fn run(
    printer: &Printer,
    manifest: Option<&Path>,
    context: Option<&str>,
    cmd: CanaryCommand,
) -> CliResult {
    let (what, args): (Option<&str>, CanaryArgs) = match cmd {
        CanaryCommand::Status(a) => (None, a),
        CanaryCommand::Promote(a) => (Some("promote"), a),
        CanaryCommand::Abort(a) => (Some("abort"), a),
    };
    faas_spec::names::check_env_name(&args.env).map_err(|e| {
        crate::error::CliError::usage(e.message, format!("an environment name is {}", e.rule))
    })?;
    let name = super::service::service_name(manifest, args.service.as_deref())?;
    let client = session::connect(printer, context)?;
    let status: CanaryStatus = match what {
        None => client.get(&format!("/v1/services/{name}/canary?env={}", args.env))?,
        Some(what) => client.post(
            &format!("/v1/services/{name}/canary/{what}"),
            &CanaryControl {
                env: args.env.clone(),
            },
        )?,
    };
    if args.json {
        printer.json(&status);
        return Ok(());
    }
    let r = &status.report;
    match what {
        Some("promote") => printer.status(
            "Promoting",
            format!(
                "{name} v{} in {} past step {}/{} ({}%)",
                r.canary.version,
                status.env,
                r.step,
                r.steps.len(),
                r.canary.weight
            ),
        ),
        Some(_) => printer.status(
            "Aborting",
            format!(
                "the canary of {name} v{} in {}: v{} takes every request again",
                r.canary.version, status.env, r.baseline.version
            ),
        ),
        None => {}
    }
    let mode = match (status.auto, status.holding) {
        (_, true) => "holding: promote or abort it",
        (true, false) => "judged by the platform after each interval",
        (false, false) => "observing; it holds when the interval ends",
    };
    printer.result(format!(
        "{name} ({}) deployment {}: step {}/{} {:?}, {mode}",
        status.env,
        status.deployment,
        r.step,
        r.steps.len(),
        r.steps
    ));
    for line in figures_table(r) {
        printer.result(line);
    }
    Ok(())
}

fn row(label: &str, f: &SetFigures) -> String {
    format!(
        "{label:<8} v{:<5} {:>4}%  {:>8} req  {:>6.2}% 5xx  p99 {}",
        f.version,
        f.weight,
        f.requests,
        f.error_rate * 100.0,
        f.p99_ms
            .map_or_else(|| "-".to_owned(), |ms| format!("{ms} ms"))
    )
}

/// Both sets' weights and figures, a line each, and how long they were measured.
pub fn figures_table(r: &CanaryReport) -> Vec<String> {
    vec![
        row("canary", &r.canary),
        row("baseline", &r.baseline),
        format!(
            "over the last {:.1}s of step {}/{}",
            r.window_s,
            r.step,
            r.steps.len()
        ),
    ]
}
