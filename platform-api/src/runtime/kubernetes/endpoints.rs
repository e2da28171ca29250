//! The ready pods of every environment, from the Endpoints API (watched, not polled; 1.20 has
//! no EndpointSlice v1): when a pod is replaced (evicted, deleted, its node lost) its instance
//! comes back on a new address, and the router must follow it there.

use std::collections::HashMap;
use std::net::IpAddr;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Endpoints;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};

use super::KubernetesRuntime;
use crate::runtime::{AddressChange, BoxStream, LABEL_INSTANCE};

/// The instance a Deployment's pod belongs to: its name is `faas-<svc>-<env>-<instance>`, then
/// the ReplicaSet's hash and the pod's own suffix.
pub fn instance_of_pod(pod: &str) -> Option<&str> {
    let mut parts = pod.rsplitn(3, '-');
    let (_suffix, _hash, deployment) = (parts.next()?, parts.next()?, parts.next()?);
    deployment
        .starts_with("faas-")
        .then(|| deployment.rsplit('-').next())
        .flatten()
}

/// The ready addresses of an Endpoints object, by pod name.
pub fn ready(endpoints: &Endpoints) -> Vec<(String, IpAddr)> {
    let mut out = Vec::new();
    for subset in endpoints.subsets.iter().flatten() {
        for address in subset.addresses.iter().flatten() {
            let Some(pod) = address
                .target_ref
                .as_ref()
                .filter(|r| r.kind.as_deref() == Some("Pod"))
                .and_then(|r| r.name.as_deref())
            else {
                continue;
            };
            if let Ok(ip) = address.ip.parse() {
                out.push((pod.to_owned(), ip));
            }
        }
    }
    out
}

impl KubernetesRuntime {
    pub(super) fn watch_addresses(&self) -> BoxStream<AddressChange> {
        let api: Api<Endpoints> = self.scoped();
        let selector = format!("{}={}", crate::runtime::LABEL_PLATFORM, self.platform_id);
        let events = watcher(api, watcher::Config::default().labels(&selector))
            .default_backoff()
            .applied_objects();
        let this = self.this.upgrade();
        let stream = async_stream::stream! {
            let Some(this) = this else { return };
            let mut known: HashMap<String, IpAddr> = HashMap::new();
            let mut events = std::pin::pin!(events);
            while let Some(event) = events.next().await {
                let endpoints = match event {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::debug!("watching Endpoints: {e}");
                        continue;
                    }
                };
                for (pod, ip) in ready(&endpoints) {
                    // Its instance from its labels as the pods' watch saw them, else its name.
                    let Some(instance) = this
                        .pods_seen
                        .state()
                        .iter()
                        .find(|p| p.metadata.name.as_deref() == Some(pod.as_str()))
                        .and_then(|p| p.metadata.labels.as_ref()?.get(LABEL_INSTANCE).cloned())
                        .or_else(|| instance_of_pod(&pod).map(str::to_owned))
                    else {
                        continue;
                    };
                    if known.get(&instance) != Some(&ip) {
                        known.insert(instance.clone(), ip);
                        yield AddressChange { instance, ip };
                    }
                }
            }
        };
        Box::pin(stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_name_gives_its_instance() {
        assert_eq!(
            instance_of_pod("faas-web-prod-4b15b73f9851-7f85485895-9bccn"),
            Some("4b15b73f9851")
        );
        assert_eq!(instance_of_pod("other-pod"), None);
        assert_eq!(instance_of_pod("coredns-7f8-x"), None);
    }

    #[test]
    fn only_ready_pod_addresses_count() {
        let e: Endpoints = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "faas-web-prod"},
            "subsets": [{
                "addresses": [{"ip": "172.17.0.4", "targetRef": {"kind": "Pod", "name": "faas-web-prod-aaaaaaaaaaaa-5d9-x1"}}],
                "notReadyAddresses": [{"ip": "172.17.0.5", "targetRef": {"kind": "Pod", "name": "faas-web-prod-bbbbbbbbbbbb-5d9-x2"}}],
                "ports": [{"port": 8080}]
            }]
        }))
        .expect("endpoints");
        assert_eq!(
            ready(&e),
            vec![(
                "faas-web-prod-aaaaaaaaaaaa-5d9-x1".to_owned(),
                "172.17.0.4".parse().expect("ip")
            )]
        );
    }
}
