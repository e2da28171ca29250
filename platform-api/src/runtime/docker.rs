//! The Docker runtime (bollard): instances are containers on a dedicated bridge network,
//! labelled so the platform can find, adopt or remove them after a crash. When the engine does
//! not answer, calls fail with [`RuntimeError::Unavailable`] and a background task reconnects
//! with backoff while the daemon keeps serving. Nothing of bollard leaves this file.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{
    ContainerCreateBody, HostConfig, NetworkCreateRequest, PortBinding, RestartPolicy,
    RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ImportImageOptionsBuilder, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use faas_spec::api::DockerStatus;
use futures_util::StreamExt;

use super::{
    BoxStream, InstanceSpec, InstanceState, LABEL_ENV, LABEL_INSTANCE, LABEL_PLATFORM,
    LABEL_RELEASE, LABEL_SERVICE, LogChunk, PlatformInstance, Result, Runtime, RuntimeError,
    RuntimeEvent, Stats,
};

mod observe;
mod push;
mod runs;
mod servers;

/// How long any single Docker call may take before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

fn classify(e: DockerError) -> RuntimeError {
    match e {
        DockerError::HyperResponseError { .. }
        | DockerError::SocketNotFoundError(_)
        | DockerError::RequestTimeoutError
        | DockerError::IOError { .. } => RuntimeError::Unavailable(e.to_string()),
        other => RuntimeError::Docker(other.to_string()),
    }
}

