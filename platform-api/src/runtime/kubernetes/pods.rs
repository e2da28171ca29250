//! What a pod says of an instance, in the deployer's terms ([`InstanceState`]): kubectl's own
//! reading of container statuses, with the reasons a pod cannot start (an image that cannot be
//! had, a crash loop, no node to run on) made plain so that a deployment fails fast with them.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use super::objects::CONTAINER;
use crate::runtime::InstanceState;

/// Waiting reasons that mean the container will not start without a change.
const STUCK: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

fn micros(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> i64 {
    t.0.as_microsecond()
}

fn app_status(pod: &Pod) -> Option<&ContainerStatus> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses
        .iter()
        .find(|c| c.name == CONTAINER)
        .or_else(|| statuses.first())
}

/// Whether a Deployment has rolled out by kubectl's own rules (`rollout status`): the
/// controller saw its last change, every replica is updated, none of an older template is
/// left, and every updated one is available. Its progress deadline passed: why not.
pub fn rolled_out(d: &Deployment) -> Result<bool, String> {
    let Some(status) = d.status.as_ref() else {
        return Ok(false);
    };
    if let Some(c) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Progressing")
        && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    {
        return Err(format!(
            "its Deployment stopped progressing (ProgressDeadlineExceeded: {})",
            c.message.as_deref().unwrap_or("no reason given")
        ));
    }
    let generation = d.metadata.generation.unwrap_or(0);
    if generation > status.observed_generation.unwrap_or(0) {
        return Ok(false);
    }
    let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    Ok(updated >= wanted
        && status.replicas.unwrap_or(0) <= updated
        && status.available_replicas.unwrap_or(0) >= updated)
}

