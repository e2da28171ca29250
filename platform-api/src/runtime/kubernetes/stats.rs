//! What a pod uses, from its node's kubelet (the summary API, through the API server's node
//! proxy): cumulative CPU time and the working set, as the meter reads them from Docker.

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use serde::Deserialize;

use super::objects::CONTAINER;
use crate::runtime::{Result, RuntimeError, Stats};

#[derive(Debug, Deserialize)]
struct Summary {
    #[serde(default)]
    pods: Vec<PodStats>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodStats {
    pod_ref: PodRef,
    #[serde(default)]
    containers: Vec<ContainerStats>,
}

#[derive(Debug, Deserialize)]
struct PodRef {
    name: String,
    namespace: String,
}

#[derive(Debug, Deserialize)]
struct ContainerStats {
    name: String,
    cpu: Option<Cpu>,
    memory: Option<Memory>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Cpu {
    time: Option<String>,
    usage_core_nano_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Memory {
    working_set_bytes: Option<u64>,
}

/// The figures of one pod's container in a kubelet summary.
fn pick(summary: &str, namespace: &str, pod: &str, limit: Option<u64>) -> Result<Stats> {
    let summary: Summary = serde_json::from_str(summary)
        .map_err(|e| RuntimeError::Kubernetes(format!("the kubelet's summary: {e}")))?;
    let c = summary
        .pods
        .iter()
        .find(|p| p.pod_ref.name == pod && p.pod_ref.namespace == namespace)
        .and_then(|p| p.containers.iter().find(|c| c.name == CONTAINER))
        .ok_or_else(|| {
            RuntimeError::Kubernetes(format!("the kubelet has no figures of {pod} yet"))
        })?;
    let cpu = c.cpu.as_ref();
    Ok(Stats {
        read_at_us: cpu
            .and_then(|c| c.time.as_deref())
            .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
            .map(|t| t.as_microsecond()),
        cpu_ns: cpu.and_then(|c| c.usage_core_nano_seconds).unwrap_or(0),
        memory_bytes: c
            .memory
            .as_ref()
            .and_then(|m| m.working_set_bytes)
            .unwrap_or(0),
        memory_limit: limit,
    })
}

pub(super) async fn of_pod(client: &Client, pod: &Pod) -> Result<Stats> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .ok_or_else(|| RuntimeError::Kubernetes(format!("{name} is on no node yet")))?;
    let limit = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.iter().find(|c| c.name == CONTAINER))
        .and_then(|c| c.resources.as_ref())
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get("memory"))
        .and_then(|q| q.0.parse::<u64>().ok());
    let request = http::Request::get(format!("/api/v1/nodes/{node}/proxy/stats/summary"))
        .body(Vec::new())
        .map_err(|e| RuntimeError::Kubernetes(e.to_string()))?;
    let text = client
        .request_text(request)
        .await
        .map_err(super::kube_error)?;
    pick(&text, &namespace, &name, limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pods_figures_are_read_from_the_summary() {
        let summary = r#"{"node": {}, "pods": [
            {"podRef": {"name": "other", "namespace": "faas"}, "containers": []},
            {"podRef": {"name": "web-1", "namespace": "faas"}, "containers": [
                {"name": "app", "cpu": {"time": "2026-12-05T10:00:01Z", "usageCoreNanoSeconds": 1500000},
                 "memory": {"workingSetBytes": 4096}}]}]}"#;
        let s = pick(summary, "faas", "web-1", Some(1 << 20)).expect("figures");
        assert_eq!(
            (s.cpu_ns, s.memory_bytes, s.memory_limit),
            (1_500_000, 4096, Some(1 << 20))
        );
        assert!(s.read_at_us.is_some());
        assert!(pick(summary, "faas", "gone", None).is_err());
    }
}
