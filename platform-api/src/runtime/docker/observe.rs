//! What the Docker Engine says of containers while they run: their output (followed, or its
//! last lines), one reading of their resource use, and the platform's container events.

use std::collections::HashMap;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::query_parameters::{EventsOptionsBuilder, LogsOptionsBuilder, StatsOptionsBuilder};
use futures_util::StreamExt;

use super::{CALL_TIMEOUT, DockerRuntime, classify, engine_time_us};
use crate::runtime::{
    BoxStream, LABEL_INSTANCE, LABEL_PLATFORM, LogChunk, LogStream, Result, RuntimeError,
    RuntimeEvent, RuntimeEventKind, Stats,
};

impl DockerRuntime {
    /// Follows a container's output from `since` (Unix seconds), with the engine's timestamps,
    /// until the container stops.
    pub(super) fn follow_container_logs(
        &self,
        container: &str,
        since: i64,
    ) -> Result<BoxStream<Result<LogChunk>>> {
        let docker = self.docker()?;
        let options = LogsOptionsBuilder::default()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .timestamps(true)
            .since(i32::try_from(since).unwrap_or(i32::MAX))
            .build();
        let container = container.to_owned();
        Ok(Box::pin(async_stream::stream! {
            let mut inner = docker.logs(&container, Some(options));
            while let Some(item) = inner.next().await {
                let (stream, message) = match item {
                    Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                        (LogStream::Stdout, message)
                    }
                    Ok(LogOutput::StdErr { message }) => (LogStream::Stderr, message),
                    Ok(LogOutput::StdIn { .. }) => continue,
                    Err(e) => {
                        yield Err(classify(e));
                        return;
                    }
                };
                // With timestamps, every entry starts with its time and a space.
                let Some(space) = message.iter().position(|b| *b == b' ') else {
                    continue;
                };
                yield Ok(LogChunk {
                    stream,
                    ts: String::from_utf8_lossy(&message[..space]).into_owned(),
                    bytes: message.slice(space + 1..),
                });
            }
        }))
    }

    /// The container's last `n` lines of output, stdout and stderr merged.
    pub(super) async fn container_logs_tail(&self, container: &str, n: usize) -> Vec<String> {
        let Ok(docker) = self.docker() else {
            return Vec::new();
        };
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&n.to_string())
            .build();
        let mut stream = docker.logs(container, Some(options));
        let mut text = String::new();
        let collect = async {
            while let Some(Ok(chunk)) = stream.next().await {
                text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), collect).await;
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let skip = lines.len().saturating_sub(n);
        lines.into_iter().skip(skip).collect()
    }

    /// One sample of the engine's stats: cumulative CPU time and the working set (usage less
    /// inactive file pages, under cgroup v1 and v2 alike, as `docker stats` reports it).
    pub(super) async fn container_stats(&self, container: &str) -> Result<Stats> {
        let docker = self.docker()?;
        let options = StatsOptionsBuilder::default()
            .stream(false)
            .one_shot(true)
            .build();
        let mut stream = docker.stats(container, Some(options));
        let sample = match tokio::time::timeout(CALL_TIMEOUT, stream.next()).await {
            Ok(Some(Ok(sample))) => sample,
            Ok(Some(Err(e))) => return self.failed(e),
            Ok(None) => return Err(RuntimeError::Docker(format!("no stats for {container}"))),
            Err(_) => return self.failed(DockerError::RequestTimeoutError),
        };
        let cpu_ns = sample
            .cpu_stats
            .and_then(|c| c.cpu_usage)
            .and_then(|u| u.total_usage)
            .unwrap_or(0);
        let memory = sample.memory_stats.unwrap_or_default();
        let inactive = memory.stats.as_ref().and_then(|s| {
            s.get("total_inactive_file")
                .or_else(|| s.get("inactive_file"))
                .copied()
        });
        let usage = memory.usage.unwrap_or(0);
        Ok(Stats {
            // The engine answers a one-shot call from its last collection, up to a second old.
            read_at_us: sample.read.as_deref().and_then(engine_time_us),
            cpu_ns,
            memory_bytes: usage.saturating_sub(inactive.unwrap_or(0)),
            memory_limit: memory.limit.filter(|l| *l > 0 && *l < i64::MAX as u64),
        })
    }

    /// The engine's container events for this platform's containers, from the moment of the
    /// call on.
    pub(super) fn platform_events(&self) -> Result<BoxStream<Result<RuntimeEvent>>> {
        let docker = self.docker()?;
        let filters = HashMap::from([
            ("type", vec!["container".to_owned()]),
            (
                "label",
                vec![format!("{LABEL_PLATFORM}={}", self.platform_id)],
            ),
        ]);
        // The request leaves on the stream's first poll; `since` now makes the engine replay
        // what happened in between, so nothing after this call is missed.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let since = format!("{}.{:09}", now.as_secs(), now.subsec_nanos());
        let options = EventsOptionsBuilder::default()
            .since(&since)
            .filters(&filters)
            .build();
        Ok(Box::pin(async_stream::stream! {
            let mut inner = docker.events(Some(options));
            while let Some(item) = inner.next().await {
                let message = match item {
                    Ok(m) => m,
                    Err(e) => {
                        yield Err(classify(e));
                        return;
                    }
                };
                let actor = message.actor.unwrap_or_default();
                let attributes = actor.attributes.unwrap_or_default();
                let action = message.action.unwrap_or_default();
                let kind = match action.as_str() {
                    "start" => RuntimeEventKind::Started,
                    "die" => RuntimeEventKind::Died {
                        exit_code: attributes.get("exitCode").and_then(|c| c.parse().ok()),
                    },
                    "oom" => RuntimeEventKind::OomKilled,
                    other => RuntimeEventKind::Other(other.to_owned()),
                };
                yield Ok(RuntimeEvent {
                    id: actor.id.unwrap_or_default(),
                    instance: attributes.get(LABEL_INSTANCE).cloned().unwrap_or_default(),
                    kind,
                    at_ns: message.time_nano.unwrap_or_else(|| message.time.unwrap_or(0) * 1_000_000_000),
                });
            }
        }))
    }
}
