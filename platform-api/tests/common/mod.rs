//! A real `faas-platform` daemon for tests: its own data directory, loopback ports and Docker
//! network; the containers it labelled are removed when the test ends.
#![allow(dead_code)] // each test crate uses a part of these helpers

pub mod dbapp;
pub mod seam;
pub mod workers;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const NETWORK: &str = "faas-test";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Daemon {
    child: Option<Child>,
    pub dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    pub api_port: u16,
    pub router_port: u16,
    pub token: String,
    pub platform_id: String,
    pub http: reqwest::blocking::Client,
    env: Vec<(String, String)>,
}

impl Daemon {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A daemon whose Docker Engine may not answer: ready once the API answers.
    pub fn start_without_docker(env: &[(&str, &str)]) -> Self {
        Self::start_inner(env, false)
    }

    pub fn start_with(env: &[(&str, &str)]) -> Self {
        Self::start_inner(env, true)
    }

    fn start_inner(env: &[(&str, &str)], docker: bool) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_path_buf();
        let mut d = Daemon {
            child: None,
            dir,
            _temp: Some(temp),
            api_port: free_port(),
            router_port: free_port(),
            token: String::new(),
            platform_id: String::new(),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        d.spawn();
        d.wait_ready(docker);
        d
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("daemon.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_faas-platform"));
        cmd.args(["serve", "--network", NETWORK, "--data-dir"])
            .arg(self.data_dir())
            .args(["--listen", &format!("127.0.0.1:{}", self.api_port)])
            .args(["--router", &format!("127.0.0.1:{}", self.router_port)])
            .env("FAAS_LOG", "info,faas_platform=debug")
            .env("XDG_CONFIG_HOME", self.dir.join("config"))
            .env_remove("FAAS_PLATFORM_CRASH_AT")
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().unwrap());
    }

    /// Polls /_info until the API answers (and, when asked, until Docker is connected).
    pub fn wait_ready(&mut self, docker: bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self
                .http
                .get(self.api("/_info"))
                .timeout(Duration::from_secs(2))
                .send()
                && let Ok(info) = r.json::<Value>()
                && (!docker || info["docker"]["available"] == true)
            {
                self.platform_id = info["id"].as_str().unwrap_or_default().to_owned();
                break;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("the daemon exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not get ready in 30 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.token = std::fs::read_to_string(self.data_dir().join("admin-token"))
            .unwrap()
            .trim()
            .to_owned();
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits for the daemon to exit by itself (a crash hook), up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && child.try_wait().unwrap().is_some()
            {
                self.child = None;
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("running");
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the daemon again on the same data directory and ports.
    pub fn restart(&mut self, env: &[(&str, &str)]) {
        self.kill();
        self.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.spawn();
        self.wait_ready(true);
    }

    pub fn api(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.api_port)
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.get_as(&self.token, path)
    }

    pub fn get_as(&self, token: &str, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.api(path))
            .bearer_auth(token)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }

    /// The body of a GET as text (an NDJSON stream, say).
    pub fn text(&self, path: &str) -> String {
        self.http
            .get(self.api(path))
            .bearer_auth(&self.token)
            .send()
            .unwrap()
            .text()
            .unwrap()
    }

    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.post_as(&self.token, path, body)
    }

    pub fn post_as(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.api(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }

    pub fn delete(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .delete(self.api(path))
            .bearer_auth(&self.token)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }

    pub fn create_service(&self, name: &str) {
        let (status, body) = self.post("/v1/services", json!({ "name": name, "owner": OWNER }));
        assert_eq!(status, 201, "{body}");
    }

    /// Starts a deployment; returns its id.
    pub fn deploy(&self, service: &str, env: &str, manifest: &str) -> String {
        let (status, body) = self.post(
            &format!("/v1/services/{service}/deployments"),
            json!({ "env": env, "image": "busybox:stable", "manifest": manifest }),
        );
        assert_eq!(status, 202, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// Polls the deployment until it ends; returns it.
    pub fn wait_deployment(&self, service: &str, id: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (status, d) = self.get(&format!("/v1/services/{service}/deployments/{id}"));
            assert_eq!(status, 200, "{d}");
            if ["succeeded", "failed", "rolled_back"].contains(&d["state"].as_str().unwrap_or("")) {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "deployment {id} did not end within {timeout:?}: {d:#}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn deploy_and_wait(&self, service: &str, env: &str, manifest: &str) -> Value {
        let id = self.deploy(service, env, manifest);
        self.wait_deployment(service, &id, Duration::from_secs(60))
    }

    pub fn host(&self, service: &str, env: &str) -> String {
        if env == "prod" {
            format!("{service}.localhost")
        } else {
            format!("{service}-{env}.localhost")
        }
    }

    /// A request through the router.
    pub fn route(&self, service: &str, env: &str, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("http://127.0.0.1:{}{path}", self.router_port))
            .header("host", self.host(service, env))
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap_or_default())
    }

    /// The containers this platform labelled: (name, release label, running).
    pub fn containers(&self) -> Vec<(String, String, bool)> {
        let out = Command::new("docker")
            .args([
                "ps",
                "-a",
                "--filter",
                &format!("label=io.faas.platform={}", self.platform_id),
            ])
            .args([
                "--format",
                "{{.Names}} {{.Label \"io.faas.release\"}} {{.State}}",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let mut parts = l.split_whitespace();
                Some((
                    parts.next()?.to_owned(),
                    parts.next()?.to_owned(),
                    parts.next()? == "running",
                ))
            })
            .collect()
    }

    /// The container (and volume) of this platform's managed server of `engine`.
    pub fn server_container(&self, engine: &str) -> String {
        let id = &self.platform_id;
        format!("faas-{}-{engine}", &id[..id.len().min(12)])
    }

    pub fn current_release(&self, service: &str, env: &str) -> Value {
        let (_, svc) = self.get(&format!("/v1/services/{service}"));
        svc["environments"]
            .as_array()
            .and_then(|envs| envs.iter().find(|e| e["env"] == env))
            .map(|e| e["release"].clone())
            .unwrap_or(Value::Null)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
        if !self.platform_id.is_empty() {
            remove_platform_containers(&self.platform_id);
        }
    }
}

/// Removes what a platform left on the engine: its instances, its runs, its managed database
/// servers and their volumes (scripts/remove-platform.sh).
pub fn remove_platform_containers(platform_id: &str) {
    let _ = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/remove-platform.sh"
    ))
    .arg(platform_id)
    .status();
}