/// Whether the pod is on its way out (deleted, or its phase is final).
pub fn is_gone(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// The state of an instance whose object exists, from its newest pod (none yet: it is not
/// running, and says why when the cluster cannot place it).
pub fn state_of(pod: Option<&Pod>) -> InstanceState {
    let mut state = InstanceState {
        exists: true,
        ..Default::default()
    };
    let Some(pod) = pod else {
        return state;
    };
    let status = pod.status.as_ref();
    state.ip = status
        .and_then(|s| s.pod_ip.as_deref())
        .and_then(|ip| ip.parse().ok());
    if let Some(cond) = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
        && cond.status == "False"
        && cond.reason.as_deref() == Some("Unschedulable")
    {
        state.error = Some(format!(
            "no node can run it (Unschedulable: {})",
            cond.message.as_deref().unwrap_or("no reason given")
        ));
        state.stuck = true;
    }
    let Some(c) = app_status(pod) else {
        return state;
    };
    state.restart_count = i64::from(c.restart_count);
    let last = c.last_state.as_ref().and_then(|s| s.terminated.as_ref());
    if let Some(last) = last {
        state.exit_code = Some(i64::from(last.exit_code));
        state.oom_killed = last.reason.as_deref() == Some("OOMKilled");
        state.finished_at_us = last.finished_at.as_ref().map(micros);
    }
    let now = c.state.as_ref();
    if let Some(running) = now.and_then(|s| s.running.as_ref()) {
        state.running = true;
        state.started_at_us = running.started_at.as_ref().map(micros);
        // A restarted container runs again; its last exit stays in the restart count.
        state.exit_code = None;
        state.finished_at_us = None;
    } else if let Some(t) = now.and_then(|s| s.terminated.as_ref()) {
        state.exit_code = Some(i64::from(t.exit_code));
        state.oom_killed = t.reason.as_deref() == Some("OOMKilled");
        state.started_at_us = t.started_at.as_ref().map(micros);
        state.finished_at_us = t.finished_at.as_ref().map(micros);
        if let Some(msg) = t.message.as_deref().or(t.reason.as_deref()) {
            state.error = Some(msg.to_owned());
        }
    } else if let Some(w) = now.and_then(|s| s.waiting.as_ref()) {
        let reason = w.reason.as_deref().unwrap_or_default();
        if reason == "CrashLoopBackOff" {
            state.restarting = true;
            state.error = Some("CrashLoopBackOff".into());
        } else if STUCK.contains(&reason) {
            state.stuck = true;
            state.error = Some(match w.message.as_deref() {
                Some(msg) if !msg.is_empty() => format!("{reason}: {msg}"),
                _ => reason.to_owned(),
            });
        }
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "status": status,
        }))
        .expect("a pod")
    }

    #[test]
    fn a_running_pod_is_running_with_its_ip() {
        let p = pod(serde_json::json!({
            "podIP": "172.17.0.5",
            "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "image": "x", "imageID": "",
                "state": {"running": {"startedAt": "2026-12-05T10:00:00Z"}}}]
        }));
        let s = state_of(Some(&p));
        assert!(s.running && s.failure().is_none());
        assert_eq!(s.ip, Some("172.17.0.5".parse().expect("ip")));
        assert_eq!(s.host_port, None);
    }

    #[test]
    fn an_image_that_cannot_be_had_fails_at_once_with_its_reason() {
        let p = pod(serde_json::json!({
            "podIP": "172.17.0.5",
            "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0, "image": "x", "imageID": "",
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"sha256:00\""}}}]
        }));
        let why = state_of(Some(&p)).failure().expect("a failure");
        assert!(why.contains("ImagePullBackOff"), "{why}");
    }

    #[test]
    fn a_crash_loop_fails_with_the_exit_code() {
        let p = pod(serde_json::json!({
            "containerStatuses": [{"name": "app", "ready": false, "restartCount": 2, "image": "x", "imageID": "",
                "lastState": {"terminated": {"exitCode": 3, "reason": "Error"}},
                "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]
        }));
        let why = state_of(Some(&p)).failure().expect("a failure");
        assert!(why.contains("code 3"), "{why}");
    }

    #[test]
    fn an_oom_kill_says_so() {
        let p = pod(serde_json::json!({
            "containerStatuses": [{"name": "app", "ready": false, "restartCount": 1, "image": "x", "imageID": "",
                "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}},
                "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]
        }));
        assert!(
            state_of(Some(&p))
                .failure()
                .expect("failure")
                .contains("memory")
        );
    }

    #[test]
    fn an_unschedulable_pod_says_why() {
        let p = pod(serde_json::json!({
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/1 nodes are available: 1 Insufficient memory."}]
        }));
        let why = state_of(Some(&p)).failure().expect("failure");
        assert!(why.contains("Insufficient memory"), "{why}");
    }

    fn deployment(generation: i64, status: serde_json::Value) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "d", "generation": generation},
            "spec": {"replicas": 1, "selector": {}, "template": {}},
            "status": status,
        }))
        .expect("a deployment")
    }

    #[test]
    fn a_rollout_is_done_by_kubectls_rules() {
        let done = serde_json::json!({"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1});
        assert_eq!(rolled_out(&deployment(2, done.clone())), Ok(true));
        // The controller has not seen the last change yet: whatever its figures say.
        assert_eq!(rolled_out(&deployment(3, done)), Ok(false));
        let unavailable = serde_json::json!({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 0});
        assert_eq!(rolled_out(&deployment(1, unavailable)), Ok(false));
        let old_left = serde_json::json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 2});
        assert_eq!(rolled_out(&deployment(1, old_left)), Ok(false));
        let stalled = serde_json::json!({"observedGeneration": 1, "conditions": [{"type": "Progressing", "status": "False",
            "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"d-1\" has timed out progressing."}]});
        let why = rolled_out(&deployment(1, stalled)).expect_err("stalled");
        assert!(why.contains("ProgressDeadlineExceeded"), "{why}");
    }

    #[test]
    fn a_pod_still_being_created_is_not_a_failure() {
        let p = pod(serde_json::json!({
            "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0, "image": "x", "imageID": "",
                "state": {"waiting": {"reason": "ContainerCreating"}}}]
        }));
        assert!(state_of(Some(&p)).failure().is_none());
    }
}
