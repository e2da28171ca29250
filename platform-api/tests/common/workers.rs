//! Task workers for tests: the python-action template's helper serving test actions
//! (tests/fixtures/task_worker.py), over HTTP or the test RabbitMQ, against a test daemon.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Daemon, free_port};

/// The test RabbitMQ's AMQP URL (`scripts/setup-test-env.sh` starts it on loopback).
pub fn amqp_url() -> String {
    std::env::var("FAAS_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:55672/%2f".into())
}

/// Debian's python3 (with python3-pika); `FAAS_TEST_PYTHON` overrides.
fn python() -> String {
    std::env::var("FAAS_TEST_PYTHON").unwrap_or_else(|_| {
        if std::path::Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3".into()
        } else {
            "python3".into()
        }
    })
}

/// A unique prefix for a test's action names (and so its queues on the shared broker).
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}-",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

pub struct Worker {
    child: Option<Child>,
    pub id: String,
    pub log: PathBuf,
}

impl Worker {
    /// Starts a worker serving `actions` (names in the fixture) with this transport.
    pub fn start(
        d: &Daemon,
        id: &str,
        transport: &str,
        actions: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/task_worker.py");
        let log = d.dir.join(format!("worker-{id}.log"));
        let port = free_port().to_string();
        let mut cmd = Command::new(python());
        cmd.arg(&script)
            .env("FAAS_URL", d.api(""))
            .env("FAAS_TOKEN", &d.token)
            .env("FAAS_WORKER", id)
            .env("FAAS_ACTION_TRANSPORT", transport)
            .env("FAAS_TEST_ACTIONS", actions)
            .env("FAAS_AMQP_URL", amqp_url())
            .env("FAAS_ACTION_INTERVAL_MS", "300")
            .env("PORT", &port)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::options().append(true).open(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("python3 runs the test worker");
        Self {
            child: Some(child),
            id: id.into(),
            log,
        }
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until the action is listed in `state`.
pub fn wait_action(d: &Daemon, name: &str, state: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let (_, actions) = d.get("/v1/actions");
        if let Some(a) = actions
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["name"] == name && a["state"] == state)
        {
            return a.clone();
        }
        assert!(
            Instant::now() < deadline,
            "action {name} never {state}: {actions:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// POST /v1/tasks.
pub fn run_task(d: &Daemon, definition: &str, input: Value) -> (u16, Value) {
    d.post(
        "/v1/tasks",
        json!({ "definition": definition, "file": "task.toml", "input": input }),
    )
}

/// The run once it has ended.
pub fn wait_task(d: &Daemon, id: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let (status, run) = d.get(&format!("/v1/tasks/{id}?wait=5"));
        assert_eq!(status, 200, "{run}");
        if !matches!(run["state"].as_str(), Some("pending" | "running")) {
            return run;
        }
        assert!(Instant::now() < deadline, "task {id} did not end: {run:#}");
    }
}

/// Polls a run until `ok` holds of it.
pub fn wait_until(d: &Daemon, id: &str, timeout: Duration, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let (_, run) = d.get(&format!("/v1/tasks/{id}"));
        if ok(&run) {
            return run;
        }
        assert!(
            Instant::now() < deadline,
            "task {id} never got there: {run:#}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
