//! Where each instance's pod runs, kept current by a watch on the platform's pods (a
//! reflector), so that status pages read it without a call to the cluster.

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};

use super::pods;
use crate::runtime::LABEL_INSTANCE;
use faas_spec::api::PodPlacement;

/// Starts watching the pods `selector` picks; the store fills as events come.
pub fn watch(api: Api<Pod>, selector: &str) -> Store<Pod> {
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(
        writer,
        watcher(api, watcher::Config::default().labels(selector)),
    )
    .default_backoff()
    .touched_objects();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                tracing::debug!("watching pods: {e}");
            }
        }
    });
    reader
}

/// The newest live pod of an instance in the store.
pub fn of(store: &Store<Pod>, instance: &str) -> Option<PodPlacement> {
    let mut mine: Vec<_> = store
        .state()
        .into_iter()
        .filter(|p| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_INSTANCE))
                .is_some_and(|i| i == instance)
        })
        .collect();
    mine.sort_by_key(|p| {
        (
            !pods::is_gone(p),
            p.metadata.creation_timestamp.as_ref().map(|t| t.0),
        )
    });
    let pod = mine.pop()?;
    let status = pod.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    let restarts = status
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |cs| {
            cs.iter().map(|c| c.restart_count.max(0) as u32).sum()
        });
    Some(PodPlacement {
        name: pod.metadata.name.clone().unwrap_or_default(),
        node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        ready,
        restarts,
    })
}
