//! `faas service cron list|history|run`: the `[[cron]]` entries of an environment's current
//! release, their ticks, and a run now.

use clap::Subcommand;
use faas_spec::api::runs::{CronEntry, Run};

use crate::client::encode;
use crate::error::CliResult;
use crate::printer::Printer;
use crate::session;

#[derive(Debug, Subcommand)]
pub enum CronCommand {
    /// The entries, each with its next time and its last tick
    List {
        #[arg(short, long, value_name = "ENV", default_value = "prod")]
        env: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// An entry's ticks, newest first: runs, and the ticks skipped or missed
    History {
        name: String,
        #[arg(short, long, value_name = "ENV", default_value = "prod")]
        env: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Run an entry now (its concurrency holds)
    Run {
        name: String,
        #[arg(short, long, value_name = "ENV", default_value = "prod")]
        env: String,
    },
}

/// One line of a tick.
pub fn tick_line(r: &Run) -> String {
    let when = r.tick.clone().unwrap_or_else(|| r.created_at.clone());
    let how = r.reason.clone().unwrap_or_else(|| r.state.clone());
    format!("{when}  {:<10} {:<16} {how}", r.state, r.id)
}

pub fn run(printer: &Printer, context: Option<&str>, service: &str, cmd: CronCommand) -> CliResult {
    let client = session::connect(printer, context)?;
    match cmd {
        CronCommand::List { env, json } => {
            let list: Vec<CronEntry> =
                client.get(&format!("/v1/services/{service}/cron?env={}", encode(&env)))?;
            if json {
                printer.json(&list);
            } else if list.is_empty() {
                printer.info(format!("{service} has no cron entries in {env}"));
            } else {
                for e in &list {
                    printer.result(format!(
                        "{:<16} {:<18} {:<14} {:<7} next {}",
                        e.name,
                        e.schedule,
                        e.timezone,
                        e.concurrency,
                        e.next.clone().unwrap_or_else(|| "-".into())
                    ));
                    if let Some(last) = &e.last {
                        printer.result(format!("  last {}", tick_line(last)));
                    }
                }
            }
            Ok(())
        }
        CronCommand::History {
            name,
            env,
            limit,
            json,
        } => {
            let list: Vec<Run> = client.get(&format!(
                "/v1/services/{service}/cron/{}/history?env={}&limit={limit}",
                encode(&name),
                encode(&env)
            ))?;
            if json {
                printer.json(&list);
            } else if list.is_empty() {
                printer.info(format!("`{name}` has not ticked yet in {env}"));
            } else {
                for r in &list {
                    printer.result(tick_line(r));
                }
            }
            Ok(())
        }
        CronCommand::Run { name, env } => {
            let run: Run = client.post(
                &format!(
                    "/v1/services/{service}/cron/{}/run?env={}",
                    encode(&name),
                    encode(&env)
                ),
                &serde_json::json!({}),
            )?;
            printer.status("Started", format!("{} of `{name}` ({env})", run.id));
            printer.info(format!(
                "its output: `faas service logs -e {env} --instance {}`",
                run.id
            ));
            printer.result(&run.id);
            Ok(())
        }
    }
}
