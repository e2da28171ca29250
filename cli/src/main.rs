//! `faas`: the developer's command line. Parses arguments, decides colors once, runs one
//! command, and turns its outcome into an exit code: 0 success, 1 failure, 2 usage or invalid
//! input (clap's own usage errors exit 2 too), 130 interrupted.

mod cli;
mod commands;
mod env_vars;
mod error;
mod manifest_edit;
mod printer;
mod project;
mod templates;

use std::process::ExitCode;

use clap::Parser;
use faas_spec::Engine;

use crate::cli::{Cli, Command, DatabaseCommand, ServiceCommand, TemplatesCommand};
use crate::commands::database::Action;
use crate::error::{CliError, CliResult};
use crate::printer::Printer;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let printer = Printer::new(cli.global.no_color, cli.global.quiet);
    match run(cli, &printer) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&printer, &e);
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(cli: Cli, printer: &Printer) -> CliResult {
    let manifest = cli.global.manifest.as_deref();
    match cli.command {
        Command::Service(ServiceCommand::Create(args)) => commands::create::run(printer, args),
        Command::Service(ServiceCommand::Validate(args)) => {
            commands::validate::run(printer, manifest, args.env.as_deref(), args.json)
        }
        Command::Service(ServiceCommand::Info(args)) => {
            commands::info::run(printer, manifest, args.env.as_deref(), args.json)
        }
        Command::Templates(TemplatesCommand::List { json }) => {
            commands::templates::list(printer, json)
        }
        Command::Postgresql(cmd) => database(printer, manifest, Engine::Postgresql, &cmd),
        Command::Redis(cmd) => database(printer, manifest, Engine::Redis, &cmd),
        Command::Rabbitmq(cmd) => database(printer, manifest, Engine::Rabbitmq, &cmd),
        Command::Mongodb(cmd) => database(printer, manifest, Engine::Mongodb, &cmd),
        Command::Completions(args) => commands::completions::run(args.shell),
    }
}

fn database(
    printer: &Printer,
    manifest: Option<&std::path::Path>,
    engine: Engine,
    cmd: &DatabaseCommand,
) -> CliResult {
    let action = match cmd {
        DatabaseCommand::Add { name, version } => Action::Add {
            name: name.as_deref(),
            version: version.as_deref(),
        },
        DatabaseCommand::Remove { name } => Action::Remove {
            name: name.as_deref(),
        },
    };
    commands::database::run(printer, manifest, engine, action)
}

fn report(printer: &Printer, e: &CliError) {
    match e {
        CliError::Manifest(report) => printer.raw_stderr(&report.render(printer.color)),
        CliError::ManifestReported => {}
        CliError::Usage { message, hint } | CliError::Failed { message, hint } => {
            printer.error(message, hint.as_deref())
        }
        CliError::Other(e) => printer.error(&format!("{e:#}"), None),
    }
}
