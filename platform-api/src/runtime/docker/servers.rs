//! The platform's own servers (managed database servers) and commands run in containers, on the
//! Docker Engine.

use std::collections::HashMap;

use bollard::container::LogOutput;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, ExecConfig, HealthConfig, HostConfig, PortBinding, RestartPolicy,
    RestartPolicyNameEnum,
};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::DockerRuntime;
use crate::runtime::{
    ExecOutput, InstanceState, LABEL_SERVER, LABEL_SERVER_PLATFORM, Result, Runtime, RuntimeError,
    ServerSpec,
};

impl DockerRuntime {
    /// Adopts the server's container when it exists (starting it if it is stopped), else
    /// creates it: on the platform's network, its port published on loopback, its data in the
    /// named volume, restarted unless stopped, checked by the engine with `spec.health`.
    pub(super) async fn ensure_server_container(
        &self,
        spec: &ServerSpec<'_>,
    ) -> Result<InstanceState> {
        let docker = self.docker()?;
        let state = self.state(spec.name).await?;
        if state.exists {
            if !state.running {
                self.timed(docker.start_container(spec.name, None)).await?;
            }
            return self.state(spec.name).await;
        }
        let port_key = format!("{}/tcp", spec.port);
        let seconds = |s: i64| s * 1_000_000_000;
        let body = ContainerCreateBody {
            image: Some(spec.image.to_owned()),
            // A fixed host name: RabbitMQ keeps a node's data under it.
            hostname: Some(spec.name.to_owned()),
            cmd: spec.cmd.clone(),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(HashMap::from([
                (LABEL_SERVER_PLATFORM.to_owned(), self.platform_id.clone()),
                (LABEL_SERVER.to_owned(), spec.engine.to_owned()),
            ])),
            exposed_ports: Some(vec![port_key.clone()]),
            stop_signal: spec.stop_signal.map(str::to_owned),
            healthcheck: Some(HealthConfig {
                test: Some(
                    std::iter::once("CMD".to_owned())
                        .chain(spec.health.iter().cloned())
                        .collect(),
                ),
                interval: Some(seconds(5)),
                timeout: Some(seconds(5)),
                retries: Some(3),
                start_period: Some(seconds(30)),
                start_interval: None,
            }),
            host_config: Some(HostConfig {
                binds: Some(vec![format!("{}:{}", spec.volume, spec.data_path)]),
                port_bindings: Some(HashMap::from([(
                    port_key,
                    Some(vec![PortBinding {
                        host_ip: Some("127.0.0.1".into()),
                        host_port: Some(String::new()),
                    }]),
                )])),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                network_mode: Some(self.network_mode()),
                ..Default::default()
            }),
            ..Default::default()
        };
        // Made by another caller meanwhile: theirs is adopted.
        self.create_named(spec.name, body).await?;
        self.timed(docker.start_container(spec.name, None)).await?;
        self.state(spec.name).await
    }

    pub(super) async fn create_exec(
        &self,
        container: &str,
        cmd: &[String],
        env: &[(String, String)],
        tty: bool,
        stdin: bool,
    ) -> Result<String> {
        let docker = self.docker()?;
        let config = ExecConfig {
            attach_stdin: Some(stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(tty),
            env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            cmd: Some(cmd.to_vec()),
            ..Default::default()
        };
        Ok(self.timed(docker.create_exec(container, config)).await?.id)
    }

    /// Runs a command to its end: its input written then closed, its outputs collected.
    pub(super) async fn exec_to_end(
        &self,
        container: &str,
        cmd: &[String],
        env: &[(String, String)],
        stdin: Option<Vec<u8>>,
    ) -> Result<ExecOutput> {
        let docker = self.docker()?;
        let id = self
            .create_exec(container, cmd, env, false, stdin.is_some())
            .await?;
        let started = docker
            .start_exec(
                &id,
                Some(StartExecOptions {
                    detach: false,
                    tty: false,
                    output_capacity: None,
                }),
            )
            .await;
        let (mut output, mut input) = match started {
            Ok(StartExecResults::Attached { output, input }) => (output, input),
            Ok(StartExecResults::Detached) => {
                return Err(RuntimeError::Docker("the command did not attach".into()));
            }
            Err(e) => return self.failed(e),
        };
        let feed = async move {
            if let Some(bytes) = stdin {
                // A command that exits without reading it all closes the pipe: not an error.
                let _ = input.write_all(&bytes).await;
            }
            let _ = input.shutdown().await;
        };
        let collect = async {
            let mut out = ExecOutput::default();
            while let Some(chunk) = output.next().await {
                match chunk {
                    Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                        out.stdout.extend_from_slice(&message)
                    }
                    Ok(LogOutput::StdErr { message }) => out.stderr.extend_from_slice(&message),
                    Ok(LogOutput::StdIn { .. }) => {}
                    Err(e) => return Err(RuntimeError::Docker(e.to_string())),
                }
            }
            Ok(out)
        };
        let ((), out) = tokio::join!(feed, collect);
        let mut out = out?;
        let inspected = self.timed(docker.inspect_exec(&id)).await?;
        out.code = inspected.exit_code.unwrap_or(-1);
        Ok(out)
    }
}
