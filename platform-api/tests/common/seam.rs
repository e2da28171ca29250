//! What the runtime seam tests share, whatever runs instances.
#![allow(dead_code)] // each test crate uses a part of these helpers

use std::time::Duration;

use faas_platform::runtime::{BoxStream, Result, RuntimeEvent, RuntimeEventKind};
use futures_util::StreamExt;

/// Waits (up to a minute) for the next event of `instance` that `want` accepts.
pub async fn next_event(
    events: &mut BoxStream<Result<RuntimeEvent>>,
    instance: &str,
    want: impl Fn(&RuntimeEventKind) -> bool,
) -> RuntimeEvent {
    let wait = async {
        while let Some(e) = events.next().await {
            let e = e.unwrap();
            if e.instance == instance && want(&e.kind) {
                return e;
            }
        }
        panic!("the event stream ended");
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .expect("no such event within 60 s")
}

/// The test cluster's kubeconfig: `FAAS_TEST_KUBECONFIG`, or the one the setup script writes.
pub fn kubeconfig() -> String {
    let path = std::env::var("FAAS_TEST_KUBECONFIG")
        .unwrap_or_else(|_| "/var/lib/faas-test/k8s/kubeconfig".into());
    assert!(
        std::path::Path::new(&path).exists(),
        "no test cluster at {path}: run `scripts/setup-kubernetes.sh start` (the test command does)"
    );
    path
}
