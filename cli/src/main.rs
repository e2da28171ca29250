//! `faas`: the developer's command line. Parses arguments, decides colors once, runs one
//! command, and turns its outcome into an exit code: 0 success, 1 failure, 2 usage or invalid
//! input (clap's own usage errors exit 2 too), 130 interrupted.

mod cli;
mod client;
mod codegen;
mod commands;
mod config;
mod credentials;
mod dependency_edit;
mod docker;
mod env_vars;
mod error;
mod exec;
mod local;
mod manifest_edit;
mod owner;
mod printer;
mod project;
mod reach;
mod session;
mod templates;

use std::process::ExitCode;

use clap::Parser;
use faas_spec::Engine;

use crate::cli::{
    Cli, Command, ContextCommand, DatabaseCommand, PlatformCommand, ServiceCommand, StrategyArg,
    TemplatesCommand,
};
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
    let context = cli.global.context.as_deref();
    match cli.command {
        Command::Service(ServiceCommand::Build(args)) => {
            let path = project::manifest_path(manifest)?;
            let built = commands::deploy::build(
                printer,
                &path,
                args.env.as_deref(),
                args.no_cache,
                &args.build_args,
            )?;
            printer.result(built.tag);
            Ok(())
        }
        Command::Service(ServiceCommand::Deploy(args)) => commands::deploy::deploy(
            printer,
            manifest,
            context,
            commands::deploy::DeployOptions {
                env: &args.env,
                strategy: args.strategy.map(strategy),
                manual: args.manual,
                image: args.image.as_deref(),
                detach: args.detach,
                yes: args.yes,
                no_cache: args.no_cache,
                build_args: &args.build_args,
            },
        ),
        Command::Service(ServiceCommand::Status(args)) => {
            let name = commands::service::service_name(manifest, args.service.as_deref())?;
            commands::service::status(printer, context, &name, args.env.as_deref(), args.json)
        }
        Command::Service(ServiceCommand::List { json }) => {
            commands::service::list(printer, context, json)
        }
        Command::Service(ServiceCommand::Releases(args)) => {
            let name = commands::service::service_name(manifest, args.service.as_deref())?;
            commands::service::releases(printer, context, &name, &args.env, args.json)
        }
        Command::Service(ServiceCommand::Rollback(args)) => {
            let name = commands::service::service_name(manifest, args.service.as_deref())?;
            commands::service::rollback(printer, context, &name, &args.env, args.to)
        }
        Command::Service(ServiceCommand::Delete(args)) => {
            let name = commands::service::service_name(manifest, args.service.as_deref())?;
            commands::service::delete(printer, context, &name, args.yes, args.purge)
        }
        Command::Service(ServiceCommand::Scale(args)) => {
            let name = commands::service::service_name(manifest, args.service.as_deref())?;
            commands::service::scale(printer, context, &name, &args.env, args.replicas)
        }
        Command::Service(ServiceCommand::Push(args)) => {
            commands::service::push(printer, manifest, context, args.delete)
        }
        Command::Service(ServiceCommand::Dev(args)) => {
            let deps = match &args.deps_from {
                Some(from) => {
                    commands::dev_dependencies::resolve(printer, manifest, context, from)?
                }
                None => Default::default(),
            };
            commands::dev::run(printer, manifest, &args.env, args.watch, deps)
        }
        Command::Service(ServiceCommand::Logs(args)) => {
            let name = commands::service::service_name(manifest, args.service.as_deref())?;
            commands::logs::run(printer, context, &name, &args)
        }
        Command::Service(ServiceCommand::Canary(cmd)) => {
            commands::canary::run(printer, manifest, context, cmd)
        }
        Command::Service(ServiceCommand::Secrets(cmd)) => {
            commands::secrets::run(printer, manifest, context, cmd)
        }
        Command::Service(ServiceCommand::Dependency(cmd)) => {
            commands::dependency::run(printer, manifest, cmd)
        }
        Command::Service(ServiceCommand::Debug(args)) => {
            let name = commands::service::service_name(manifest, args.service.as_deref())?;
            commands::debug::run(printer, context, &name, args)
        }
        Command::Service(ServiceCommand::Problems(args)) => {
            let name = commands::service::service_name(manifest, args.service.as_deref())?;
            commands::problems::run(printer, context, &name, args)
        }
        Command::Service(ServiceCommand::Metrics(args)) => {
            let name = commands::service::service_name(manifest, args.service.as_deref())?;
            commands::metrics::run(printer, context, &name, args)
        }
        Command::Service(ServiceCommand::Cron(cmd)) => {
            let name = commands::service::service_name(manifest, None)?;
            commands::cron::run(printer, context, &name, cmd)
        }
        Command::Service(ServiceCommand::Db(cmd)) => {
            commands::databases::run(printer, manifest, context, cmd)
        }
        Command::Launch(args) => {
            let dir = commands::create::run_for_launch(printer, context, args.create, false)?;
            let manifest = dir.join(faas_spec::MANIFEST_FILE);
            commands::deploy::deploy(
                printer,
                Some(&manifest),
                Some(context.unwrap_or(config::LOCAL)),
                commands::deploy::DeployOptions {
                    env: "prod",
                    strategy: None,
                    manual: false,
                    image: None,
                    detach: false,
                    yes: true,
                    no_cache: false,
                    build_args: &[],
                },
            )
        }
        Command::Platform(PlatformCommand::Start(args)) => commands::platform::start(printer, args),
        Command::Platform(PlatformCommand::Stop) => commands::platform::stop(printer),
        Command::Platform(PlatformCommand::Status { json }) => {
            commands::platform::status(printer, json)
        }
        Command::Context(ContextCommand::Add { name, url }) => {
            commands::context::add(printer, &name, &url)
        }
        Command::Context(ContextCommand::Use { name }) => {
            commands::context::use_context(printer, &name)
        }
        Command::Context(ContextCommand::List { json }) => {
            commands::context::list(printer, context, json)
        }
        Command::Login { token_stdin } => commands::auth::login(printer, context, token_stdin),
        Command::Logout => commands::auth::logout(printer, context),
        Command::Whoami { json } => commands::auth::whoami(printer, context, json),
        Command::Ledger(cmd) => commands::ledger::run(printer, context, cmd),
        Command::Tariff(cmd) => commands::tariff::run(printer, context, cmd),
        Command::Billing(cmd) => commands::billing::run(printer, context, cmd),
        Command::Function(cmd) => commands::function::run(printer, context, cmd),
        Command::Task(cmd) => commands::task::run(printer, context, cmd),
        Command::Trace(cmd) => commands::trace::run(printer, context, cmd),
        Command::Codegen(cmd) => codegen::run(printer, context, cmd),
        Command::Action(cmd) => commands::action::run(printer, context, cmd),
        Command::Service(ServiceCommand::Create(args)) => {
            commands::create::run(printer, context, args)
        }
        Command::Service(ServiceCommand::Validate(args)) => {
            commands::validate::run(printer, manifest, context, args.env.as_deref(), args.json)
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

fn strategy(s: StrategyArg) -> faas_spec::Strategy {
    match s {
        StrategyArg::Immediate => faas_spec::Strategy::Immediate,
        StrategyArg::Rolling => faas_spec::Strategy::Rolling,
        StrategyArg::Canary => faas_spec::Strategy::Canary,
        StrategyArg::Bluegreen => faas_spec::Strategy::Bluegreen,
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
        CliError::ManifestReported | CliError::Interrupted => {}
        CliError::Usage { message, hint }
        | CliError::Failed { message, hint }
        | CliError::Platform { message, hint, .. } => printer.error(message, hint.as_deref()),
        CliError::Other(e) => printer.error(&format!("{e:#}"), None),
    }
}
