//! An instance's output from the Kubernetes API: followed across container restarts and pod
//! replacements (each line once, in order of its kubelet timestamp) until the instance is
//! gone, and the last lines of a failed one (its previous container's too, after a crash).

use std::time::Duration;

use futures_util::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::LogParams;

use super::KubernetesRuntime;
use super::objects::CONTAINER;
use crate::runtime::{BoxStream, LogChunk, LogStream, Result};

/// Splits a kubelet line (`2026-12-05T10:00:00.123456789Z text`) into its time and text.
pub fn split_line(line: &str) -> Option<(k8s_openapi::jiff::Timestamp, &str)> {
    let (ts, rest) = line.split_once(' ').unwrap_or((line, ""));
    Some((ts.parse().ok()?, rest))
}

impl KubernetesRuntime {
    pub(super) fn follow(&self, name: &str, since: i64) -> Result<BoxStream<Result<LogChunk>>> {
        let this = self.this.upgrade().ok_or_else(|| {
            crate::runtime::RuntimeError::Kubernetes("the runtime is shutting down".into())
        })?;
        let name = name.to_owned();
        let stream = async_stream::stream! {
            let pods: Api<Pod> = match this.ns_of(&name).await {
                Ok(ns) => this.pods(&ns),
                Err(e) => {
                    yield Err(e);
                    return;
                }
            };
            let mut last: Option<k8s_openapi::jiff::Timestamp> =
                (since > 0).then(|| k8s_openapi::jiff::Timestamp::from_second(since).ok()).flatten();
            // The first pass takes everything from `since` on; later ones only what is newer.
            let mut inclusive = true;
            loop {
                let pod = match this.newest_pod(&name).await {
                    Ok(pod) => pod,
                    Err(e) => {
                        yield Err(e);
                        return;
                    }
                };
                let Some(pod) = pod else {
                    if !this.wants_a_pod(&name).await {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                };
                let pod_name = pod.metadata.name.clone().unwrap_or_default();
                let state = super::pods::state_of(Some(&pod));
                if !state.running && state.exit_code.is_none() && state.restart_count == 0 {
                    // Not started yet (or it never will: then only its end ends this).
                    if !this.wants_a_pod(&name).await {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
                let params = LogParams {
                    container: Some(CONTAINER.into()),
                    follow: true,
                    timestamps: true,
                    since_time: last,
                    ..Default::default()
                };
                match pods.log_stream(&pod_name, &params).await {
                    Ok(reader) => {
                        let mut lines = reader.lines();
                        while let Some(line) = lines.next().await {
                            let Ok(line) = line else { break };
                            let Some((ts, text)) = split_line(&line) else { continue };
                            let seen = match last {
                                Some(l) if inclusive => ts < l,
                                Some(l) => ts <= l,
                                None => false,
                            };
                            if seen {
                                continue;
                            }
                            last = Some(ts);
                            let mut bytes = text.as_bytes().to_vec();
                            bytes.push(b'\n');
                            yield Ok(LogChunk {
                                stream: LogStream::Stdout,
                                ts: ts.to_string(),
                                bytes: bytes.into(),
                            });
                        }
                    }
                    Err(e) => tracing::debug!(pod = %pod_name, "cannot follow its logs yet: {e}"),
                }
                inclusive = false;
                // The container ended: the instance goes on in a restarted container or a new
                // pod, unless the platform stopped it.
                if !this.wants_a_pod(&name).await {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        };
        Ok(Box::pin(stream))
    }

    pub(super) async fn tail(&self, name: &str, n: usize) -> Vec<String> {
        let Ok(Some(pod)) = self.newest_pod(name).await else {
            return Vec::new();
        };
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let Ok(ns) = self.ns_of(name).await else {
            return Vec::new();
        };
        let pods = self.pods(&ns);
        let restarted = super::pods::state_of(Some(&pod)).restart_count > 0;
        let mut out = Vec::new();
        for previous in [true, false] {
            if previous && !restarted {
                continue;
            }
            let params = LogParams {
                container: Some(CONTAINER.into()),
                previous,
                tail_lines: Some(n as i64),
                ..Default::default()
            };
            if let Ok(text) = pods.logs(&pod_name, &params).await {
                out.extend(text.lines().map(str::to_owned));
            }
        }
        let skip = out.len().saturating_sub(n);
        out.split_off(skip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_lines_split_into_time_and_text() {
        let (ts, text) = split_line("2026-12-05T10:00:00.5Z hello world").expect("a line");
        assert_eq!(text, "hello world");
        assert_eq!(ts.as_millisecond() % 1000, 500);
        let (_, empty) = split_line("2026-12-05T10:00:00Z").expect("an empty line");
        assert_eq!(empty, "");
        assert!(split_line("not a time").is_none());
    }
}
