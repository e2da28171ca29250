//! The command line, as clap definitions only: no logic lives here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::env_vars;

/// faas: create services, check their app.toml, and ship them.
#[derive(Debug, Parser)]
#[command(name = "faas", version, max_term_width = 100)]
#[command(after_help = "Start with `faas service create`; `faas <command> --help` says more.")]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Turn colors off (so do NO_COLOR=1, TERM=dumb and output that is not a terminal)
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Print only results and errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// The service's app.toml [default: ./app.toml or the nearest parent's]
    #[arg(long, global = true, value_name = "PATH", env = env_vars::FAAS_MANIFEST)]
    pub manifest: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, check and inspect services
    #[command(subcommand)]
    Service(ServiceCommand),
    /// The templates `faas service create` starts from
    #[command(subcommand)]
    Templates(TemplatesCommand),
    /// Add or remove a PostgreSQL database in app.toml
    #[command(subcommand)]
    Postgresql(DatabaseCommand),
    /// Add or remove a Redis database in app.toml
    #[command(subcommand)]
    Redis(DatabaseCommand),
    /// Add or remove a RabbitMQ broker in app.toml
    #[command(subcommand)]
    Rabbitmq(DatabaseCommand),
    /// Add or remove a MongoDB database in app.toml
    #[command(subcommand)]
    Mongodb(DatabaseCommand),
    /// Print a shell completion script
    Completions(CompletionsArgs),
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Create a service from a template, with its app.toml
    Create(CreateArgs),
    /// Check app.toml and report every problem at once
    Validate(ValidateArgs),
    /// Print the manifest an environment sees, with every default filled in
    Info(InfoArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    Business,
    Infrastructure,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The service's name: a DNS label such as `pricing`
    pub name: Option<String>,
    /// The template to start from (`faas templates list` names them) [default: python-function]
    #[arg(short, long, value_name = "TEMPLATE")]
    pub template: Option<String>,
    /// What the service is for [default: business]
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
    /// The e-mail of the tenant that owns the service and is billed for it
    #[arg(long, value_name = "EMAIL")]
    pub owner: Option<String>,
    /// One line that says what the service does
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// The directory to create [default: ./NAME]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Never prompt: a missing answer is an error that names its flag
    #[arg(long, env = env_vars::FAAS_NO_INPUT)]
    pub no_input: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Also check the manifest as this environment overrides it
    #[arg(short, long, value_name = "ENV")]
    pub env: Option<String>,
    /// Print the result as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The environment whose overrides apply [default: none, the base manifest]
    #[arg(short, long, value_name = "ENV")]
    pub env: Option<String>,
    /// Print JSON instead of TOML
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum TemplatesCommand {
    /// Name every template with a line about it
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DatabaseCommand {
    /// Add a database to app.toml (nothing changes if it is already there)
    Add {
        /// The database's name; it names the injected `<NAME>_URL` variable [default: the
        /// engine's usual one: main, cache, queue or docs]
        name: Option<String>,
        /// The engine's major version, e.g. 16 [default: the platform's]
        #[arg(long, value_name = "VERSION")]
        version: Option<String>,
    },
    /// Remove a database from app.toml
    Remove {
        /// The database's name [default: the only one of this engine]
        name: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