fn is_not_found(e: &DockerError) -> bool {
    matches!(
        e,
        DockerError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

pub struct DockerRuntime {
    /// Itself, for the reconnecting task a failed call starts.
    this: Weak<DockerRuntime>,
    client: RwLock<Option<Docker>>,
    /// The id of the network instances join (ids are unambiguous where names may not be).
    network_id: RwLock<Option<String>>,
    status: RwLock<DockerStatus>,
    pub platform_id: String,
    pub network: String,
    /// Full container ids by the name they were asked by (for the cgroup files).
    full_ids: std::sync::Mutex<HashMap<String, String>>,
}

impl DockerRuntime {
    /// Connects once now and, if the engine does not answer, keeps trying in the background
    /// (1 s, 2 s, 4 s … up to 30 s between attempts).
    pub async fn start(platform_id: String, network: String) -> Arc<Self> {
        let runtime = Arc::new_cyclic(|this| Self {
            this: this.clone(),
            client: RwLock::new(None),
            network_id: RwLock::new(None),
            status: RwLock::new(DockerStatus {
                available: false,
                engine_id: None,
                version: None,
                error: Some("not connected yet".into()),
            }),
            platform_id,
            network,
            full_ids: Default::default(),
        });
        if runtime.try_connect().await.is_err() {
            let rt = runtime.clone();
            tokio::spawn(async move { rt.reconnect_loop().await });
        }
        runtime
    }

    async fn reconnect_loop(self: Arc<Self>) {
        let mut delay = Duration::from_secs(1);
        loop {
            tokio::time::sleep(delay).await;
            if self.try_connect().await.is_ok() {
                tracing::info!("connected to the Docker Engine");
                return;
            }
            delay = (delay * 2).min(Duration::from_secs(30));
        }
    }

    async fn try_connect(&self) -> Result<()> {
        let attempt = async {
            let docker = Docker::connect_with_local_defaults()?;
            // The engine may speak an older API than bollard's default: agree on one first.
            let docker = docker.negotiate_version().await?;
            let info = docker.info().await?;
            let version = docker.version().await?;
            Ok::<_, DockerError>((docker, info, version))
        };
        match tokio::time::timeout(Duration::from_secs(10), attempt).await {
            Ok(Ok((docker, info, version))) => {
                match ensure_network(&docker, &self.network).await {
                    Ok(id) => {
                        *self.network_id.write().unwrap_or_else(|p| p.into_inner()) = Some(id)
                    }
                    Err(e) => {
                        self.mark_down(&format!(
                            "cannot create the network `{}`: {e}",
                            self.network
                        ));
                        return Err(RuntimeError::Docker(e.to_string()));
                    }
                }
                *self.client.write().unwrap_or_else(|p| p.into_inner()) = Some(docker);
                *self.status.write().unwrap_or_else(|p| p.into_inner()) = DockerStatus {
                    available: true,
                    engine_id: info.id,
                    version: version.version,
                    error: None,
                };
                Ok(())
            }
            Ok(Err(e)) => {
                self.mark_down(&e.to_string());
                Err(RuntimeError::Unavailable(e.to_string()))
            }
            Err(_) => {
                self.mark_down("no answer within 10 s");
                Err(RuntimeError::Unavailable("no answer within 10 s".into()))
            }
        }
    }

    /// Every container (running or not) whose `label` is `value`.
    async fn labelled(
        &self,
        label: &str,
        value: &str,
    ) -> Result<Vec<bollard::models::ContainerSummary>> {
        let docker = self.docker()?;
        let filters = HashMap::from([("label", vec![format!("{label}={value}")])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        self.timed(docker.list_containers(Some(options))).await
    }

    /// Creates a container of that name; false when one of the name was there already (made
    /// by another caller, or by an earlier life of the daemon).
    async fn create_named(&self, name: &str, body: ContainerCreateBody) -> Result<bool> {
        let docker = self.docker()?;
        let image = body.image.clone().unwrap_or_default();
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        match tokio::time::timeout(CALL_TIMEOUT, docker.create_container(Some(options), body)).await
        {
            Ok(Ok(_)) => Ok(true),
            Ok(Err(DockerError::DockerResponseServerError {
                status_code: 409, ..
            })) => Ok(false),
            Ok(Err(e)) if is_not_found(&e) => Err(RuntimeError::NoSuchImage(image)),
            Ok(Err(e)) => self.failed(e),
            Err(_) => self.failed(DockerError::RequestTimeoutError),
        }
    }

    /// The network containers join: its id (ids are unambiguous where names may not be).
    fn network_mode(&self) -> String {
        self.network_id
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| self.network.clone())
    }

    fn mark_down(&self, why: &str) {
        let mut status = self.status.write().unwrap_or_else(|p| p.into_inner());
        status.available = false;
        status.error = Some(why.to_owned());
    }

    fn docker(&self) -> Result<Docker> {
        self.client
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| {
                RuntimeError::Unavailable(
                    self.status()
                        .error
                        .unwrap_or_else(|| "not connected".into()),
                )
            })
    }

    /// Notes a failed call: when the engine stopped answering, mark it down and reconnect.
    fn failed<T>(&self, e: DockerError) -> Result<T> {
        let e = classify(e);
        if let RuntimeError::Unavailable(why) = &e {
            let was_up = self
                .client
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .is_some();
            self.mark_down(why);
            if was_up && let Some(rt) = self.this.upgrade() {
                tokio::spawn(async move { rt.reconnect_loop().await });
            }
        }
        Err(e)
    }

    async fn timed<T>(
        &self,
        fut: impl Future<Output = std::result::Result<T, DockerError>>,
    ) -> Result<T> {
        match tokio::time::timeout(CALL_TIMEOUT, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => self.failed(e),
            Err(_) => self.failed(DockerError::RequestTimeoutError),
        }
    }
}

#[async_trait::async_trait]
impl Runtime for DockerRuntime {
    fn platform_id(&self) -> &str {
        &self.platform_id
    }

    fn status(&self) -> DockerStatus {
        self.status
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The image's ID (`sha256:…`) for an ID, digest or reference.
    async fn image_id(&self, reference: &str) -> Result<String> {
        let docker = self.docker()?;
        match tokio::time::timeout(CALL_TIMEOUT, docker.inspect_image(reference)).await {
            Ok(Ok(image)) => image
                .id
                .ok_or_else(|| RuntimeError::NoSuchImage(reference.to_owned())),
            Ok(Err(e)) if is_not_found(&e) => Err(RuntimeError::NoSuchImage(reference.to_owned())),
            // A name no image can have names no image either: the engine refuses it
            // (`invalid reference format`) or, for one that breaks its URL, redirects (301).
            Ok(Err(DockerError::DockerResponseServerError { status_code, .. }))
                if (300..500).contains(&status_code) =>
            {
                Err(RuntimeError::NoSuchImage(reference.to_owned()))
            }
            Ok(Err(e)) => self.failed(e),
            Err(_) => self.failed(DockerError::RequestTimeoutError),
        }
    }

    /// Creates and starts an instance's container; returns its id and its state just after the
    /// start (a container that exits at once has no published port).
    async fn start_instance(&self, spec: &InstanceSpec<'_>) -> Result<(String, InstanceState)> {
        let docker = self.docker()?;
        let name = spec.container_name();
        let m = spec.manifest;
        let port_key = format!("{}/tcp", m.run.port);

        let env: Vec<String> = spec
            .environment()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();

        let labels = HashMap::from([
            (LABEL_PLATFORM.to_owned(), self.platform_id.clone()),
            (LABEL_SERVICE.to_owned(), spec.service.to_owned()),
            (LABEL_ENV.to_owned(), spec.env.to_owned()),
            (LABEL_RELEASE.to_owned(), spec.release_id.to_owned()),
            (LABEL_INSTANCE.to_owned(), spec.instance_id.to_owned()),
        ]);
        let host_config = HostConfig {
            port_bindings: Some(HashMap::from([(
                port_key.clone(),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(String::new()),
                }]),
            )])),
            nano_cpus: Some((m.size.cpu * 1e9).round() as i64),
            memory: Some(m.size.memory.bytes() as i64),
            // No restart until the instance has passed its health gate: an exit during the gate
            // stays visible, with its exit code. `keep_running` turns restarts on afterwards.
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::NO),
                maximum_retry_count: None,
            }),
            network_mode: Some(self.network_mode()),
            init: Some(true),
            extra_hosts: (!spec.hosts.is_empty()).then(|| {
                spec.hosts
                    .iter()
                    .map(|(host, ip)| format!("{host}:{ip}"))
                    .collect()
            }),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(spec.image_id.to_owned()),
            cmd: (!m.run.command.is_empty()).then(|| m.run.command.clone()),
            env: Some(env),
            labels: Some(labels),
            exposed_ports: Some(vec![port_key.clone()]),
            host_config: Some(host_config),
            ..Default::default()
        };

        // A container of this name left by a crash between create and record: replace it.
        let _ = self.remove(&name).await;
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = self
            .timed(docker.create_container(Some(options), body))
            .await?;
        self.timed(docker.start_container(&created.id, None))
            .await?;
        let state = self.state(&created.id).await?;
        Ok((created.id, state))
    }

    /// From now on the engine restarts the container when it exits, unless the platform stops it.
    async fn keep_running(&self, container: &str) -> Result<()> {
        let docker = self.docker()?;
        let body = bollard::models::ContainerUpdateBody {
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            ..Default::default()
        };
        self.timed(docker.update_container(container, body)).await
    }

    async fn state(&self, container: &str) -> Result<InstanceState> {
        let docker = self.docker()?;
        let inspected =
            match tokio::time::timeout(CALL_TIMEOUT, docker.inspect_container(container, None))
                .await
            {
                Ok(Ok(c)) => c,
                Ok(Err(e)) if is_not_found(&e) => return Ok(InstanceState::default()),
                Ok(Err(e)) => return self.failed(e),
                Err(_) => return self.failed(DockerError::RequestTimeoutError),
            };
        let s = inspected.state.unwrap_or_default();
        let network_id = self
            .network_id
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let ip = inspected
            .network_settings
            .as_ref()
            .and_then(|n| n.networks.as_ref())
            .and_then(|nets| {
                nets.values()
                    .find(|e| network_id.is_some() && e.network_id == network_id)
                    .or_else(|| nets.values().next())
                    .and_then(|e| e.ip_address.as_deref())
                    .and_then(|ip| ip.parse().ok())
            });
        let host_port = inspected
            .network_settings
            .and_then(|n| n.ports)
            .and_then(|ports| {
                ports
                    .into_values()
                    .flatten()
                    .flatten()
                    .find_map(|b| b.host_port.and_then(|p| p.parse().ok()))
            });
        Ok(InstanceState {
            exists: true,
            running: s.running.unwrap_or(false),
            restarting: s.restarting.unwrap_or(false),
            // A restarting container counts as running; its exit code is still the last one's.
            exit_code: s
                .exit_code
                .filter(|_| !s.running.unwrap_or(false) || s.restarting.unwrap_or(false)),
            restart_count: inspected.restart_count.unwrap_or(0),
            oom_killed: s.oom_killed.unwrap_or(false),
            host_port,
            ip,
            started_at_us: s.started_at.as_deref().and_then(engine_time_us),
            finished_at_us: s.finished_at.as_deref().and_then(engine_time_us),
            error: s.error,
            stuck: false,
            rolled_out: None,
        })
    }

    async fn remove(&self, container: &str) -> Result<()> {
        self.forget_full_id(container);
        let docker = self.docker()?;
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match tokio::time::timeout(
            CALL_TIMEOUT,
            docker.remove_container(container, Some(options)),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) if is_not_found(&e) => Ok(()),
            Ok(Err(DockerError::DockerResponseServerError {
                status_code: 409, ..
            })) => Ok(()), // removal under way
            Ok(Err(e)) => self.failed(e),
            Err(_) => self.failed(DockerError::RequestTimeoutError),
        }
    }

    /// Stops a container (SIGTERM, then SIGKILL after `grace`) without removing it.
    async fn stop(&self, container: &str, grace: Duration) -> Result<()> {
        let docker = self.docker()?;
        let options = StopContainerOptionsBuilder::default()
            .t(grace.as_secs().max(1) as i32)
            .build();
        match tokio::time::timeout(
            grace + CALL_TIMEOUT,
            docker.stop_container(container, Some(options)),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) if is_not_found(&e) => Ok(()),
            Ok(Err(DockerError::DockerResponseServerError {
                status_code: 304, ..
            })) => Ok(()),
            Ok(Err(e)) => self.failed(e),
            Err(_) => self.failed(DockerError::RequestTimeoutError),
        }
    }

    async fn restart(&self, container: &str, grace: Duration) -> Result<()> {
        let docker = self.docker()?;
        let options = bollard::query_parameters::RestartContainerOptions {
            t: Some(grace.as_secs().max(1) as i32),
            signal: None,
        };
        match tokio::time::timeout(
            grace + CALL_TIMEOUT,
            docker.restart_container(container, Some(options)),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => self.failed(e),
            Err(_) => self.failed(DockerError::RequestTimeoutError),
        }
    }

    /// Every container this platform labelled, running or not.
    async fn list_instances(&self) -> Result<Vec<PlatformInstance>> {
        let list = self.labelled(LABEL_PLATFORM, &self.platform_id).await?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let labels = c.labels.unwrap_or_default();
                let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
                Some(PlatformInstance {
                    id: c.id?,
                    name: c
                        .names
                        .and_then(|n| n.first().cloned())
                        .unwrap_or_default()
                        .trim_start_matches('/')
                        .to_owned(),
                    service: label(LABEL_SERVICE),
                    env: label(LABEL_ENV),
                    release: label(LABEL_RELEASE),
                    instance: label(LABEL_INSTANCE),
                    running: c.state.map(|s| s.to_string() == "running").unwrap_or(false),
                })
            })
            .collect())
    }

    /// Loads a `docker save` tarball; returns what the engine reported loading.
    async fn load_image(&self, tarball: &std::path::Path) -> Result<Vec<String>> {
        let docker = self.docker()?;
        let file = tokio::fs::File::open(tarball)
            .await
            .map_err(|e| RuntimeError::Docker(e.to_string()))?;
        let stream = tokio_util::io::ReaderStream::new(file);
        let options = ImportImageOptionsBuilder::default().quiet(true).build();
        let mut progress = docker.import_image_stream(options, stream, None);
        let mut loaded = Vec::new();
        while let Some(item) = progress.next().await {
            match item {
                Ok(info) => {
                    if let Some(line) = info.stream {
                        for part in line.lines() {
                            if let Some(name) = part
                                .strip_prefix("Loaded image: ")
                                .or_else(|| part.strip_prefix("Loaded image ID: "))
                            {
                                loaded.push(name.trim().to_owned());
                            }
                        }
                    }
                }
                Err(DockerError::DockerStreamError { error }) => {
                    return Err(RuntimeError::Docker(error));
                }
                Err(e) => return self.failed(e),
            }
        }
        Ok(loaded)
    }

    fn follow_logs(&self, container: &str, since: i64) -> Result<BoxStream<Result<LogChunk>>> {
        self.follow_container_logs(container, since)
    }

    async fn logs_tail(&self, container: &str, n: usize) -> Vec<String> {
        self.container_logs_tail(container, n).await
    }

    async fn stats(&self, container: &str) -> Result<Stats> {
        self.container_stats(container).await
    }

    fn events(&self) -> Result<BoxStream<Result<RuntimeEvent>>> {
        self.platform_events()
    }

    async fn start_run(&self, spec: &super::RunSpec<'_>) -> Result<(String, InstanceState)> {
        self.start_run_container(spec).await
    }

    async fn list_runs(&self) -> Result<Vec<(String, String)>> {
        self.run_containers().await
    }

    async fn cpu_now(&self, id: &str) -> Option<u64> {
        self.cgroup_cpu(id).await
    }

    async fn gateway(&self) -> Option<std::net::IpAddr> {
        let docker = self.docker().ok()?;
        let network = docker
            .inspect_network(
                &self.network_mode(),
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
            .ok()?;
        network
            .ipam?
            .config?
            .into_iter()
            .find_map(|c| c.gateway?.parse().ok())
    }

    async fn oom_kills(&self, id: &str) -> Option<u64> {
        self.cgroup_oom_kills(id).await
    }

    async fn ensure_server(&self, spec: &super::ServerSpec<'_>) -> Result<InstanceState> {
        self.ensure_server_container(spec).await
    }

    async fn exec(
        &self,
        id: &str,
        cmd: &[String],
        env: &[(String, String)],
        stdin: Option<Vec<u8>>,
    ) -> Result<super::ExecOutput> {
        self.exec_to_end(id, cmd, env, stdin).await
    }

    async fn prepare_exec(
        &self,
        id: &str,
        cmd: &[String],
        env: &[(String, String)],
        tty: bool,
    ) -> Result<String> {
        self.create_exec(id, cmd, env, tty, true).await
    }
}

