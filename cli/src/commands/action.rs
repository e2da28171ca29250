//! `faas action list`: the actions a tenant's tasks can launch, built-in and those that register
//! themselves by heartbeat, with their state and last beat.

use clap::Subcommand;
use faas_spec::api::tasks::Action;

use crate::error::CliResult;
use crate::printer::Printer;
use crate::session;

#[derive(Debug, Subcommand)]
pub enum ActionCommand {
    /// Your actions (an admin's: everyone's), each with its state and last beat
    List {
        /// Print JSON (with each action's input and output schemas)
        #[arg(long)]
        json: bool,
    },
}

pub fn run(printer: &Printer, context: Option<&str>, cmd: ActionCommand) -> CliResult {
    let client = session::connect(printer, context)?;
    match cmd {
        ActionCommand::List { json } => {
            let actions: Vec<Action> = client.get("/v1/actions")?;
            if json {
                printer.json(&actions);
                return Ok(());
            }
            printer.result(format!(
                "{:<28} {:<10} {:<10} {:<12} {:>7}  {:<24} {}",
                "NAME", "VERSION", "TRANSPORT", "STATE", "WORKERS", "LAST BEAT", "ADDRESS"
            ));
            for a in &actions {
                printer.result(format!(
                    "{:<28} {:<10} {:<10} {:<12} {:>7}  {:<24} {}",
                    a.name,
                    a.version,
                    a.transport.as_str(),
                    a.state,
                    a.workers,
                    if a.tenant == "*" {
                        "built in"
                    } else {
                        a.last_beat.as_str()
                    },
                    a.address
                ));
            }
            if actions.iter().all(|a| a.tenant == "*") {
                printer.info(
                    "no action of yours has beaten yet: start a worker (`faas service create NAME --template python-action`)",
                );
            }
            Ok(())
        }
    }
}
