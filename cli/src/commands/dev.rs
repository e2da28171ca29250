//! `faas service dev [--watch]`: builds the service and runs it on the local Docker Engine in
//! the foreground with its app.toml environment; prints its URL, streams its output, and on
//! Ctrl-C stops and removes what it started. `--watch` rebuilds and restarts on source changes.
//! Its databases run on servers of its own ([`super::dev_databases`]), given under the same
//! variable names as on the platform.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    WaitContainerOptionsBuilder,
};
use faas_spec::{Manifest, ManifestFile};
use futures_util::StreamExt;

use crate::docker::{self, BuildRequest, DockerIgnore};
use crate::error::{CliError, CliResult};
use crate::printer::Printer;
use crate::project;

/// The label on containers `faas service dev` starts.
pub const LABEL: &str = "io.faas.dev";

pub fn run(
    printer: &Printer,
    manifest: Option<&Path>,
    env: &str,
    watch: bool,
    deps: super::dev_dependencies::DevDependencies,
) -> CliResult {
    let path = project::manifest_path(manifest)?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let rt = docker::runtime()?;
    rt.block_on(async {
        let d = docker::connect().await?;
        let port = free_port()?;
        let mut session = Session {
            printer,
            docker: d,
            dir: dir.clone(),
            path: path.clone(),
            env: env.to_owned(),
            port,
            container: None,
            databases: None,
            deps,
        };
        let result = session.serve(watch).await;
        session.remove().await;
        if let Some(dbs) = &session.databases {
            dbs.stop(&session.docker).await;
        }
        result
    })
}

fn free_port() -> CliResult<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| CliError::failed(format!("cannot find a free port: {e}"), None))
}

struct Session<'a> {
    printer: &'a Printer,
    docker: Docker,
    dir: PathBuf,
    path: PathBuf,
    env: String,
    port: u16,
    container: Option<String>,
    databases: Option<super::dev_databases::DevDatabases>,
    /// The dependencies' URLs in the environment of `--deps-from`, and their hosts.
    deps: super::dev_dependencies::DevDependencies,
}

