//! The runtime seam: everything the deployer, reconciliation, logs (and later the meter, one-off
//! runs and cron) need from whatever runs instances, behind one trait. The Docker Engine
//! ([`docker::DockerRuntime`]) implements it today; a Kubernetes runtime plugs in beside it. No
//! engine's types cross this boundary: only the plain ones below.

pub mod docker;
pub mod kubernetes;

use std::pin::Pin;
use std::time::Duration;

use faas_spec::Manifest;
use faas_spec::api::DockerStatus;
use futures_util::Stream;

pub use docker::DockerRuntime;
pub use kubernetes::KubernetesRuntime;

/// Labels every instance carries, so that the platform can find, adopt or remove it after a
/// crash whatever runs it.
pub const LABEL_PLATFORM: &str = "io.faas.platform";
pub const LABEL_SERVICE: &str = "io.faas.service";
pub const LABEL_ENV: &str = "io.faas.env";
pub const LABEL_RELEASE: &str = "io.faas.release";
pub const LABEL_INSTANCE: &str = "io.faas.instance";
/// The labels of a server the platform runs for itself (a managed database server): which
/// platform, which engine. Not `io.faas.platform`: reconciliation leaves servers alone.
pub const LABEL_SERVER_PLATFORM: &str = "io.faas.server.platform";
pub const LABEL_SERVER: &str = "io.faas.server";

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("the Docker Engine does not answer: {0}")]
    Unavailable(String),
    #[error("no image `{0}` on the platform's Docker Engine")]
    NoSuchImage(String),
    #[error("Docker: {0}")]
    Docker(String),
    #[error("Kubernetes: {0}")]
    Kubernetes(String),
    /// What this runtime does not do (e.g. managed database servers on Kubernetes).
    #[error("{0}")]
    Unsupported(String),
}

pub type Result<T> = std::result::Result<T, RuntimeError>;

/// A stream a runtime hands out; it owns what it needs, so it outlives the call.
pub type BoxStream<T> = Pin<Box<dyn Stream<Item = T> + Send + 'static>>;

/// Everything a runtime needs to run one instance.
#[derive(Debug, Clone)]
pub struct InstanceSpec<'a> {
    /// Whose service it is (its owner): a runtime may keep tenants apart.
    pub tenant: &'a str,
    pub service: &'a str,
    pub env: &'a str,
    pub release_id: &'a str,
    pub instance_id: &'a str,
    pub image_id: &'a str,
    pub manifest: &'a Manifest,
    /// Extra variables (secrets, database URLs) injected beside the manifest's.
    pub extra_env: Vec<(String, String)>,
    /// Host names the instance resolves to an address (its dependencies' hosts to the router).
    pub hosts: Vec<(String, std::net::IpAddr)>,
}

impl InstanceSpec<'_> {
    pub fn container_name(&self) -> String {
        container_name(self.service, self.env, self.instance_id)
    }

    /// The instance's environment: the manifest's variables, the extra ones, then the
    /// platform's own (`PORT`, `FAAS_*`), in that order.
    pub fn environment(&self) -> Vec<(String, String)> {
        let m = self.manifest;
        let mut env: Vec<(String, String)> = m
            .run
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        env.extend(self.extra_env.iter().cloned());
        env.push(("PORT".into(), m.run.port.to_string()));
        env.push(("FAAS_SERVICE".into(), self.service.to_owned()));
        env.push(("FAAS_ENV".into(), self.env.to_owned()));
        env.push(("FAAS_RELEASE".into(), self.release_id.to_owned()));
        env.push(("FAAS_INSTANCE".into(), self.instance_id.to_owned()));
        env
    }
}

/// The name an instance's container (or pod) is given.
pub fn container_name(service: &str, env: &str, instance: &str) -> String {
    format!("faas-{service}-{env}-{instance}")
}

/// What the runtime says of an instance, in the terms the deployer needs.
#[derive(Debug, Clone, Default)]
pub struct InstanceState {
    pub exists: bool,
    pub running: bool,
    pub restarting: bool,
    pub exit_code: Option<i64>,
    pub restart_count: i64,
    pub oom_killed: bool,
    pub host_port: Option<u16>,
    /// The instance's address on the platform's network.
    pub ip: Option<std::net::IpAddr>,
    /// When its process last started and, once it stopped, finished (microseconds since the
    /// epoch): the meter opens and closes an instance's usage there.
    pub started_at_us: Option<i64>,
    pub finished_at_us: Option<i64>,
    pub error: Option<String>,
    /// The runtime cannot start it without a change (its image cannot be had, no node can run
    /// it): `error` says why.
    pub stuck: bool,
    /// Whether the runtime's own object says it is up (a Kubernetes Deployment rolled out by
    /// kubectl's rules); None where the runtime has no such notion (Docker).
    pub rolled_out: Option<bool>,
}

