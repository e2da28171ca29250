//! The daemon's settings: flags, then environment variables (clap reads both), then a config
//! file, then defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Every environment variable the daemon reads, in one place.
pub mod env_vars {
    pub const LISTEN: &str = "FAAS_PLATFORM_LISTEN";
    pub const ROUTER: &str = "FAAS_PLATFORM_ROUTER";
    pub const DATA_DIR: &str = "FAAS_PLATFORM_DATA_DIR";
    pub const DOMAIN: &str = "FAAS_PLATFORM_DOMAIN";
    pub const NETWORK: &str = "FAAS_PLATFORM_NETWORK";
    /// `container-ip` (default) or `published`: how the router reaches instances.
    pub const UPSTREAM: &str = "FAAS_PLATFORM_UPSTREAM";
    /// Bytes of logs kept per service and environment (default 100 MB).
    pub const LOGS_MAX_BYTES: &str = "FAAS_PLATFORM_LOGS_MAX_BYTES";
    pub const CONFIG: &str = "FAAS_PLATFORM_CONFIG";
    /// The ledger's PostgreSQL (`postgres://…`); the SQLite file in the data directory if unset.
    pub const LEDGER: &str = "FAAS_PLATFORM_LEDGER";
    /// The ledger's types and shards [default: ledger.toml beside the config file].
    pub const LEDGER_CONFIG: &str = "FAAS_PLATFORM_LEDGER_CONFIG";
    /// How often the meter reads every instance (`10s` by default; `off` stops metering).
    pub const METER_INTERVAL: &str = "FAAS_PLATFORM_METER_INTERVAL";
    /// The SMTP relay invoices are mailed through, `HOST:PORT` (no mail when unset).
    pub const SMTP_RELAY: &str = "FAAS_PLATFORM_SMTP_RELAY";
    /// The sender of those mails [default: billing@faas.local].
    pub const SMTP_FROM: &str = "FAAS_PLATFORM_SMTP_FROM";
    /// A URL told of every invoice that closes (POST, JSON).
    pub const BILLING_WEBHOOK: &str = "FAAS_PLATFORM_BILLING_WEBHOOK";
    /// The key the webhook's body is signed with (`X-Faas-Signature: sha256=<hex>`).
    pub const BILLING_WEBHOOK_SECRET: &str = "FAAS_PLATFORM_BILLING_WEBHOOK_SECRET";
    /// External database servers by admin URL (an engine without one is managed), and the
    /// address services reach each at when not the admin URL's.
    pub const POSTGRESQL_ADMIN_URL: &str = "FAAS_PLATFORM_POSTGRESQL_ADMIN_URL";
    pub const POSTGRESQL_SERVICE_ADDR: &str = "FAAS_PLATFORM_POSTGRESQL_SERVICE_ADDR";
    pub const REDIS_ADMIN_URL: &str = "FAAS_PLATFORM_REDIS_ADMIN_URL";
    pub const REDIS_SERVICE_ADDR: &str = "FAAS_PLATFORM_REDIS_SERVICE_ADDR";
    pub const RABBITMQ_ADMIN_URL: &str = "FAAS_PLATFORM_RABBITMQ_ADMIN_URL";
    pub const RABBITMQ_SERVICE_ADDR: &str = "FAAS_PLATFORM_RABBITMQ_SERVICE_ADDR";
    /// The RabbitMQ task launches go through, `amqp://USER:PASSWORD@HOST:PORT/VHOST`.
    pub const TASKS_AMQP_URL: &str = "FAAS_PLATFORM_TASKS_AMQP_URL";
    /// What runs instances: `docker` or `kubernetes`.
    pub const RUNTIME: &str = "FAAS_PLATFORM_RUNTIME";
    /// The Kubernetes runtime's kubeconfig, context and namespace.
    pub const KUBECONFIG: &str = "FAAS_PLATFORM_KUBECONFIG";
    pub const KUBE_CONTEXT: &str = "FAAS_PLATFORM_KUBE_CONTEXT";
    pub const NAMESPACE: &str = "FAAS_PLATFORM_NAMESPACE";
    /// Where the cluster's nodes take images from: `docker`, `kind`, `k3d` or `registry`.
    pub const IMAGES: &str = "FAAS_PLATFORM_IMAGES";
    /// The registry the platform pushes releases' images to.
    pub const REGISTRY: &str = "FAAS_PLATFORM_REGISTRY";
    /// A namespace per tenant on Kubernetes (`true`).
    pub const NAMESPACE_PER_TENANT: &str = "FAAS_PLATFORM_NAMESPACE_PER_TENANT";
    /// Log filter, e.g. `info,faas_platform=debug`.
    pub const LOG: &str = "FAAS_LOG";
    /// Testing hook: `KIND[:N]` aborts the daemon right after persisting the N-th (default
    /// first) deployment step of that kind, to prove crash recovery. Never set in production.
    pub const CRASH_AT: &str = "FAAS_PLATFORM_CRASH_AT";
}

