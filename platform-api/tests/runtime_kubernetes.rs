//! The runtime seam against the real Kubernetes test cluster (scripts/setup-kubernetes.sh):
//! the same questions the Docker seam test asks, through the `Runtime` trait alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use faas_platform::runtime::kubernetes::{Images, KubernetesConfig};
use faas_platform::runtime::{
    DockerRuntime, InstanceSpec, KubernetesRuntime, Runtime, RuntimeEventKind,
};
use futures_util::StreamExt;

#[path = "common/seam.rs"]
mod seam;
use seam::{kubeconfig, next_event};

/// Deletes the test's namespace at the end.
struct Namespace(String);

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(kubeconfig())
            .args(["delete", "namespace", &self.0, "--wait=false"])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_runs_logs_measures_and_stops_through_the_trait() {
    let id = format!("seamk{}", std::process::id());
    let ns = Namespace(format!("faas-{id}"));
    let docker = DockerRuntime::start(id.clone(), "faas-test".into()).await;
    let config = KubernetesConfig {
        kubeconfig: Some(kubeconfig().into()),
        context: None,
        namespace: ns.0.clone(),
        per_tenant: false,
        images: Some(Images::Docker),
        registry: None,
    };
    let rt: Arc<dyn Runtime> = KubernetesRuntime::connect(id, &config, docker)
        .await
        .unwrap();
    assert!(rt.status().available, "{:?}", rt.status());
    let mut events = rt.events().unwrap();

    let text = "name = \"seam\"\nowner = \"team@example.com\"\n[run]\nport = 8080\ncommand = [\"sh\", \"-c\", \"echo \\\"$GREETING on $FAAS_INSTANCE\\\"; echo oops >&2; exec httpd -f -p 8080 -h /\"]\n[size]\ncpu = 0.05\nmemory = \"32Mi\"\n";
    let m = faas_spec::ManifestFile::parse("app.toml", text)
        .unwrap()
        .manifest;
    let image = rt.image_id("busybox:stable").await.unwrap();
    let spec = InstanceSpec {
        tenant: "team@example.com",
        service: "seam",
        env: "test",
        release_id: "rel-seam",
        instance_id: "a1b2c3d4e5f6",
        image_id: &image,
        manifest: &m,
        extra_env: vec![("GREETING".into(), "hello from the seam".into())],
        hosts: Vec::new(),
    };
    let (pod_id, state) = rt.start_instance(&spec).await.unwrap();
    assert!(state.running, "{state:?}");
    let ip = state.ip.expect("a pod IP");
    assert_eq!(state.host_port, None);
    let started = next_event(&mut events, "a1b2c3d4e5f6", |k| {
        *k == RuntimeEventKind::Started
    })
    .await;
    assert_eq!(started.id, pod_id);
    assert!(started.at_ns > 0);

    let listed = rt.list_instances().await.unwrap();
    let mine = listed.iter().find(|c| c.id == pod_id).expect("listed");
    assert_eq!(
        (
            mine.service.as_str(),
            mine.env.as_str(),
            mine.release.as_str(),
            mine.instance.as_str()
        ),
        ("seam", "test", "rel-seam", "a1b2c3d4e5f6")
    );

    // Its output (stdout and stderr merged by Kubernetes), with the kubelet's timestamps.
    let mut logs = rt.follow_logs(&pod_id, 0).unwrap();
    let mut seen = (false, false);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(seen.0 && seen.1) {
        assert!(Instant::now() < deadline, "{seen:?}");
        let chunk = tokio::time::timeout(Duration::from_secs(30), logs.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(humantime::parse_rfc3339(&chunk.ts).is_ok(), "{}", chunk.ts);
        let text = String::from_utf8_lossy(&chunk.bytes);
        seen.0 |= text.contains("hello from the seam on a1b2c3d4e5f6");
        seen.1 |= text.contains("oops");
    }
    let tail = rt.logs_tail(&pod_id, 5).await;
    assert!(tail.iter().any(|l| l.contains("oops")), "{tail:?}");

    // Usage from the kubelet: the working set, the size's limit, and CPU time that grows.
    let deadline = Instant::now() + Duration::from_secs(60);
    let first = loop {
        match rt.stats(&pod_id).await {
            Ok(s) if s.memory_bytes > 0 => break s,
            other => assert!(Instant::now() < deadline, "no figures yet: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(first.memory_limit, Some(32 << 20));
    loop {
        for _ in 0..50 {
            let _ = tokio::net::TcpStream::connect((ip, 8080)).await;
        }
        if rt.stats(&pod_id).await.unwrap().cpu_ns > first.cpu_ns {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "CPU time never grew past {}",
            first.cpu_ns
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Stopped: its end is an event, its Deployment stays until removed, then it is gone.
    rt.stop(&pod_id, Duration::from_secs(1)).await.unwrap();
    let died = next_event(&mut events, "a1b2c3d4e5f6", |k| {
        matches!(k, RuntimeEventKind::Died { .. })
    })
    .await;
    // Its code when the kubelet reported the end before the pod went; a pod removed with its
    // last status still running ends without one.
    assert!(
        matches!(died.kind, RuntimeEventKind::Died { .. }),
        "{died:?}"
    );
    let state = rt.state(&pod_id).await.unwrap();
    assert!(state.exists && !state.running, "{state:?}");
    rt.remove(&pod_id).await.unwrap();
    assert!(!rt.state(&pod_id).await.unwrap().exists);
    rt.remove(&pod_id).await.unwrap(); // a missing one is fine
    assert!(
        !rt.list_instances()
            .await
            .unwrap()
            .iter()
            .any(|c| c.id == pod_id)
    );
}
