//! The databases of `faas service dev`: the same engines and variable names as on the platform,
//! on servers of the developer's own (`faas-dev-<service>-<engine>`, data in a volume of the
//! same name, kept across sessions), on a network of the service's own that the platform's
//! servers are not on. They are not published on any port: only the service reaches them, so
//! they need no password (PostgreSQL trusts the network; RabbitMQ's user is `dev`).

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, HostConfig, NetworkCreateRequest, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{CreateContainerOptionsBuilder, StopContainerOptionsBuilder};
use faas_spec::{Engine, Manifest};
use futures_util::StreamExt;

use crate::error::{CliError, CliResult};
use crate::printer::Printer;

fn failed(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError::failed(format!("{what}: {e}"), None)
}

/// The servers a dev session started, and the network the service joins.
pub struct DevDatabases {
    pub network: Option<String>,
    pub env: Vec<(String, String)>,
    servers: Vec<String>,
}

impl DevDatabases {
    /// Starts (or finds) a server per engine `m` uses and makes each database; returns the
    /// variables the service gets, named as on the platform.
    pub async fn start(printer: &Printer, docker: &Docker, m: &Manifest) -> CliResult<Self> {
        let mut out = Self {
            network: None,
            env: Vec::new(),
            servers: Vec::new(),
        };
        if m.databases.is_empty() {
            return Ok(out);
        }
        let service = m.name.as_str();
        let network = format!("faas-dev-{service}");
        let exists = docker
            .inspect_network(
                &network,
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
            .is_ok();
        if !exists {
            docker
                .create_network(NetworkCreateRequest {
                    name: network.clone(),
                    driver: Some("bridge".into()),
                    ..Default::default()
                })
                .await
                .map_err(|e| failed("cannot create the dev network", e))?;
        }
        out.network = Some(network.clone());
        let mut urls: HashMap<String, String> = HashMap::new();
        for (name, db) in &m.databases {
            let host = format!("faas-dev-{service}-{}", db.engine.as_str());
            if !out.servers.contains(&host) {
                printer.status(
                    "Starting",
                    format!("{} for {service} ({host})", db.engine.as_str()),
                );
                server(docker, &host, &network, db.engine).await?;
                out.servers.push(host.clone());
            }
            let url = match db.engine {
                Engine::Postgresql => {
                    create_pg_database(docker, &host, name.as_str()).await?;
                    format!("postgres://postgres@{host}:5432/{name}")
                }
                Engine::Redis => format!("redis://{host}:6379/0"),
                Engine::Rabbitmq => format!("amqp://dev:dev@{host}:5672/%2f"),
                Engine::Mongodb => {
                    return Err(CliError::failed(
                        format!("database {name}: faas cannot run MongoDB"),
                        Some("remove it from app.toml, or run it yourself and set MONGODB_URL in [run.env]".into()),
                    ));
                }
            };
            urls.insert(name.to_string(), url);
        }
        for (var, name) in m.database_env_names() {
            out.env.push((var, urls[name.as_str()].clone()));
        }
        Ok(out)
    }

    /// Stops the servers (their data stays in their volumes for the next session).
    pub async fn stop(&self, docker: &Docker) {
        for server in &self.servers {
            let options = StopContainerOptionsBuilder::default().t(10).build();
            let _ = docker.stop_container(server, Some(options)).await;
        }
    }
}

/// The server of `engine`, its data in a volume of its name, started if it exists.
async fn server(docker: &Docker, name: &str, network: &str, engine: Engine) -> CliResult {
    if let Ok(c) = docker
        .inspect_container(
            name,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
    {
        if !c.state.and_then(|s| s.running).unwrap_or(false) {
            docker
                .start_container(
                    name,
                    None::<bollard::query_parameters::StartContainerOptions>,
                )
                .await
                .map_err(|e| failed(&format!("cannot start {name}"), e))?;
        }
        return Ok(());
    }
    let (image, data, env): (&str, &str, Vec<&str>) = match engine {
        Engine::Postgresql => (
            "postgres:15",
            "/var/lib/postgresql/data",
            vec!["POSTGRES_HOST_AUTH_METHOD=trust"],
        ),
        Engine::Redis => ("redis:7", "/data", vec![]),
        _ => (
            "rabbitmq:3-management",
            "/var/lib/rabbitmq",
            vec!["RABBITMQ_DEFAULT_USER=dev", "RABBITMQ_DEFAULT_PASS=dev"],
        ),
    };
    let body = ContainerCreateBody {
        image: Some(image.into()),
        hostname: Some(name.into()),
        env: Some(env.into_iter().map(str::to_owned).collect()),
        labels: Some(HashMap::from([(
            super::dev::LABEL.to_owned(),
            name.to_owned(),
        )])),
        stop_signal: (engine == Engine::Postgresql).then(|| "SIGINT".into()),
        host_config: Some(HostConfig {
            binds: Some(vec![format!("{name}:{data}")]),
            network_mode: Some(network.into()),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::NO),
                maximum_retry_count: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::default().name(name).build();
    docker
        .create_container(Some(options), body)
        .await
        .map_err(|e| {
            failed(
                &format!(
                    "cannot create {name} (is the {image} image here? `./install.sh` seeds it)"
                ),
                e,
            )
        })?;
    docker
        .start_container(
            name,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .map_err(|e| failed(&format!("cannot start {name}"), e))
}

/// Runs a command in a container; returns its exit code and output.
async fn exec(docker: &Docker, container: &str, cmd: &[&str]) -> CliResult<(i64, String)> {
    let created = docker
        .create_exec(
            container,
            CreateExecOptions {
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                cmd: Some(cmd.to_vec()),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| failed("cannot run a command in the dev database", e))?;
    let mut text = String::new();
    if let Ok(StartExecResults::Attached { mut output, .. }) =
        docker.start_exec(&created.id, None).await
    {
        while let Some(Ok(chunk)) = output.next().await {
            text.push_str(&chunk.to_string());
        }
    }
    let code = docker
        .inspect_exec(&created.id)
        .await
        .ok()
        .and_then(|i| i.exit_code)
        .unwrap_or(-1);
    Ok((code, text))
}

/// Waits for the PostgreSQL server (a minute at most), then makes the database unless it is
/// there.
async fn create_pg_database(docker: &Docker, host: &str, name: &str) -> CliResult {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while exec(
        docker,
        host,
        &["pg_isready", "-q", "-h", "127.0.0.1", "-U", "postgres"],
    )
    .await?
    .0 != 0
    {
        if tokio::time::Instant::now() >= deadline {
            return Err(CliError::failed(
                format!("{host} did not take connections within 60 s"),
                Some(format!("see `docker logs {host}`")),
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let query = format!("SELECT 1 FROM pg_database WHERE datname = '{name}'");
    let (_, found) = exec(
        docker,
        host,
        &["psql", "-h", "127.0.0.1", "-U", "postgres", "-tAc", &query],
    )
    .await?;
    if found.trim() != "1" {
        let (code, why) = exec(
            docker,
            host,
            &[
                "psql",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-c",
                &format!("CREATE DATABASE \"{name}\""),
            ],
        )
        .await?;
        if code != 0 && !why.contains("already exists") {
            return Err(CliError::failed(
                format!("cannot create the dev database {name}: {why}"),
                None,
            ));
        }
    }
    Ok(())
}