/// The config file, every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub router: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub domain: Option<String>,
    pub network: Option<String>,
    /// Seconds the router gives open requests at shutdown.
    pub shutdown_drain_s: Option<u64>,
    pub upstream: Option<Upstream>,
    /// Bytes of logs kept per service and environment.
    pub logs_max_bytes: Option<u64>,
    /// Seconds logs are kept.
    pub logs_max_age_s: Option<u64>,
    /// The ledger's PostgreSQL as one shard (`postgres://…`).
    pub ledger: Option<String>,
    /// The ledger's types and shards (TOML).
    pub ledger_config: Option<PathBuf>,
    /// How often the meter reads every instance (`10s`, `1s`, or `off`).
    pub meter_interval: Option<String>,
    /// The SMTP relay invoices are mailed through, `HOST:PORT`.
    pub smtp_relay: Option<String>,
    pub smtp_from: Option<String>,
    /// A URL told of every invoice that closes, and the key its body is signed with.
    pub billing_webhook: Option<String>,
    pub billing_webhook_secret: Option<String>,
    /// External database servers, by engine (`[databases.postgresql] admin_url = …`).
    pub databases: Option<crate::databases::servers::ServersConfig>,
    /// The RabbitMQ task launches go through (`amqp://…`).
    pub tasks_amqp_url: Option<String>,
    /// What runs instances: `docker` (the default) or `kubernetes`.
    pub runtime: Option<RuntimeKind>,
    /// The Kubernetes runtime's cluster (`[kubernetes] kubeconfig, context, namespace`).
    pub kubernetes: Option<KubernetesFile>,
}

/// The `[kubernetes]` table of the config file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesFile {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub namespace: Option<String>,
    /// Where the nodes take images from: `docker` (the platform's engine), `kind`, `k3d` (loaded
    /// into their nodes) or `registry`.
    pub images: Option<crate::runtime::kubernetes::Images>,
    /// The registry the platform pushes releases' images to (`HOST[:PORT][/PATH]`).
    pub registry: Option<String>,
    /// A namespace per tenant, `<namespace>-<tenant>`, in place of one for the platform.
    pub namespace_per_tenant: Option<bool>,
}

/// What runs the platform's instances.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum RuntimeKind {
    /// Containers on the local Docker Engine.
    #[default]
    Docker,
    /// Pods on a Kubernetes cluster whose nodes take images from the local Docker Engine.
    Kubernetes,
}

/// How the router reaches an instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Upstream {
    /// Its address on the platform's bridge network: no extra hop (the default where the
    /// platform runs on the engine's host, as on Linux).
    #[default]
    ContainerIp,
    /// Its port published on 127.0.0.1 (for engines in a VM, such as Docker Desktop).
    Published,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub router: SocketAddr,
    pub data_dir: PathBuf,
    pub domain: String,
    pub network: String,
    pub shutdown_drain: Duration,
    pub upstream: Upstream,
    pub logs_max_bytes: u64,
    pub logs_max_age: Duration,
    /// The ledger's PostgreSQL as one shard; None: the ledger config's shards, or SQLite.
    pub ledger: Option<String>,
    /// The ledger's configuration file, and whether it was named (then it must exist).
    pub ledger_config: Option<(PathBuf, bool)>,
    /// How often the meter reads every instance; None: metering is off.
    pub meter_interval: Option<Duration>,
    /// Where invoices are told: mail, webhook.
    pub notify: crate::billing::notify::NotifyConfig,
    /// The external database servers; every other engine's server is managed.
    pub databases: crate::databases::servers::ServersConfig,
    /// The RabbitMQ task launches go through; None: the rabbitmq transport is off.
    pub tasks_amqp_url: Option<String>,
    pub runtime: RuntimeKind,
    /// The Kubernetes runtime's cluster; its namespace None: `faas-<platform id>`.
    pub kubernetes: KubernetesFile,
}