impl Session<'_> {
    fn manifest(&self) -> CliResult<Manifest> {
        let file = ManifestFile::load(&self.path)?;
        file.effective(Some(&self.env))
            .map_err(|r| CliError::Manifest(Box::new(r)))
    }

    async fn build(&self, m: &Manifest) -> CliResult<String> {
        let tag = format!("faas/{}:dev", m.name);
        let context = self.dir.join(m.build.context());
        self.printer.status("Building", &tag);
        docker::build(
            self.printer,
            &self.docker,
            BuildRequest {
                context: &context,
                dockerfile: m.build.dockerfile(),
                tag: &tag,
                args: m.build.args.clone().into_iter().collect(),
                target: m.build.target.as_deref(),
                no_cache: false,
            },
        )
        .await
    }

    async fn start(&mut self, m: &Manifest, image: &str) -> CliResult {
        let port_key = format!("{}/tcp", m.run.port);
        let mut env: Vec<String> = m.run.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.push(format!("PORT={}", m.run.port));
        env.push(format!("FAAS_SERVICE={}", m.name));
        env.push(format!("FAAS_ENV={}", self.env));
        if self.databases.is_none() {
            let dbs =
                super::dev_databases::DevDatabases::start(self.printer, &self.docker, m).await?;
            self.databases = Some(dbs);
        }
        let dbs = self.databases.as_ref();
        env.extend(
            dbs.into_iter()
                .flat_map(|d| d.env.iter().map(|(k, v)| format!("{k}={v}"))),
        );
        env.extend(self.deps.env.iter().map(|(k, v)| format!("{k}={v}")));
        let network = dbs.and_then(|d| d.network.clone());
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            cmd: (!m.run.command.is_empty()).then(|| m.run.command.clone()),
            env: Some(env),
            labels: Some(HashMap::from([(LABEL.to_owned(), m.name.to_string())])),
            exposed_ports: Some(vec![port_key.clone()]),
            host_config: Some(HostConfig {
                port_bindings: Some(HashMap::from([(
                    port_key,
                    Some(vec![PortBinding {
                        host_ip: Some("127.0.0.1".into()),
                        host_port: Some(self.port.to_string()),
                    }]),
                )])),
                nano_cpus: Some((m.size.cpu * 1e9).round() as i64),
                memory: Some(m.size.memory.bytes() as i64),
                init: Some(true),
                network_mode: network,
                extra_hosts: (!self.deps.hosts.is_empty()).then(|| self.deps.hosts.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let name = format!("faas-dev-{}-{}", m.name, std::process::id());
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| CliError::failed(format!("cannot create the container: {e}"), None))?;
        self.container = Some(created.id.clone());
        self.docker
            .start_container(&created.id, None)
            .await
            .map_err(|e| CliError::failed(format!("cannot start the container: {e}"), None))?;
        Ok(())
    }

    async fn remove(&mut self) {
        if let Some(id) = self.container.take() {
            let options = RemoveContainerOptionsBuilder::default().force(true).build();
            let _ = self.docker.remove_container(&id, Some(options)).await;
        }
    }

    async fn serve(&mut self, watch: bool) -> CliResult {
        let (tx, mut changes) = tokio::sync::mpsc::unbounded_channel::<()>();
        let _watcher = if watch {
            Some(watch_sources(&self.dir, tx)?)
        } else {
            None
        };
        let mut first = true;
        loop {
            let m = self.manifest()?;
            let image = self.build(&m).await?;
            self.remove().await;
            self.start(&m, &image).await?;
            let url = format!("http://127.0.0.1:{}", self.port);
            if first {
                self.printer.status(
                    "Running",
                    format!(
                        "{} at {url} (Ctrl-C stops it{})",
                        m.name,
                        if watch { "; changes rebuild it" } else { "" }
                    ),
                );
                self.printer.result(&url);
                let _ = std::io::stdout().flush();
                first = false;
            } else {
                self.printer
                    .status("Restarted", format!("{} at {url}", m.name));
            }
            let id = self.container.clone().unwrap_or_default();
            let logs = tokio::spawn(stream_logs(self.docker.clone(), id.clone()));
            let mut wait = self
                .docker
                .wait_container(&id, Some(WaitContainerOptionsBuilder::default().build()));
            let outcome = tokio::select! {
                _ = tokio::signal::ctrl_c() => Outcome::Interrupted,
                exit = wait.next() => Outcome::Exited(match exit {
                    Some(Ok(r)) => r.status_code,
                    Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
                    _ => -1,
                }),
                _ = next_change(&mut changes) => Outcome::Changed,
            };
            logs.abort();
            match outcome {
                Outcome::Interrupted => {
                    self.printer.info("");
                    self.printer
                        .status("Stopped", format!("{} and removed its container", m.name));
                    return Err(CliError::Interrupted);
                }
                Outcome::Exited(code) if !watch => {
                    return Err(CliError::failed(
                        format!("{} exited with code {code}", m.name),
                        Some("its output is above".into()),
                    ));
                }
                Outcome::Exited(code) => {
                    self.printer.warn(format!(
                        "{} exited with code {code}; waiting for a change",
                        m.name
                    ));
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => return Err(CliError::Interrupted),
                        _ = next_change(&mut changes) => {}
                    }
                }
                Outcome::Changed => self.printer.status("Changed", "rebuilding"),
            }
        }
    }
}

enum Outcome {
    Interrupted,
    Exited(i64),
    Changed,
}

/// Waits for a change, then lets a burst of saves settle (300 ms of quiet).
async fn next_change(changes: &mut tokio::sync::mpsc::UnboundedReceiver<()>) {
    if changes.recv().await.is_none() {
        std::future::pending::<()>().await;
    }
    while let Ok(Some(())) = tokio::time::timeout(Duration::from_millis(300), changes.recv()).await
    {
    }
}

fn watch_sources(
    dir: &Path,
    tx: tokio::sync::mpsc::UnboundedSender<()>,
) -> CliResult<notify::RecommendedWatcher> {
    use notify::{RecursiveMode, Watcher};
    let root = dir.to_path_buf();
    let ignore = DockerIgnore::load(dir);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if matches!(event.kind, notify::EventKind::Access(_)) {
            return;
        }
        let relevant = event.paths.iter().any(|p| {
            let Ok(rel) = p.strip_prefix(&root) else {
                return false;
            };
            let rel = rel.to_string_lossy().replace('\\', "/");
            let noise = rel.split('/').any(|part| {
                part == ".git" || part == "target" || part == "__pycache__" || part.ends_with('~')
            });
            !noise && !ignore.excludes(&rel)
        });
        if relevant {
            let _ = tx.send(());
        }
    })
    .map_err(|e| CliError::failed(format!("cannot watch {}: {e}", dir.display()), None))?;
    watcher
        .watch(dir, RecursiveMode::Recursive)
        .map_err(|e| CliError::failed(format!("cannot watch {}: {e}", dir.display()), None))?;
    Ok(watcher)
}

async fn stream_logs(docker: Docker, id: String) {
    let options = LogsOptionsBuilder::default()
        .follow(true)
        .stdout(true)
        .stderr(true)
        .build();
    let mut stream = docker.logs(&id, Some(options));
    while let Some(Ok(chunk)) = stream.next().await {
        let _ = std::io::stderr().write_all(&chunk.into_bytes());
    }
}
