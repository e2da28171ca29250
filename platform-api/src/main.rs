//! `faas-platform serve`: the platform daemon.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use clap::{Parser, Subcommand};
use faas_platform::config::{Config, Overrides, env_vars};
use faas_platform::{Platform, auth, reconcile, router, runtime, store};
use tracing_subscriber::EnvFilter;

// The router allocates a little per request; mimalloc keeps that off glibc's locks.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The faas platform daemon: runs services on the Docker Engine and routes traffic to them.
#[derive(Debug, Parser)]
#[command(name = "faas-platform", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the platform API and the router
    Serve {
        /// Where the API listens [default: 127.0.0.1:7700]
        #[arg(long, env = env_vars::LISTEN)]
        listen: Option<SocketAddr>,
        /// Where the router listens [default: 127.0.0.1:7780]
        #[arg(long, env = env_vars::ROUTER)]
        router: Option<SocketAddr>,
        /// Where the platform keeps its state [default: ~/.local/share/faas/platform]
        #[arg(long, env = env_vars::DATA_DIR)]
        data_dir: Option<PathBuf>,
        /// Services are served at <svc>.<domain> [default: localhost]
        #[arg(long, env = env_vars::DOMAIN)]
        domain: Option<String>,
        /// The Docker network instances join [default: faas]
        #[arg(long, env = env_vars::NETWORK)]
        network: Option<String>,
        /// How the router reaches instances
        #[arg(long, value_enum, env = env_vars::UPSTREAM)]
        upstream: Option<faas_platform::config::Upstream>,
        /// A config file [default: ~/.config/faas/platform.toml]
        #[arg(long, env = env_vars::CONFIG)]
        config: Option<PathBuf>,
        /// The ledger's PostgreSQL, `postgres://USER@HOST:PORT/DATABASE` [default: SQLite in the data directory]
        #[arg(long, env = env_vars::LEDGER)]
        ledger: Option<String>,
        /// The ledger's types and shards [default: ~/.config/faas/ledger.toml when present]
        #[arg(long, env = env_vars::LEDGER_CONFIG)]
        ledger_config: Option<PathBuf>,
        /// How often the meter reads every instance's usage: `10s`, `1s`, or `off` [default: 10s]
        #[arg(long, env = env_vars::METER_INTERVAL)]
        meter_interval: Option<String>,
        /// An external PostgreSQL server for services' databases, `postgres://ADMIN:PASSWORD@HOST:PORT` [default: a managed one]
        #[arg(long, env = env_vars::POSTGRESQL_ADMIN_URL)]
        postgresql_admin_url: Option<String>,
        /// Where services reach the external PostgreSQL, `HOST:PORT` [default: the admin URL's]
        #[arg(long, env = env_vars::POSTGRESQL_SERVICE_ADDR, requires = "postgresql_admin_url")]
        postgresql_service_addr: Option<String>,
        /// An external Redis server, `redis://ADMIN:PASSWORD@HOST:PORT` (it needs an `aclfile`) [default: a managed one]
        #[arg(long, env = env_vars::REDIS_ADMIN_URL)]
        redis_admin_url: Option<String>,
        /// Where services reach the external Redis, `HOST:PORT` [default: the admin URL's]
        #[arg(long, env = env_vars::REDIS_SERVICE_ADDR, requires = "redis_admin_url")]
        redis_service_addr: Option<String>,
        /// An external RabbitMQ server's management API, `http://ADMIN:PASSWORD@HOST:PORT` [default: a managed one]
        #[arg(long, env = env_vars::RABBITMQ_ADMIN_URL)]
        rabbitmq_admin_url: Option<String>,
        /// Where services reach the external RabbitMQ over AMQP, `HOST:PORT` [default: the admin URL's host, port 5672]
        #[arg(long, env = env_vars::RABBITMQ_SERVICE_ADDR, requires = "rabbitmq_admin_url")]
        rabbitmq_service_addr: Option<String>,
        /// The RabbitMQ task launches go through, `amqp://USER:PASSWORD@HOST:PORT/VHOST` [default: none; the rabbitmq transport is off]
        #[arg(long, env = env_vars::TASKS_AMQP_URL)]
        tasks_amqp_url: Option<String>,
        /// What runs instances: the local Docker Engine, or a Kubernetes cluster [default: docker]
        #[arg(long, value_enum, env = env_vars::RUNTIME)]
        runtime: Option<faas_platform::config::RuntimeKind>,
        /// The Kubernetes runtime's kubeconfig [default: $KUBECONFIG, else ~/.kube/config]
        #[arg(long, env = env_vars::KUBECONFIG)]
        kubeconfig: Option<PathBuf>,
        /// The kubeconfig's context [default: its current one]
        #[arg(long, env = env_vars::KUBE_CONTEXT)]
        context: Option<String>,
        /// The namespace the platform's objects go in [default: faas-<platform id>]
        #[arg(long, env = env_vars::NAMESPACE)]
        namespace: Option<String>,
        /// Where the cluster's nodes take images from: the platform's Docker Engine (a local cluster), loaded into kind or k3d nodes, or a registry [default: kind/k3d by the context's name, else docker]
        #[arg(long, value_enum, env = env_vars::IMAGES)]
        images: Option<faas_platform::runtime::kubernetes::Images>,
        /// With `--images registry`: the registry the platform pushes releases' images to, `HOST[:PORT][/PATH]` [default: none; deploy by digest]
        #[arg(long, env = env_vars::REGISTRY)]
        registry: Option<String>,
        /// A namespace per tenant (`<namespace>-<tenant>`) in place of one for the platform
        #[arg(long, env = env_vars::NAMESPACE_PER_TENANT)]
        namespace_per_tenant: bool,
    },
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env(env_vars::LOG).unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let Command::Serve {
        listen,
        router: router_addr,
        data_dir,
        domain,
        network,
        upstream,
        config,
        ledger,
        ledger_config,
        meter_interval,
        postgresql_admin_url,
        postgresql_service_addr,
        redis_admin_url,
        redis_service_addr,
        rabbitmq_admin_url,
        rabbitmq_service_addr,
        tasks_amqp_url,
        runtime: runtime_kind,
        kubeconfig,
        context,
        namespace,
        images,
        registry,
        namespace_per_tenant,
    } = cli.command;
    use faas_platform::databases::servers::ExternalServer;
    let databases = [
        (
            faas_spec::Engine::Postgresql,
            postgresql_admin_url,
            postgresql_service_addr,
        ),
        (
            faas_spec::Engine::Redis,
            redis_admin_url,
            redis_service_addr,
        ),
        (
            faas_spec::Engine::Rabbitmq,
            rabbitmq_admin_url,
            rabbitmq_service_addr,
        ),
    ]
    .into_iter()
    .filter_map(|(engine, admin_url, service_addr)| {
        Some((
            engine,
            ExternalServer {
                admin_url: admin_url?,
                service_addr,
            },
        ))
    })
    .collect();
    let config = Config::resolve(Overrides {
        listen,
        router: router_addr,
        data_dir,
        domain,
        network,
        upstream,
        config,
        ledger,
        ledger_config,
        meter_interval,
        databases,
        tasks_amqp_url,
        runtime: runtime_kind,
        kubernetes: faas_platform::config::KubernetesFile {
            kubeconfig,
            context,
            namespace,
            images,
            registry,
            namespace_per_tenant: namespace_per_tenant.then_some(true),
        },
    })?;
    serve(config).await
}