/// What flags and environment variables said (None: not given).
#[derive(Debug, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub router: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub domain: Option<String>,
    pub network: Option<String>,
    pub upstream: Option<Upstream>,
    pub config: Option<PathBuf>,
    pub ledger: Option<String>,
    pub ledger_config: Option<PathBuf>,
    pub meter_interval: Option<String>,
    /// External database servers given by flags or environment variables (these win over
    /// the config file's, engine by engine).
    pub databases: crate::databases::servers::ServersConfig,
    pub tasks_amqp_url: Option<String>,
    pub runtime: Option<RuntimeKind>,
    pub kubernetes: KubernetesFile,
}

/// `10s`, `500ms`, `1m` or `off`, from at least 100 ms to at most an hour.
pub fn parse_meter_interval(text: &str) -> anyhow::Result<Option<Duration>> {
    if text == "off" {
        return Ok(None);
    }
    let d = humantime::parse_duration(text).map_err(|e| {
        anyhow::anyhow!(
            "the meter interval `{text}` is not a duration ({e}): give e.g. `10s` or `1s`, or `off`"
        )
    })?;
    if d < Duration::from_millis(100) || d > Duration::from_secs(3600) {
        anyhow::bail!(
            "the meter interval `{text}` is out of range: give from `100ms` to `1h`, or `off`"
        );
    }
    Ok(Some(d))
}

pub fn default_data_dir() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("faas/platform")
}

fn default_config_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("faas/platform.toml"))
}

fn read_file(path: &Path, required: bool) -> anyhow::Result<FileConfig> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            Ok(FileConfig::default())
        }
        Err(e) => Err(anyhow::anyhow!(
            "cannot read the config file {}: {e}",
            path.display()
        )),
    }
}

