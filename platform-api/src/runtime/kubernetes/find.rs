//! Finding an instance's objects: its Deployment, its newest pod, whether it should have one,
//! when its pod is placed, and its environment's Service once unused.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams};

use super::{KubernetesRuntime, kube_error, objects, pods};
use crate::runtime::{
    InstanceState, LABEL_ENV, LABEL_INSTANCE, LABEL_PLATFORM, LABEL_SERVICE, Result,
};

/// How long a pod may take to be placed and given an address.
const PLACE_TIMEOUT: Duration = Duration::from_secs(120);

impl KubernetesRuntime {
    /// The instance's Deployment, if it exists.
    pub(super) async fn deployment(&self, name: &str) -> Result<Option<Deployment>> {
        let ns = self.ns_of(name).await?;
        self.deployments(&ns)
            .get_opt(name)
            .await
            .map_err(kube_error)
    }

    /// The newest pod of an instance (a Deployment's, or a run's pod of that name), leaving
    /// out pods on their way out when there is another.
    pub(super) async fn newest_pod(&self, name: &str) -> Result<Option<Pod>> {
        let ns = self.ns_of(name).await?;
        let Some(d) = self.deployment(name).await? else {
            return self.pods(&ns).get_opt(name).await.map_err(kube_error);
        };
        let instance = d
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_INSTANCE).cloned())
            .unwrap_or_default();
        let selector = format!(
            "{LABEL_PLATFORM}={},{LABEL_INSTANCE}={instance}",
            self.platform_id
        );
        let mut pods = self
            .pods(&ns)
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(kube_error)?
            .items;
        pods.sort_by_key(|p| {
            (
                !pods::is_gone(p),
                p.metadata.creation_timestamp.as_ref().map(|t| t.0),
            )
        });
        Ok(pods.pop())
    }

    /// Whether the instance should have a running pod: its Deployment exists and is not
    /// scaled to zero (a run's pod: it has not ended).
    pub(super) async fn wants_a_pod(&self, name: &str) -> bool {
        let Ok(ns) = self.ns_of(name).await else {
            return true;
        };
        match self.deployment(name).await {
            Ok(Some(d)) => d.spec.and_then(|s| s.replicas).unwrap_or(1) > 0,
            Ok(None) => match self.pods(&ns).get_opt(name).await {
                Ok(Some(pod)) => {
                    let phase = pod.status.and_then(|s| s.phase).unwrap_or_default();
                    pod.metadata.deletion_timestamp.is_none()
                        && phase != "Succeeded"
                        && phase != "Failed"
                }
                Ok(None) => false,
                Err(_) => true,
            },
            Err(_) => true,
        }
    }

    /// Waits until the instance's pod has an address and its container a start, or cannot
    /// start; returns its state then.
    pub(super) async fn placed(&self, name: &str) -> Result<InstanceState> {
        let deadline = tokio::time::Instant::now() + PLACE_TIMEOUT;
        loop {
            let pod = self.newest_pod(name).await?;
            let state = pods::state_of(pod.as_ref());
            let started = state.running || state.exit_code.is_some();
            if state.failure().is_some() || (state.ip.is_some() && started) {
                return Ok(state);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(InstanceState {
                    stuck: true,
                    error: Some(format!(
                        "its pod did not start within {}s{}",
                        PLACE_TIMEOUT.as_secs(),
                        state.error.map(|e| format!(" ({e})")).unwrap_or_default()
                    )),
                    ..state
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Removes an environment's Service once no instance of it is left.
    pub(super) async fn drop_unused_service(&self, ns: &str, service: &str, env: &str) {
        let selector = format!(
            "{LABEL_PLATFORM}={},{LABEL_SERVICE}={service},{LABEL_ENV}={env}",
            self.platform_id
        );
        if let Ok(list) = self
            .deployments(ns)
            .list(&ListParams::default().labels(&selector))
            .await
            && list.items.is_empty()
        {
            let _ = self
                .services(ns)
                .delete(
                    &objects::service_name(service, env),
                    &DeleteParams::default(),
                )
                .await;
        }
    }
}
