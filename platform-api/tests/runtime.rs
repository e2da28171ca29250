//! The runtime seam against the real Docker Engine: everything the deployer, reconciliation,
//! logs, the meter and the dashboard ask of a runtime, through the `Runtime` trait alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use faas_platform::runtime::{DockerRuntime, InstanceSpec, LogStream, Runtime, RuntimeEventKind};
use futures_util::StreamExt;

#[path = "common/seam.rs"]
mod seam;
use seam::next_event;

const NETWORK: &str = "faas-test";

fn manifest(command: &str, memory: &str) -> faas_spec::Manifest {
    let text = format!(
        "name = \"seam\"\nowner = \"team@example.com\"\n[run]\nport = 8080\ncommand = [\"sh\", \"-c\", {}]\n[size]\nmemory = \"{memory}\"\n",
        toml_string(command)
    );
    faas_spec::ManifestFile::parse("app.toml", &text)
        .unwrap()
        .manifest
}

fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

async fn runtime() -> Arc<dyn Runtime> {
    let id = format!("seam{}", std::process::id());
    let rt = DockerRuntime::start(id, NETWORK.into()).await;
    assert!(rt.status().available, "{:?}", rt.status());
    rt
}

async fn start(
    rt: &Arc<dyn Runtime>,
    instance: &str,
    m: &faas_spec::Manifest,
) -> (String, faas_platform::runtime::InstanceState) {
    let spec = InstanceSpec {
        tenant: "team@example.com",
        service: "seam",
        env: "test",
        release_id: "rel-seam",
        instance_id: instance,
        image_id: &rt.image_id("busybox:stable").await.unwrap(),
        manifest: m,
        extra_env: vec![("GREETING".into(), "hello from the seam".into())],
        hosts: Vec::new(),
    };
    rt.start_instance(&spec).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_runs_logs_measures_and_stops_through_the_trait() {
    let rt = runtime().await;
    let mut events = rt.events().unwrap();
    let m = manifest(
        "echo \"$GREETING on $FAAS_INSTANCE\"; echo oops >&2; exec httpd -f -p 8080 -h /",
        "32Mi",
    );
    let (id, state) = start(&rt, "i-seam-1", &m).await;
    assert!(state.running, "{state:?}");
    assert!(state.ip.is_some() && state.host_port.is_some(), "{state:?}");
    let started = next_event(&mut events, "i-seam-1", |k| *k == RuntimeEventKind::Started).await;
    assert_eq!(started.id, id);
    assert!(started.at_ns > 0);

    // Listed by its labels.
    let listed = rt.list_instances().await.unwrap();
    let mine = listed.iter().find(|c| c.id == id).expect("listed");
    assert_eq!(
        (
            mine.service.as_str(),
            mine.env.as_str(),
            mine.release.as_str()
        ),
        ("seam", "test", "rel-seam")
    );
    assert!(mine.running);

    // Its output, both streams, with the engine's timestamps.
    let mut logs = rt.follow_logs(&id, 0).unwrap();
    let mut seen = (false, false);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(seen.0 && seen.1) {
        assert!(Instant::now() < deadline, "{seen:?}");
        let chunk = tokio::time::timeout(Duration::from_secs(20), logs.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(humantime::parse_rfc3339(&chunk.ts).is_ok(), "{}", chunk.ts);
        let text = String::from_utf8_lossy(&chunk.bytes);
        if chunk.stream == LogStream::Stdout && text.contains("hello from the seam on i-seam-1") {
            seen.0 = true;
        }
        if chunk.stream == LogStream::Stderr && text.contains("oops") {
            seen.1 = true;
        }
    }
    let tail = rt.logs_tail(&id, 5).await;
    assert!(tail.iter().any(|l| l.contains("oops")), "{tail:?}");

    // Stats: cumulative CPU time grows from 0, the working set is there, the limit is the size.
    let stats = rt.stats(&id).await.unwrap();
    assert!(stats.memory_bytes > 0, "{stats:?}");
    assert_eq!(stats.memory_limit, Some(32 << 20));
    let first = stats.cpu_ns;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // Load it a little: each request costs the server CPU time.
        let port = state.host_port.unwrap();
        for _ in 0..20 {
            let _ = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
        }
        if rt.stats(&id).await.unwrap().cpu_ns > first {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "CPU time never grew past {first}"
        );
    }

    // Stopped: a death with its exit code, then gone.
    rt.stop(&id, Duration::from_secs(1)).await.unwrap();
    let died = next_event(&mut events, "i-seam-1", |k| {
        matches!(k, RuntimeEventKind::Died { .. })
    })
    .await;
    assert!(
        matches!(died.kind, RuntimeEventKind::Died { exit_code: Some(_) }),
        "{died:?}"
    );
    let state = rt.state(&id).await.unwrap();
    assert!(state.exists && !state.running, "{state:?}");
    rt.remove(&id).await.unwrap();
    assert!(!rt.state(&id).await.unwrap().exists);
    rt.remove(&id).await.unwrap(); // a missing one is fine
    assert!(
        !rt.list_instances()
            .await
            .unwrap()
            .iter()
            .any(|c| c.id == id)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_out_of_memory_kill_is_an_event_and_a_state() {
    let rt = runtime().await;
    let mut events = rt.events().unwrap();
    // 64 MB in a shell variable, in a 16 MiB container.
    let m = manifest(
        "x=$(head -c 64000000 /dev/zero | tr '\\0' a); echo survived",
        "16Mi",
    );
    let (id, _) = start(&rt, "i-seam-oom", &m).await;
    // Both come, in the engine's order.
    let (mut oom, mut died) = (false, None);
    while !(oom && died.is_some()) {
        let e = next_event(&mut events, "i-seam-oom", |k| {
            matches!(
                k,
                RuntimeEventKind::OomKilled | RuntimeEventKind::Died { .. }
            )
        })
        .await;
        match e.kind {
            RuntimeEventKind::OomKilled => oom = true,
            other => died = Some(other),
        }
    }
    assert!(
        matches!(died, Some(RuntimeEventKind::Died { exit_code: Some(c) }) if c != 0),
        "{died:?}"
    );
    let state = rt.state(&id).await.unwrap();
    assert!(state.oom_killed, "{state:?}");
    assert!(state.failure().unwrap().contains("out of memory"));
    rt.stop_and_remove(&id, Duration::from_secs(1))
        .await
        .unwrap();
}