impl Config {
    pub fn resolve(o: Overrides) -> anyhow::Result<Self> {
        let file = match &o.config {
            Some(path) => read_file(path, true)?,
            None => match default_config_file() {
                Some(path) => read_file(&path, false)?,
                None => FileConfig::default(),
            },
        };
        if let Some(url) = o.ledger.as_ref().or(file.ledger.as_ref())
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            anyhow::bail!(
                "the ledger `{url}` is not a PostgreSQL URL: give `postgres://USER@HOST:PORT/DATABASE`, or leave it out for the SQLite file in the data directory"
            );
        }
        let ledger_config = match o.ledger_config.or(file.ledger_config) {
            Some(path) => Some((path, true)),
            None => default_config_file()
                .and_then(|f| f.parent().map(|d| d.join("ledger.toml")))
                .map(|path| (path, false)),
        };
        let meter_interval = match o.meter_interval.or(file.meter_interval) {
            Some(text) => parse_meter_interval(&text)?,
            None => Some(Duration::from_secs(10)),
        };
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let notify = crate::billing::notify::NotifyConfig {
            smtp_relay: var(env_vars::SMTP_RELAY).or(file.smtp_relay),
            smtp_from: var(env_vars::SMTP_FROM)
                .or(file.smtp_from)
                .unwrap_or_else(|| "billing@faas.local".into()),
            webhook_url: var(env_vars::BILLING_WEBHOOK).or(file.billing_webhook),
            webhook_secret: var(env_vars::BILLING_WEBHOOK_SECRET).or(file.billing_webhook_secret),
        };
        let mut databases = file.databases.unwrap_or_default();
        databases.extend(o.databases);
        for (engine, server) in &databases {
            crate::databases::servers::check_external(*engine, server)?;
        }
        let tasks_amqp_url = o.tasks_amqp_url.or(file.tasks_amqp_url);
        if let Some(url) = &tasks_amqp_url
            && !(url.starts_with("amqp://") || url.starts_with("amqps://"))
        {
            anyhow::bail!(
                "the tasks broker `{url}` is not an AMQP URL: give `amqp://USER:PASSWORD@HOST:PORT/VHOST`"
            );
        }
        let runtime = o.runtime.or(file.runtime).unwrap_or_default();
        let upstream = o.upstream.or(file.upstream).unwrap_or_default();
        if runtime == RuntimeKind::Kubernetes && upstream == Upstream::Published {
            anyhow::bail!(
                "the Kubernetes runtime sends requests to pod addresses: leave out `upstream = \"published\"` (the router must reach pod IPs; run the platform inside the cluster when it cannot)"
            );
        }
        let file_kube = file.kubernetes.unwrap_or_default();
        let kubernetes = KubernetesFile {
            kubeconfig: o.kubernetes.kubeconfig.or(file_kube.kubeconfig),
            context: o.kubernetes.context.or(file_kube.context),
            namespace: o.kubernetes.namespace.or(file_kube.namespace),
            images: o.kubernetes.images.or(file_kube.images),
            registry: o.kubernetes.registry.or(file_kube.registry),
            namespace_per_tenant: o
                .kubernetes
                .namespace_per_tenant
                .or(file_kube.namespace_per_tenant),
        };
        let mut kubernetes = kubernetes;
        use crate::runtime::kubernetes::Images;
        match (kubernetes.images, &kubernetes.registry) {
            // A registry to push to means the nodes pull from it.
            (None, Some(_)) => kubernetes.images = Some(Images::Registry),
            (Some(other @ (Images::Docker | Images::Kind | Images::K3d)), Some(registry)) => {
                anyhow::bail!(
                    "the registry `{registry}` is for `--images registry`: with `--images {}` the nodes take images from the platform's Docker Engine",
                    format!("{other:?}").to_lowercase()
                )
            }
            _ => {}
        }
        if let Some(registry) = &kubernetes.registry
            && (registry.contains("://")
                || registry.contains(char::is_whitespace)
                || registry.is_empty())
        {
            anyhow::bail!(
                "the registry `{registry}` is not a registry address: give `HOST[:PORT][/PATH]`, e.g. `registry.example:5000/team`"
            );
        }
        if let Some(ns) = &kubernetes.namespace
            && !crate::runtime::kubernetes::is_dns_label(ns)
        {
            anyhow::bail!(
                "the namespace `{ns}` is not a DNS label: give lowercase letters, digits and `-`, at most 63, e.g. `faas`"
            );
        }
        let domain = o
            .domain
            .or(file.domain)
            .unwrap_or_else(|| "localhost".into());
        if domain.is_empty() || domain.contains(['/', ':', ' ']) {
            anyhow::bail!(
                "`{domain}` is not a domain: give a host name such as `localhost` or `apps.example.com`"
            );
        }
        Ok(Self {
            listen: o
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7700))),
            router: o
                .router
                .or(file.router)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7780))),
            data_dir: o
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(default_data_dir),
            domain: domain.to_ascii_lowercase(),
            network: o.network.or(file.network).unwrap_or_else(|| "faas".into()),
            shutdown_drain: Duration::from_secs(file.shutdown_drain_s.unwrap_or(10)),
            upstream,
            logs_max_bytes: std::env::var(env_vars::LOGS_MAX_BYTES)
                .ok()
                .and_then(|v| v.parse().ok())
                .or(file.logs_max_bytes)
                .unwrap_or(100 * 1000 * 1000),
            logs_max_age: Duration::from_secs(file.logs_max_age_s.unwrap_or(7 * 24 * 3600)),
            ledger: o.ledger.or(file.ledger),
            ledger_config,
            meter_interval,
            notify,
            databases,
            tasks_amqp_url,
            runtime,
            kubernetes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("platform.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\ndomain = \"apps.test\"\n",
        )
        .unwrap();
        let c = Config::resolve(Overrides {
            config: Some(file.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.domain, "apps.test");
        assert_eq!(c.router.port(), 7780);
        let c = Config::resolve(Overrides {
            config: Some(file),
            listen: Some("127.0.0.1:9100".parse().unwrap()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.listen.port(), 9100);
    }

    #[test]
    fn a_bad_config_file_is_an_error_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("platform.toml");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        let err = Config::resolve(Overrides {
            config: Some(file),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("platform.toml"), "{err}");
    }
}