impl InstanceState {
    /// Why the instance is not serving, when it has exited or keeps restarting.
    pub fn failure(&self) -> Option<String> {
        if !self.exists {
            return Some("its container is gone".into());
        }
        if self.stuck {
            let why = self
                .error
                .as_deref()
                .unwrap_or("the runtime cannot start it");
            return Some(format!("it cannot start: {why}"));
        }
        if self.oom_killed {
            return Some("its container ran out of memory (raise size.memory)".into());
        }
        if self.restarting || self.restart_count > 0 || (!self.running && self.exit_code.is_some())
        {
            let code = self.exit_code.unwrap_or(-1);
            let mut why = format!("its container exited with code {code}");
            if let Some(err) = self.error.as_deref().filter(|e| !e.is_empty()) {
                why.push_str(&format!(" ({err})"));
            }
            return Some(why);
        }
        None
    }
}

/// An instance of this platform, as listed by its labels.
#[derive(Debug, Clone)]
pub struct PlatformInstance {
    pub id: String,
    pub name: String,
    pub service: String,
    pub env: String,
    pub release: String,
    pub instance: String,
    pub running: bool,
}

/// Which of an instance's outputs a piece of log came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// One piece of an instance's output as the runtime delivers it: a line, or part of a long one
/// (then it does not end in a newline), with the time the runtime stamped it (RFC 3339).
#[derive(Debug, Clone)]
pub struct LogChunk {
    pub stream: LogStream,
    pub ts: String,
    pub bytes: bytes::Bytes,
}

/// One reading of an instance's resource use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// When the runtime collected these figures (microseconds since the epoch), when it says.
    pub read_at_us: Option<i64>,
    /// CPU time used since the instance started, in nanoseconds (cumulative).
    pub cpu_ns: u64,
    /// Memory in use less the inactive file cache (the working set), in bytes.
    pub memory_bytes: u64,
    /// The instance's memory limit, in bytes, when it has one.
    pub memory_limit: Option<u64>,
}

/// The labels of a one-off run's container: which run, which platform. Not `io.faas.platform`:
/// reconciliation leaves runs to the runner.
pub const LABEL_RUN: &str = "io.faas.run";
pub const LABEL_RUN_PLATFORM: &str = "io.faas.run.platform";

/// Everything a runtime needs to run a one-off container to its end.
#[derive(Debug, Clone)]
pub struct RunSpec<'a> {
    pub run_id: &'a str,
    /// Whose run it is.
    pub tenant: &'a str,
    /// Its container's name (one per run, ever).
    pub name: &'a str,
    pub image: &'a str,
    /// In place of the image's command, when not empty.
    pub command: &'a [String],
    pub env: Vec<(String, String)>,
    pub cpu: f64,
    pub memory: u64,
    /// On the platform's network (a cron run reaches its databases), or off it (a tenant's
    /// function reaches no instance and no server of the platform).
    pub platform_network: bool,
}

/// A long-running server the platform runs for itself (a managed database server): one per
/// engine, its data in a named volume, restarted by the runtime whenever it exits.
#[derive(Debug, Clone)]
pub struct ServerSpec<'a> {
    /// Its container's name, also its host name on the platform's network.
    pub name: &'a str,
    pub engine: &'a str,
    pub image: &'a str,
    pub env: Vec<(String, String)>,
    /// Arguments in place of the image's command.
    pub cmd: Option<Vec<String>>,
    /// The named volume and where it is mounted.
    pub volume: &'a str,
    pub data_path: &'a str,
    pub port: u16,
    /// The signal that stops it cleanly, when not the image's.
    pub stop_signal: Option<&'a str>,
    /// The command the runtime checks its health with.
    pub health: Vec<String>,
}

/// What a command run in a container ended with.
#[derive(Debug, Clone, Default)]
pub struct ExecOutput {
    pub code: i64,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// What happened to one of the platform's instances, as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeEvent {
    /// The instance's runtime id (container id).
    pub id: String,
    /// The platform's instance id (its `io.faas.instance` label).
    pub instance: String,
    pub kind: RuntimeEventKind,
    /// Unix time in nanoseconds.
    pub at_ns: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeEventKind {
    Started,
    /// The process ended, with its exit code.
    Died {
        exit_code: Option<i64>,
    },
    /// The kernel's OOM killer ended a process of the instance.
    OomKilled,
    Other(String),
}

/// An instance the runtime now reaches at a new address (its pod was replaced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressChange {
    pub instance: String,
    pub ip: std::net::IpAddr,
}

/// What runs instances. Ids are the runtime's own (a container id); a name from
/// [`container_name`] is accepted wherever an id is.
#[async_trait::async_trait]
pub trait Runtime: Send + Sync {
    /// This platform's id, carried by every instance in the `io.faas.platform` label.
    fn platform_id(&self) -> &str;

