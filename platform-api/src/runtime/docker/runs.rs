//! One-off runs on the Docker Engine: a container per run, named and labelled after it.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, HostConfig, RestartPolicy, RestartPolicyNameEnum};

use super::DockerRuntime;
use crate::runtime::{InstanceState, LABEL_RUN, LABEL_RUN_PLATFORM, Result, RunSpec, Runtime};

impl DockerRuntime {
    pub(super) async fn start_run_container(
        &self,
        spec: &RunSpec<'_>,
    ) -> Result<(String, InstanceState)> {
        let docker = self.docker()?;
        let body = ContainerCreateBody {
            image: Some(spec.image.to_owned()),
            cmd: (!spec.command.is_empty()).then(|| spec.command.to_vec()),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(HashMap::from([
                (LABEL_RUN.to_owned(), spec.run_id.to_owned()),
                (LABEL_RUN_PLATFORM.to_owned(), self.platform_id.clone()),
            ])),
            host_config: Some(HostConfig {
                nano_cpus: Some((spec.cpu * 1e9).round() as i64),
                memory: Some(spec.memory as i64),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::NO),
                    maximum_retry_count: None,
                }),
                // Off the platform's network, the engine's default bridge.
                network_mode: spec.platform_network.then(|| self.network_mode()),
                init: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        // A container of its name was made by an earlier life of the daemon: it is started
        // below only if it never ran.
        match self.create_named(spec.name, body).await {
            Ok(true) => {}
            Ok(false) => {
                let state = self.state(spec.name).await?;
                if state.started_at_us.is_some() {
                    return Ok((spec.name.to_owned(), state));
                }
            }
            Err(e) => return Err(e),
        }
        self.timed(docker.start_container(spec.name, None)).await?;
        let state = self.state(spec.name).await?;
        Ok((spec.name.to_owned(), state))
    }

    pub(super) async fn run_containers(&self) -> Result<Vec<(String, String)>> {
        let list = self.labelled(LABEL_RUN_PLATFORM, &self.platform_id).await?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let run = c.labels.as_ref()?.get(LABEL_RUN)?.clone();
                Some((run, c.id?))
            })
            .collect())
    }
}

/// Where the kernel keeps a container's CPU time, by cgroup version and Docker's cgroup driver.
fn cgroup_files(id: &str) -> [String; 6] {
    [
        format!("/sys/fs/cgroup/cpuacct/docker/{id}/cpuacct.usage"),
        format!("/sys/fs/cgroup/cpu,cpuacct/docker/{id}/cpuacct.usage"),
        format!("/sys/fs/cgroup/cpuacct/system.slice/docker-{id}.scope/cpuacct.usage"),
        format!("/sys/fs/cgroup/system.slice/docker-{id}.scope/cpu.stat"),
        format!("/sys/fs/cgroup/docker/{id}/cpu.stat"),
        format!("/sys/fs/cgroup/cpu,cpuacct/system.slice/docker-{id}.scope/cpuacct.usage"),
    ]
}

/// Where the kernel counts a container's OOM kills, by cgroup version and Docker's cgroup driver.
fn oom_files(id: &str) -> [String; 4] {
    [
        format!("/sys/fs/cgroup/memory/docker/{id}/memory.oom_control"),
        format!("/sys/fs/cgroup/memory/system.slice/docker-{id}.scope/memory.oom_control"),
        format!("/sys/fs/cgroup/system.slice/docker-{id}.scope/memory.events"),
        format!("/sys/fs/cgroup/docker/{id}/memory.events"),
    ]
}

/// The `oom_kill` counter of v1's `memory.oom_control` or v2's `memory.events`.
fn parse_oom_kills(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
}

/// CPU nanoseconds from a cgroup file: v1's `cpuacct.usage` (ns), v2's `cpu.stat` (`usage_usec`).
fn parse_cpu(path: &str, text: &str) -> Option<u64> {
    if path.ends_with("cpu.stat") {
        text.lines()
            .find_map(|l| l.strip_prefix("usage_usec "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|us| us * 1000)
    } else {
        text.trim().parse().ok()
    }
}

impl DockerRuntime {
    /// A running container's CPU time from the host's cgroup files (the daemon on the engine's
    /// host); None elsewhere.
    pub(super) async fn cgroup_cpu(&self, name: &str) -> Option<u64> {
        let id = self.full_id(name).await?;
        for path in cgroup_files(&id) {
            if let Ok(text) = tokio::fs::read_to_string(&path).await {
                return parse_cpu(&path, &text);
            }
        }
        None
    }

    /// A container's full id, kept once asked.
    async fn full_id(&self, name: &str) -> Option<String> {
        let known = self
            .full_ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned();
        let id = match known {
            Some(id) => id,
            None => {
                let docker = self.docker().ok()?;
                let id = docker.inspect_container(name, None).await.ok()?.id?;
                self.full_ids
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(name.to_owned(), id.clone());
                id
            }
        };
        Some(id)
    }

    /// A running container's OOM kills so far, from the host's cgroup files.
    pub(super) async fn cgroup_oom_kills(&self, name: &str) -> Option<u64> {
        let id = self.full_id(name).await?;
        for path in oom_files(&id) {
            if let Ok(text) = tokio::fs::read_to_string(&path).await {
                return parse_oom_kills(&text);
            }
        }
        None
    }

    /// Forgets what was kept of a container that is gone.
    pub(super) fn forget_full_id(&self, name: &str) {
        self.full_ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn oom_kills_read_from_either_cgroup_version() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        let v2 = "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(super::parse_oom_kills(v1), Some(2));
        assert_eq!(super::parse_oom_kills(v2), Some(1));
        assert_eq!(super::parse_oom_kills("under_oom 0\n"), None);
    }

    #[test]
    fn cpu_time_reads_from_either_cgroup_version() {
        assert_eq!(
            super::parse_cpu("/x/cpuacct.usage", "123456\n"),
            Some(123_456)
        );
        assert_eq!(
            super::parse_cpu("/x/cpu.stat", "usage_usec 42\nuser_usec 40\n"),
            Some(42_000)
        );
        assert_eq!(super::parse_cpu("/x/cpu.stat", "nothing"), None);
    }
}