async fn serve(config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create the data directory {}: {e}",
            config.data_dir.display()
        )
    })?;
    restrict(&config.data_dir);

    // One daemon per data directory; the lock dies with its process, so a crash never blocks.
    let lock_path = config.data_dir.join("platform.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)?;
    if lock.try_lock().is_err() {
        anyhow::bail!(
            "another faas-platform is using {} (it holds {})",
            config.data_dir.display(),
            lock_path.display()
        );
    }

    let store = Arc::new(store::Store::open(&config.data_dir.join("platform.db"))?);
    let platform_id = match store.meta("platform_id")? {
        Some(id) => id,
        None => {
            let id = store::short_id();
            store.set_meta("platform_id", &id)?;
            id
        }
    };
    if let Some(path) = auth::ensure_admin_token(&store, &config.data_dir, "admin@faas.local")? {
        tracing::info!(
            "created the first admin token; it is in {} (readable by you alone)",
            path.display()
        );
    }

    let ledger = Arc::new(open_ledger(&config).await?);
    let ledger_task = tokio::spawn(faas_ledger::background::run(
        ledger.clone(),
        format!("{platform_id}-{}", std::process::id()),
        std::future::pending::<()>(),
    ));

    let api_listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {} for the API: {e}", config.listen))?;
    let router_listener = tokio::net::TcpListener::bind(config.router)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {} for the router: {e}", config.router))?;

    let docker = runtime::DockerRuntime::start(platform_id.clone(), config.network.clone()).await;
    let runtime: Arc<dyn runtime::Runtime> = match config.runtime {
        faas_platform::config::RuntimeKind::Docker => docker,
        faas_platform::config::RuntimeKind::Kubernetes => {
            let k = &config.kubernetes;
            let cluster = runtime::kubernetes::KubernetesConfig {
                kubeconfig: k.kubeconfig.clone(),
                context: k.context.clone(),
                namespace: k
                    .namespace
                    .clone()
                    .unwrap_or_else(|| format!("faas-{platform_id}")),
                images: k.images,
                registry: k.registry.clone(),
                per_tenant: k.namespace_per_tenant.unwrap_or(false),
            };
            runtime::KubernetesRuntime::connect(platform_id, &cluster, docker).await?
        }
    };
    if !runtime.status().available {
        tracing::warn!(
            "the Docker Engine does not answer ({}); the API will say so until it does, and the platform keeps trying",
            runtime.status().error.unwrap_or_default()
        );
    }
    let router = router::Router::new(&config.domain);
    let platform = Arc::new(Platform {
        config: config.clone(),
        store,
        runtime,
        router: router.clone(),
        events: Default::default(),
        sealer: faas_platform::secrets::Sealer::open(&config.data_dir)?,
        logs: Arc::new(faas_platform::logs::LogHub::new(
            config.data_dir.join("logs"),
            config.logs_max_bytes,
            config.logs_max_age,
        )),
        ledger,
        meter: faas_platform::meter::Meter::new(config.meter_interval),
        stopping: tokio::sync::watch::channel(false).0,
        started: Instant::now(),
        running: Mutex::new(Default::default()),
        canaries: Mutex::new(Default::default()),
        databases: faas_platform::databases::servers::Servers::new(config.databases.clone()),
        runs: Default::default(),
        tasks: faas_platform::tasks::Engine::new(config.tasks_amqp_url.clone()),
        problems: faas_platform::problems::Problems::from_env()?,
        series: Default::default(),
        traces: Default::default(),
    });
    platform.logs.tap(platform.problems.line_sender());
    reconcile::reconcile_when_docker_answers(platform.clone());
    let cron_task = tokio::spawn(faas_platform::runs::cron::run(platform.clone()));
    let meter_task = tokio::spawn(faas_platform::meter::run(platform.clone()));
    let billing_task = tokio::spawn(faas_platform::billing::task::run(platform.clone()));
    let tasks_task = tokio::spawn(faas_platform::tasks::run(platform.clone()));
    let addresses_task = tokio::spawn(faas_platform::addresses::follow(platform.clone()));
    let problems_task = tokio::spawn(faas_platform::problems::run(platform.clone()));
    let series_task = tokio::spawn(faas_platform::series::run(platform.clone()));
    let traces_task = tokio::spawn(faas_platform::traces::write(platform.clone()));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let router_task = tokio::spawn(router.clone().serve(
        router_listener,
        stop_rx.clone(),
        config.shutdown_drain,
    ));
    let network_task = tokio::spawn(faas_platform::dependencies::listen_on_network(
        platform.clone(),
        stop_rx.clone(),
    ));
    tracing::info!(
        api = %config.listen,
        router = %config.router,
        domain = %config.domain,
        data_dir = %config.data_dir.display(),
        "faas-platform is serving"
    );
    let mut api_stop = stop_rx.clone();
    let stopping = platform.stopping.clone();
    axum::serve(api_listener, faas_platform::app(platform.clone()))
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
            stopping.send_replace(true);
            let _ = api_stop.changed().await;
        })
        .await?;
    tracing::info!("stopping: the router drains open requests; containers keep running");
    let _ = router_task.await;
    let _ = tokio::time::timeout(config.shutdown_drain, network_task).await;
    // Deployments stop where their last step left them and resume at the next start.
    for (_, handle) in platform
        .running
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain()
    {
        handle.abort();
    }
    meter_task.abort();
    cron_task.abort();
    billing_task.abort();
    tasks_task.abort();
    addresses_task.abort();
    problems_task.abort();
    series_task.abort();
    traces_task.abort();
    ledger_task.abort();
    drop(lock);
    tracing::info!("stopped");
    Ok(())
}