pub const OWNER: &str = "team@example.com";

/// A busybox service that serves `version` at `/` and answers `/_info` (unless `healthy` is
/// false), with `replicas` instances.
pub fn manifest(name: &str, version: &str, replicas: u32) -> String {
    manifest_with(name, version, replicas, "")
}

pub fn manifest_with(name: &str, version: &str, replicas: u32, extra: &str) -> String {
    format!(
        r#"name = "{name}"
owner = "{OWNER}"
[run]
port = 8080
command = ["sh", "-c", "mkdir -p /tmp/www && echo ok > /tmp/www/_info && echo $VERSION > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"]
env = {{ VERSION = "{version}" }}
[health]
path = "/_info"
interval = "500ms"
grace = "20s"
[scale]
replicas = {replicas}
{extra}"#
    )
}

/// A busybox service whose `/cgi-bin/v` answers its version, and 500 to `fail_percent` of
/// requests.
pub fn flaky_release(name: &str, version: &str, fail_percent: u32, deploy: &str) -> String {
    format!(
        r#"name = "{name}"
owner = "{OWNER}"
[run]
port = 8080
command = ["sh", "-c", "mkdir -p /tmp/www/cgi-bin && echo ok > /tmp/www/_info && printf '%s\n' \"$SCRIPT\" > /tmp/www/cgi-bin/v && chmod +x /tmp/www/cgi-bin/v && exec httpd -f -p 8080 -h /tmp/www"]
[run.env]
SCRIPT = '''
#!/bin/sh
if [ $((RANDOM % 100)) -lt {fail_percent} ]; then
  printf 'Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\n{version} failed\n'
else
  printf 'Content-Type: text/plain\r\n\r\n{version}\n'
fi
'''
[health]
path = "/_info"
interval = "500ms"
grace = "20s"
[scale]
replicas = 2
{deploy}"#
    )
}

/// A busybox service for blue-green: `/` says its version, `/smoke` answers 200 after
/// `smoke_delay` seconds (a CGI script), so the set waits at its preview host meanwhile.
pub fn bluegreen_release(name: &str, version: &str, keep: &str, smoke: &str, delay: u32) -> String {
    format!(
        r#"name = "{name}"
owner = "{OWNER}"
[run]
port = 8080
command = ["sh", "-c", "mkdir -p /tmp/www/cgi-bin && echo ok > /tmp/www/_info && echo {version} > /tmp/www/index.html && printf '#!/bin/sh\nsleep {delay}\nprintf \"Content-Type: text/plain\\r\\n\\r\\nsmoke ok\\n\"\n' > /tmp/www/cgi-bin/smoke && chmod +x /tmp/www/cgi-bin/smoke && exec httpd -f -p 8080 -h /tmp/www"]
[health]
path = "/_info"
interval = "500ms"
grace = "20s"
[scale]
replicas = 2
[deploy]
strategy = "bluegreen"
[deploy.bluegreen]
keep_previous = "{keep}"
smoke = "{smoke}"
"#
    )
}