    /// Whether the runtime answers, and what it is.
    fn status(&self) -> DockerStatus;

    /// The image's immutable id (`sha256:…`) for an id, digest or reference.
    async fn image_id(&self, reference: &str) -> Result<String>;

    /// Loads an image archive (`docker save`); returns what was loaded.
    async fn load_image(&self, tarball: &std::path::Path) -> Result<Vec<String>>;

    /// Creates and starts an instance; returns its id and its state just after the start.
    /// The instance is not restarted when it exits until [`Runtime::keep_running`].
    async fn start_instance(&self, spec: &InstanceSpec<'_>) -> Result<(String, InstanceState)>;

    /// From now on the runtime restarts the instance when it exits, unless the platform stops it.
    async fn keep_running(&self, id: &str) -> Result<()>;

    /// The instance's state; a missing instance is `exists: false`, not an error.
    async fn state(&self, id: &str) -> Result<InstanceState>;

    /// Stops an instance (SIGTERM, then SIGKILL after `grace`) without removing it.
    async fn stop(&self, id: &str, grace: Duration) -> Result<()>;

    /// Restarts an instance's process in place (SIGTERM, SIGKILL after `grace`, then a new
    /// start; on Kubernetes its pod is replaced).
    async fn restart(&self, id: &str, grace: Duration) -> Result<()>;

    /// Removes an instance; a missing one is fine.
    async fn remove(&self, id: &str) -> Result<()>;

    /// Stops, then removes.
    async fn stop_and_remove(&self, id: &str, grace: Duration) -> Result<()> {
        self.stop(id, grace).await?;
        self.remove(id).await
    }

    /// Follows an instance's output from `since` (Unix seconds) until it stops.
    fn follow_logs(&self, id: &str, since: i64) -> Result<BoxStream<Result<LogChunk>>>;

    /// The instance's last `n` lines of output, stdout and stderr merged (empty when the
    /// runtime does not answer).
    async fn logs_tail(&self, id: &str, n: usize) -> Vec<String>;

    /// One reading of the instance's resource use.
    async fn stats(&self, id: &str) -> Result<Stats>;

    /// Every instance this platform labelled, running or not.
    async fn list_instances(&self) -> Result<Vec<PlatformInstance>>;

    /// Instances that move to a new address while they run, as the runtime learns it; None where
    /// an instance keeps its address for its life (a Docker container).
    fn address_changes(&self) -> Option<BoxStream<AddressChange>> {
        None
    }

    /// The pod an instance runs in, where the runtime has pods (read from what it watches,
    /// without a call).
    fn placement(&self, _instance: &str) -> Option<faas_spec::api::PodPlacement> {
        None
    }

    /// What happens to this platform's instances from now on (starts, deaths, OOM kills).
    fn events(&self) -> Result<BoxStream<Result<RuntimeEvent>>>;

    /// Creates and starts a run's container; a container of its name already there (a crash
    /// between creating and recording it) is started if it never ran, else left as it is.
    /// Returns its id and state.
    async fn start_run(&self, spec: &RunSpec<'_>) -> Result<(String, InstanceState)>;

    /// The runs of this platform that have a container: (run id, container id).
    async fn list_runs(&self) -> Result<Vec<(String, String)>>;

    /// The CPU time (ns) a running container has used so far, read where the kernel keeps it,
    /// without the engine's collection delay; None where that cannot be read from here (the
    /// engine runs on another host, the container is gone).
    async fn cpu_now(&self, _id: &str) -> Option<u64> {
        None
    }

    /// How many processes of a running instance the kernel's OOM killer ended so far, read from
    /// its cgroup (`memory.events` on cgroup v2, `memory.oom_control` on v1); None where that
    /// cannot be read from here.
    async fn oom_kills(&self, _id: &str) -> Option<u64> {
        None
    }

    /// Where the platform's instances reach the host (the gateway of their network), where the
    /// router listens for their calls; None where they cannot (another runtime, no network yet).
    async fn gateway(&self) -> Option<std::net::IpAddr> {
        None
    }

    /// Makes sure a server runs as `spec` says: adopted when it exists (started if stopped),
    /// created otherwise. Returns its state.
    async fn ensure_server(&self, spec: &ServerSpec<'_>) -> Result<InstanceState>;

    /// Runs `cmd` in a running container with `env` added, `stdin` fed to it; waits for its end.
    async fn exec(
        &self,
        id: &str,
        cmd: &[String],
        env: &[(String, String)],
        stdin: Option<Vec<u8>>,
    ) -> Result<ExecOutput>;

    /// Prepares `cmd` in a running container for someone to start and attach to (an
    /// interactive session); returns the runtime's id of it.
    async fn prepare_exec(
        &self,
        id: &str,
        cmd: &[String],
        env: &[(String, String)],
        tty: bool,
    ) -> Result<String>;
}