/// The id of the network named `name`, created when absent. Daemons starting together may
/// each create one (the engine allows equal names): all of them then settle on the oldest, and
/// the others are removed where nothing uses them.
async fn ensure_network(docker: &Docker, name: &str) -> std::result::Result<String, DockerError> {
    let list = || async {
        let filters = HashMap::from([("name", vec![name.to_owned()])]);
        let options = ListNetworksOptionsBuilder::default()
            .filters(&filters)
            .build();
        let mut found: Vec<_> = docker
            .list_networks(Some(options))
            .await?
            .into_iter()
            .filter(|n| n.name.as_deref() == Some(name))
            .filter_map(|n| {
                Some((
                    n.created.map(|c| format!("{c:?}")).unwrap_or_default(),
                    n.id?,
                ))
            })
            .collect();
        found.sort();
        Ok::<_, DockerError>(found)
    };
    let mut found = list().await?;
    if found.is_empty() {
        let request = NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some("bridge".into()),
            labels: Some(HashMap::from([(
                "io.faas.network".to_owned(),
                "true".to_owned(),
            )])),
            ..Default::default()
        };
        match docker.create_network(request).await {
            Ok(_)
            | Err(DockerError::DockerResponseServerError {
                status_code: 409, ..
            }) => {}
            Err(e) => return Err(e),
        }
        found = list().await?;
    }
    let Some((_, keep)) = found.first().cloned() else {
        return Err(DockerError::DockerResponseServerError {
            status_code: 404,
            message: format!("network {name} vanished"),
        });
    };
    for (_, extra) in found.iter().skip(1) {
        let _ = docker.remove_network(extra).await;
    }
    Ok(keep)
}

/// Microseconds since the epoch of an engine time (RFC 3339 to the nanosecond); None for the
/// zero time the engine gives a container that never started or never finished.
fn engine_time_us(text: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339_weak(text).ok()?;
    let us = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_micros();
    i64::try_from(us).ok().filter(|us| *us > 0)
}

#[cfg(test)]
mod time_tests {
    #[test]
    fn engine_times_read_to_the_microsecond_and_the_zero_time_is_none() {
        assert_eq!(
            super::engine_time_us("2026-12-02T06:10:00.123456789Z"),
            Some(1_796_191_800_123_456)
        );
        assert_eq!(super::engine_time_us("0001-01-01T00:00:00Z"), None);
    }
}