/// A `[deploy]` table for a canary.
pub fn canary_table(steps: &str, interval: &str, min_requests: u32, auto: bool) -> String {
    format!(
        "[deploy]\nstrategy = \"canary\"\n[deploy.canary]\nsteps = {steps}\ninterval = \"{interval}\"\nmin_requests = {min_requests}\nauto = {auto}\nmax_error_rate = 0.05\n"
    )
}

/// A release whose container prints a line and exits with 3.
pub fn crashing_manifest(name: &str, replicas: u32) -> String {
    format!(
        r#"name = "{name}"
owner = "{OWNER}"
[run]
port = 8080
command = ["sh", "-c", "echo booting; echo 'fatal: no config' >&2; exit 3"]
[health]
path = "/_info"
grace = "20s"
[scale]
replicas = {replicas}
"#
    )
}

/// A release that runs but never answers its health check.
pub fn unhealthy_manifest(name: &str, grace: &str) -> String {
    format!(
        r#"name = "{name}"
owner = "{OWNER}"
[run]
port = 8080
command = ["sh", "-c", "echo serving without a health endpoint; mkdir -p /tmp/www && exec httpd -f -v -p 8080 -h /tmp/www"]
[health]
path = "/_info"
interval = "500ms"
grace = "{grace}"
[scale]
replicas = 1
"#
    )
}

/// Sends requests through the router until told to stop; counts the answers that were not 200.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<(u64, u64, Vec<String>)>>,
}

impl Load {
    pub fn start(router_port: u16, host: String) -> Self {
        Self::start_path(router_port, host, "/")
    }

    /// Requests `path` of `host`, one after another, until finished.
    pub fn start_path(router_port: u16, host: String, path: &'static str) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let (mut ok, mut failed, mut errors) = (0u64, 0u64, Vec::new());
            let deadline = Instant::now() + Duration::from_secs(120);
            while !flag.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < deadline {
                match client
                    .get(format!("http://127.0.0.1:{router_port}{path}"))
                    .header("host", &host)
                    .send()
                {
                    Ok(r) if r.status().is_success() => {
                        ok += 1;
                        let _ = r.text();
                    }
                    // The first few failures are enough to say what went wrong.
                    Ok(r) => {
                        failed += 1;
                        if errors.len() < 10 {
                            errors.push(format!(
                                "{}: {}",
                                r.status(),
                                r.text().unwrap_or_default()
                            ));
                        }
                    }
                    Err(e) => {
                        failed += 1;
                        if errors.len() < 10 {
                            errors.push(e.to_string());
                        }
                    }
                }
            }
            (ok, failed, errors)
        });
        Load {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops the load; returns (answered 200, failed, the failures).
    pub fn finish(mut self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.handle.take().unwrap().join().unwrap()
    }
}

pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}

/// The test PostgreSQL's admin URL, without a database (`FAAS_LEDGER_PG`, as the ledger's
/// tests; default: the one `scripts/setup-test-env.sh` starts).
pub fn pg_server() -> String {
    std::env::var("FAAS_LEDGER_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:55432".into())
}

/// A connection to PostgreSQL, or the server's own words for why not.
pub async fn pg_connect(url: &str) -> Result<tokio_postgres::Client, String> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| {
            e.as_db_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_owned())
        })?;
    tokio::spawn(conn);
    Ok(client)
}

/// A fresh database of the test PostgreSQL (`FAAS_LEDGER_PG`, default: the one
/// `scripts/setup-test-env.sh` starts), for a daemon's ledger; dropped with this value.
pub struct PgDatabase {
    server: String,
    name: String,
}

impl PgDatabase {
    pub fn create() -> Self {
        let server = pg_server();
        let name = format!("faas_t_{}", uuid::Uuid::new_v4().simple());
        let db = PgDatabase { server, name };
        db.psql(&format!("CREATE DATABASE {}", db.name));
        db
    }

    /// The URL `--ledger` takes.
    pub fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }

    fn psql(&self, sql: &str) {
        let out = Command::new("psql")
            .args([&format!("{}/postgres", self.server), "-qAtc", sql])
            .output()
            .expect("psql (run scripts/setup-test-env.sh)");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        self.psql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}