/// The ledger: its types (the embedded defaults under ledger.toml), on the PostgreSQL that
/// `--ledger` names, else the shards of ledger.toml, else SQLite in the data directory.
async fn open_ledger(config: &Config) -> anyhow::Result<faas_ledger::Ledger> {
    let mut ledger_config = match &config.ledger_config {
        Some((path, required)) => match std::fs::read_to_string(path) {
            Ok(text) => {
                faas_ledger::LedgerConfig::with_overrides(&path.display().to_string(), &text)
                    .map_err(|report| {
                        anyhow::anyhow!(
                            "the ledger's configuration is not valid:\n{}",
                            report.render(false)
                        )
                    })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                faas_ledger::LedgerConfig::defaults()
            }
            Err(e) => anyhow::bail!(
                "cannot read the ledger's configuration {}: {e}",
                path.display()
            ),
        },
        None => faas_ledger::LedgerConfig::defaults(),
    };
    if let Some(url) = &config.ledger {
        ledger_config.shards = vec![faas_ledger::placement::ShardSpec::whole(url)];
    }
    let where_ = match ledger_config.shards.len() {
        0 => "SQLite in the data directory".to_owned(),
        1 => format!(
            "PostgreSQL {}",
            faas_ledger::sharded::redact(&ledger_config.shards[0].url)
        ),
        n => format!("{n} PostgreSQL shards"),
    };
    let ledger = faas_ledger::background::open(ledger_config, &config.data_dir.join("ledger.db"))
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the ledger ({where_}): {e}"))?;
    tracing::info!("the ledger is on {where_}");
    Ok(ledger)
}

#[cfg(unix)]
fn restrict(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
}

#[cfg(not(unix))]
fn restrict(_: &std::path::Path) {}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
