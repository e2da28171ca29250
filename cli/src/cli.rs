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
    /// The platform to talk to (`faas context list`) [default: the current context, else local]
    #[arg(short = 'C', long, global = true, value_name = "NAME", env = env_vars::FAAS_CONTEXT)]
    pub context: Option<String>,
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
    /// Create a service and deploy it to the local platform, in one step
    Launch(LaunchArgs),
    /// Start, stop and inspect the local platform
    #[command(subcommand)]
    Platform(PlatformCommand),
    /// The platforms this CLI talks to
    #[command(subcommand)]
    Context(ContextCommand),
    /// What usage costs: tariffs, their versions, and who is priced at which (admin)
    #[command(subcommand)]
    Tariff(TariffCommand),
    /// What a tenant used and what it costs
    #[command(subcommand)]
    Billing(crate::commands::billing::BillingCommand),
    /// One-off runs of an image for a tenant: run, list, show, logs, cancel
    #[command(subcommand)]
    Function(crate::commands::function::FunctionCommand),
    /// Task chains: run a definition, follow its runs, cancel one, approve a step
    #[command(subcommand)]
    Task(crate::commands::task::TaskCommand),
    /// Traces across services: a trace's hops through the router, as a waterfall
    #[command(subcommand)]
    Trace(crate::commands::trace::TraceCommand),
    /// Generate code from what a deployed service declares: clients for its functions
    #[command(subcommand)]
    Codegen(crate::codegen::CodegenCommand),
    /// The actions tasks launch: built in, and those that register themselves by heartbeat
    #[command(subcommand)]
    Action(crate::commands::action::ActionCommand),
    /// The platform's accounts ledger: balances, turnovers, events (admin)
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Keep a token for the current context (the OS keyring, else a 0600 file)
    Login {
        /// Read the token from stdin instead of asking
        #[arg(long)]
        token_stdin: bool,
    },
    /// Forget the current context's token
    Logout,
    /// Show who the current context's token belongs to
    Whoami {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script
    Completions(CompletionsArgs),
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// An account's balance at a date, in total or per group
    Balance {
        #[command(flatten)]
        account: LedgerAccountArgs,
        /// The balance of the events effective before this time (RFC 3339 or YYYY-MM-DD) [default: now]
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// An account's opening balance, debits, credits and closing balance over [FROM, TO)
    Turnovers {
        #[command(flatten)]
        account: LedgerAccountArgs,
        /// The period's start (RFC 3339 or YYYY-MM-DD)
        #[arg(long, value_name = "TIME")]
        from: String,
        /// The period's end, excluded
        #[arg(long, value_name = "TIME")]
        to: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// The events of an account type effective in [FROM, TO), oldest first
    Events {
        /// The account type
        #[arg(long = "type", value_name = "TYPE", default_value = "usage")]
        kind: String,
        /// A key attribute the events' accounts must have, NAME=VALUE (repeatable)
        #[arg(long = "key", value_name = "NAME=VALUE")]
        key: Vec<String>,
        /// An auxiliary attribute the events must have, NAME=VALUE (repeatable)
        #[arg(long = "aux", value_name = "NAME=VALUE")]
        aux: Vec<String>,
        /// The period's start (RFC 3339 or YYYY-MM-DD)
        #[arg(long, value_name = "TIME")]
        from: String,
        /// The period's end, excluded
        #[arg(long, value_name = "TIME")]
        to: String,
        /// At most this many events
        #[arg(long, value_name = "N", default_value_t = 100)]
        limit: usize,
        /// Print JSON (one array)
        #[arg(long)]
        json: bool,
    },
    /// Write a batch of events atomically, from a JSON array or NDJSON file (`-`: stdin)
    Write {
        /// The file of events (each: account, aux, amount, effective_at, idempotency_key, info)
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TariffCommand {
    /// Create a tariff and its first version (the first tariff becomes the default)
    Create {
        /// Lowercase letters, digits and `-`
        name: String,
        /// ISO 4217, e.g. EUR
        #[arg(long)]
        currency: String,
        #[command(flatten)]
        prices: TariffPrices,
        /// When it takes effect (RFC 3339 or YYYY-MM-DD) [default: now]
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        /// Make it the default tariff
        #[arg(long)]
        default: bool,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// The tariffs, their versions and tenants
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// One tariff, its versions and tenants
    Show {
        name: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// New prices from a date on (prices not given stay as they are); a past date re-prices
    Update {
        name: String,
        #[command(flatten)]
        prices: TariffPrices,
        /// When the new prices take effect (RFC 3339 or YYYY-MM-DD)
        #[arg(long, value_name = "TIME")]
        from: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Archive a tariff: it keeps pricing what it priced; no tenant can be given it
    Archive { name: String },
    /// Price a tenant at a tariff, or make it the default
    Assign {
        name: String,
        /// The tenant (an e-mail address)
        #[arg(long, value_name = "EMAIL", conflicts_with = "default")]
        tenant: Option<String>,
        /// Make it the tariff of every tenant without one of its own
        #[arg(long)]
        default: bool,
    },
}

/// Prices as decimal numbers of the currency's major unit (at most 9 decimal places).
#[derive(Debug, Args)]
pub struct TariffPrices {
    /// Per vCPU-second of CPU time used
    #[arg(long, value_name = "PRICE")]
    pub vcpu_second: Option<String>,
    /// Per GiB-second of memory held
    #[arg(long, value_name = "PRICE")]
    pub gib_second: Option<String>,
    /// Per second an instance runs
    #[arg(long, value_name = "PRICE")]
    pub instance_second: Option<String>,
    /// Per million requests served
    #[arg(long, value_name = "PRICE")]
    pub million_requests: Option<String>,
    /// Per one-off run
    #[arg(long, value_name = "PRICE")]
    pub run: Option<String>,
}

#[derive(Debug, Args)]
pub struct LedgerAccountArgs {
    /// The account type
    #[arg(long = "type", value_name = "TYPE", default_value = "usage")]
    pub kind: String,
    /// A key attribute of the account, NAME=VALUE (repeat for each, e.g. tenant and currency)
    #[arg(long = "key", value_name = "NAME=VALUE", required = true)]
    pub key: Vec<String>,
    /// Group by these auxiliary attributes (an allowed grouping of the type), e.g. service,env
    #[arg(long, value_name = "ATTR,...", value_delimiter = ',')]
    pub group_by: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LaunchArgs {
    #[command(flatten)]
    pub create: CreateArgs,
}

/// How the local platform runs its services; remembered for its later starts.
#[derive(Debug, Args)]
pub struct PlatformStartArgs {
    /// What runs services: the local Docker Engine, or a local Kubernetes cluster whose nodes
    /// use it (minikube's docker-env, the test cluster) [default: the last start's, else docker]
    #[arg(long, value_parser = ["docker", "kubernetes"])]
    pub runtime: Option<String>,
    /// The cluster's kubeconfig [default: $KUBECONFIG, else ~/.kube/config]
    #[arg(long, requires = "runtime")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// The kubeconfig's context [default: its current one]
    #[arg(long, requires = "runtime")]
    pub kube_context: Option<String>,
    /// The namespace of the platform's objects [default: faas-<platform id>]
    #[arg(long, requires = "runtime")]
    pub namespace: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum PlatformCommand {
    /// Start the local platform in the background
    Start(PlatformStartArgs),
    /// Stop the local platform (its services' containers keep running)
    Stop,
    /// Whether the local platform runs, where it listens and where its data is
    Status {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ContextCommand {
    /// Add (or change) a context
    Add {
        /// Its name, e.g. `staging`
        name: String,
        /// The platform's API URL, e.g. https://faas.example.com
        #[arg(long)]
        url: String,
    },
    /// Make a context the current one
    Use { name: String },
    /// The contexts, the current one marked
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Create a service from a template, with its app.toml
    Create(CreateArgs),
    /// Check app.toml and report every problem at once
    Validate(ValidateArgs),
    /// Print the manifest an environment sees, with every default filled in
    Info(InfoArgs),
    /// Build the service's image with the local Docker Engine
    Build(BuildArgs),
    /// Build and deploy to an environment, following the rollout to its end
    Deploy(DeployArgs),
    /// The service's release, instances and URL per environment
    Status(StatusArgs),
    /// The services on the platform
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// The releases of an environment, the current one marked
    Releases(ReleasesArgs),
    /// Deploy an earlier release again (by default the one before the current one)
    Rollback(RollbackArgs),
    /// Delete the service on the platform: every environment, instance and release
    Delete(DeleteArgs),
    /// Run the current release with another number of instances (until the next release)
    Scale(ScaleArgs),
    /// Deploy the current git branch to a preview environment named after it
    Push(PushArgs),
    /// Build and run the service on the local Docker Engine in the foreground
    Dev(DevArgs),
    /// The output of the service's instances, merged in time order
    Logs(LogsArgs),
    /// Secrets of an environment: set, list, unset (values are never shown)
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// The canary under way: its weights and figures; promote it or abort it
    #[command(subcommand)]
    Canary(CanaryCommand),
    /// The databases of an environment: list, info, connect, rotate, backup, restore, destroy
    #[command(subcommand)]
    Db(crate::commands::databases::DbCommand),
    /// The `[[cron]]` entries of an environment: list, history, run one now
    #[command(subcommand)]
    Cron(crate::commands::cron::CronCommand),
    /// The services this one calls: add, remove, list (injected as <NAME>_URL at deploy)
    #[command(subcommand)]
    Dependency(crate::commands::dependency::DependencyCommand),
    /// A shell, or a command after --, inside a running instance
    Debug(crate::commands::debug::DebugArgs),
    /// What went wrong and when: OOM kills, crash loops, 5xx, slow releases, failed deploys and runs, exceptions
    Problems(crate::commands::problems::ProblemsArgs),
    /// Requests/s, 5xx, p50/p95/p99, CPU and memory per release (and per function)
    Metrics(crate::commands::metrics::MetricsArgs),
}

#[derive(Debug, Subcommand)]
pub enum CanaryCommand {
    /// The step, the weights and both sets' error rate and p99 so far
    Status(CanaryArgs),
    /// Move the canary to its next step now (at the last one it takes every request)
    Promote(CanaryArgs),
    /// Roll the canary back now: its weight to 0, its instances stopped
    Abort(CanaryArgs),
}

#[derive(Debug, Args)]
pub struct CanaryArgs {
    /// The environment
    #[arg(short, long, value_name = "ENV", default_value = "prod")]
    pub env: String,
    /// The service [default: app.toml's name]
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The environment
    #[arg(short, long, value_name = "ENV", default_value = "prod")]
    pub env: String,
    /// Keep following: new lines as they come, across deploys
    #[arg(short, long)]
    pub follow: bool,
    /// From this time: a duration back (`10m`) or RFC 3339
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Up to this time: a duration back or RFC 3339
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    /// The last N lines [default: 100, or everything with --since]
    #[arg(short = 'n', long, value_name = "N")]
    pub lines: Option<usize>,
    /// Only this instance
    #[arg(long, value_name = "ID")]
    pub instance: Option<String>,
    /// Only this release (its id)
    #[arg(long, value_name = "ID")]
    pub release: Option<String>,
    /// Only lines matching this regular expression
    #[arg(long, value_name = "RE")]
    pub grep: Option<String>,
    /// Only lines of this trace (its id, as `faas trace show` takes it)
    #[arg(long, value_name = "ID", conflicts_with = "grep")]
    pub trace: Option<String>,
    /// Print the records as JSON lines
    #[arg(long)]
    pub json: bool,
    /// The service [default: app.toml's name]
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Set secrets: KEY=VALUE, or KEY alone to read its value from stdin (never echoed)
    Set {
        /// KEY=VALUE or KEY
        #[arg(required = true, value_name = "KEY[=VALUE]")]
        pairs: Vec<String>,
        /// The environment
        #[arg(short, long, value_name = "ENV", default_value = "prod")]
        env: String,
        /// Redeploy the current release at once, with the new values
        #[arg(long)]
        deploy: bool,
    },
    /// The secrets' names and when they changed
    List {
        /// The environment
        #[arg(short, long, value_name = "ENV", default_value = "prod")]
        env: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Remove secrets
    Unset {
        #[arg(required = true, value_name = "KEY")]
        names: Vec<String>,
        /// The environment
        #[arg(short, long, value_name = "ENV", default_value = "prod")]
        env: String,
    },
}

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// The environment
    #[arg(short, long, value_name = "ENV")]
    pub env: String,
    /// How many instances, 0 to 100
    #[arg(long, value_name = "N")]
    pub replicas: u32,
    /// The service [default: app.toml's name]
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Remove the branch's preview environment instead
    #[arg(long)]
    pub delete: bool,
}

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Rebuild and restart when a source file changes
    #[arg(long)]
    pub watch: bool,
    /// The environment whose overrides apply
    #[arg(short, long, value_name = "ENV", default_value = "dev")]
    pub env: String,
    /// Reach the `[[dependencies]]` in this environment of the platform (their URLs point at
    /// its services through the router)
    #[arg(long, value_name = "ENV")]
    pub deps_from: Option<String>,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The environment whose `[build]` overrides apply
    #[arg(short, long, value_name = "ENV")]
    pub env: Option<String>,
    /// Build without the layer cache
    #[arg(long)]
    pub no_cache: bool,
    /// A build argument, KEY=VALUE (repeatable); wins over app.toml's `build.args`
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StrategyArg {
    Immediate,
    Rolling,
    Canary,
    Bluegreen,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The environment, e.g. `prod` or `staging`
    #[arg(short, long, value_name = "ENV")]
    pub env: String,
    /// Overrides app.toml's `deploy.strategy`
    #[arg(long, value_enum)]
    pub strategy: Option<StrategyArg>,
    /// A canary holds at each step until `faas service canary promote` (or `abort`)
    #[arg(long)]
    pub manual: bool,
    /// Deploy this image (an ID or reference on this Docker Engine) instead of building
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// Return once the deployment is created; print its id
    #[arg(long)]
    pub detach: bool,
    /// Do not ask before deploying to prod
    #[arg(short, long)]
    pub yes: bool,
    /// Build without the layer cache
    #[arg(long)]
    pub no_cache: bool,
    /// A build argument, KEY=VALUE (repeatable)
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this environment
    #[arg(short, long, value_name = "ENV")]
    pub env: Option<String>,
    /// The service [default: app.toml's name]
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReleasesArgs {
    /// The environment
    #[arg(short, long, value_name = "ENV", default_value = "prod")]
    pub env: String,
    /// The service [default: app.toml's name]
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The environment
    #[arg(short, long, value_name = "ENV", default_value = "prod")]
    pub env: String,
    /// The release version to go back to, e.g. 3
    #[arg(long, value_name = "VERSION")]
    pub to: Option<u64>,
    /// The service [default: app.toml's name]
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Do not ask
    #[arg(short, long)]
    pub yes: bool,
    /// Drop its databases with their data too (without: detached, their data kept)
    #[arg(long)]
    pub purge: bool,
    /// The service [default: app.toml's name]
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
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
