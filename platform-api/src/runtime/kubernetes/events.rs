//! What happens to the platform's pods, as runtime events: a container that starts, one that
//! ends (with its exit code), one the kernel killed for memory. Read from a watch on the pods,
//! by comparing each pod's container status with the one seen before.

use std::collections::HashMap;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{WatchStreamExt, watcher};

use super::KubernetesRuntime;
use super::objects::CONTAINER;
use crate::runtime::{BoxStream, LABEL_INSTANCE, LABEL_PLATFORM, RuntimeEvent, RuntimeEventKind};

/// What was last seen of a pod's container: its restarts, and when it last started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    restarts: i32,
    started_at: Option<i64>,
    terminated: bool,
}

fn micros(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> i64 {
    t.0.as_microsecond()
}

/// The events between what was seen of a pod and what it says now, with what to remember.
pub fn changes(before: Option<&Seen>, pod: &Pod) -> (Vec<(RuntimeEventKind, i64)>, Seen) {
    let status = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == CONTAINER));
    let Some(c) = status else {
        return (Vec::new(), before.cloned().unwrap_or_default());
    };
    let before = before.cloned().unwrap_or_default();
    let state = c.state.as_ref();
    let running = state.and_then(|s| s.running.as_ref());
    let terminated = state.and_then(|s| s.terminated.as_ref());
    let now = Seen {
        restarts: c.restart_count,
        started_at: running
            .and_then(|r| r.started_at.as_ref())
            .map(micros)
            .or(before.started_at),
        terminated: terminated.is_some(),
    };
    let mut events = Vec::new();
    // An end: the container restarted since (its last state says how it ended), or it is
    // terminated now.
    let ended = if now.restarts > before.restarts {
        c.last_state.as_ref().and_then(|s| s.terminated.as_ref())
    } else if now.terminated && !before.terminated {
        terminated
    } else {
        None
    };
    if let Some(t) = ended {
        let at = t.finished_at.as_ref().map(micros).unwrap_or_default();
        if t.reason.as_deref() == Some("OOMKilled") {
            events.push((RuntimeEventKind::OomKilled, at));
        }
        events.push((
            RuntimeEventKind::Died {
                exit_code: Some(i64::from(t.exit_code)),
            },
            at,
        ));
    }
    if let (Some(at), true) = (now.started_at, running.is_some())
        && before.started_at != Some(at)
    {
        events.push((RuntimeEventKind::Started, at));
    }
    (events, now)
}

impl KubernetesRuntime {
    pub(super) fn watch_events(&self) -> BoxStream<crate::runtime::Result<RuntimeEvent>> {
        let selector = format!("{LABEL_PLATFORM}={}", self.platform_id);
        let api = self.scoped::<Pod>();
        let pods = watcher(api, watcher::Config::default().labels(&selector)).default_backoff();
        let stream = async_stream::stream! {
            let mut seen: HashMap<String, Seen> = HashMap::new();
            let mut pods = std::pin::pin!(pods);
            while let Some(event) = pods.next().await {
                let (pod, deleted) = match event {
                    Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => (pod, false),
                    Ok(watcher::Event::Delete(pod)) => (pod, true),
                    _ => continue,
                };
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                let (mut events, now) = changes(seen.get(&uid), &pod);
                if deleted {
                    seen.remove(&uid);
                    // Gone while its last status still said running: it ended all the same.
                    if now.started_at.is_some()
                        && !now.terminated
                        && !events.iter().any(|(k, _)| matches!(k, RuntimeEventKind::Died { .. }))
                    {
                        let at = pod
                            .metadata
                            .deletion_timestamp
                            .as_ref()
                            .map(micros)
                            .unwrap_or_default();
                        events.push((RuntimeEventKind::Died { exit_code: None }, at));
                    }
                } else {
                    seen.insert(uid, now);
                }
                let Some(instance) = pod
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_INSTANCE))
                    .cloned()
                else {
                    continue;
                };
                // The runtime's id of an instance is its Deployment's name.
                let id = crate::runtime::container_name(
                    pod.metadata.labels.as_ref().and_then(|l| l.get(crate::runtime::LABEL_SERVICE)).map_or("", String::as_str),
                    pod.metadata.labels.as_ref().and_then(|l| l.get(crate::runtime::LABEL_ENV)).map_or("", String::as_str),
                    &instance,
                );
                for (kind, at_us) in events {
                    yield Ok(RuntimeEvent {
                        id: id.clone(),
                        instance: instance.clone(),
                        kind,
                        at_ns: at_us.saturating_mul(1000),
                    });
                }
            }
        };
        Box::pin(stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(
            serde_json::json!({"metadata": {"name": "p", "uid": "u"}, "status": status}),
        )
        .expect("a pod")
    }

    fn kinds(events: &[(RuntimeEventKind, i64)]) -> Vec<RuntimeEventKind> {
        events.iter().map(|(k, _)| k.clone()).collect()
    }

    #[test]
    fn a_start_a_crash_and_a_restart_are_told_once_each() {
        let started = pod(
            serde_json::json!({"containerStatuses": [{"name": "app", "ready": true, "restartCount": 0,
            "image": "x", "imageID": "", "state": {"running": {"startedAt": "2026-12-05T10:00:00Z"}}}]}),
        );
        let (events, seen) = changes(None, &started);
        assert_eq!(kinds(&events), [RuntimeEventKind::Started]);
        let (again, seen) = changes(Some(&seen), &started);
        assert!(again.is_empty(), "{again:?}");

        let restarted = pod(
            serde_json::json!({"containerStatuses": [{"name": "app", "ready": true, "restartCount": 1,
            "image": "x", "imageID": "",
            "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled", "finishedAt": "2026-12-05T10:01:00Z"}},
            "state": {"running": {"startedAt": "2026-12-05T10:01:01Z"}}}]}),
        );
        let (events, _) = changes(Some(&seen), &restarted);
        assert_eq!(
            kinds(&events),
            [
                RuntimeEventKind::OomKilled,
                RuntimeEventKind::Died {
                    exit_code: Some(137)
                },
                RuntimeEventKind::Started
            ]
        );
    }

    #[test]
    fn a_container_that_ends_for_good_dies_once() {
        let ended = pod(
            serde_json::json!({"containerStatuses": [{"name": "app", "ready": false, "restartCount": 0,
            "image": "x", "imageID": "",
            "state": {"terminated": {"exitCode": 3, "reason": "Error", "finishedAt": "2026-12-05T10:00:05Z"}}}]}),
        );
        let before = Seen {
            restarts: 0,
            started_at: Some(1),
            terminated: false,
        };
        let (events, seen) = changes(Some(&before), &ended);
        assert_eq!(
            kinds(&events),
            [RuntimeEventKind::Died { exit_code: Some(3) }]
        );
        assert!(changes(Some(&seen), &ended).0.is_empty());
    }
}
