//! A sandbox whose `faas` talks to its own local platform (own ports, data directory and HOME);
//! the platform is stopped and its containers removed when the test ends.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct DevBox {
    pub sandbox: super::Sandbox,
    pub api_port: u16,
    pub router_port: u16,
}

impl DevBox {
    pub fn new() -> Self {
        Self {
            sandbox: super::Sandbox::new(),
            api_port: free_port(),
            router_port: free_port(),
        }
    }

    pub fn work(&self) -> PathBuf {
        self.sandbox.work()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.sandbox.home().join(".local/share/faas/platform")
    }

    pub fn cmd_in(&self, dir: &Path) -> Command {
        let mut cmd = self.sandbox.cmd_in(dir);
        cmd.env("FAAS_LOCAL_LISTEN", format!("127.0.0.1:{}", self.api_port))
            .env(
                "FAAS_LOCAL_ROUTER",
                format!("127.0.0.1:{}", self.router_port),
            )
            .env("FAAS_PLATFORM_NETWORK", "faas-test")
            .env("XDG_DATA_HOME", self.sandbox.home().join(".local/share"))
            .env_remove("FAAS_TOKEN")
            .env_remove("FAAS_CONTEXT")
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .stdin(Stdio::null());
        cmd
    }

    pub fn run_in(&self, dir: &Path, args: &[&str]) -> Output {
        self.cmd_in(dir).args(args).output().unwrap()
    }

    /// `faas service deploy -e prod --yes ARGS…` in `dir`.
    pub fn deploy_prod(&self, dir: &Path, args: &[&str]) -> Output {
        let mut all = vec!["service", "deploy", "-e", "prod", "--yes"];
        all.extend_from_slice(args);
        self.run_in(dir, &all)
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_in(&self.work(), args)
    }

    /// Runs `faas` in `dir` with `input` on its stdin.
    pub fn run_with_stdin(&self, dir: &Path, args: &[&str], input: &[u8]) -> Output {
        use std::io::Write;
        let mut child = self
            .cmd_in(dir)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }

    /// A request through this platform's router.
    pub fn route(&self, service: &str, path: &str) -> (u16, String) {
        let r = reqwest::blocking::Client::new()
            .get(format!("http://127.0.0.1:{}{path}", self.router_port))
            .header("host", format!("{service}.localhost"))
            .timeout(Duration::from_secs(10))
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap_or_default())
    }

    pub fn wait_route(&self, service: &str, path: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.route(service, path);
            if got.0 == 200 && got.1.contains(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{service}{path} never answered {want:?}; last {got:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn platform_id(&self) -> Option<String> {
        let info: serde_json::Value = reqwest::blocking::Client::new()
            .get(format!("http://127.0.0.1:{}/_info", self.api_port))
            .timeout(Duration::from_secs(2))
            .send()
            .ok()?
            .json()
            .ok()?;
        info["id"].as_str().map(str::to_owned)
    }
}

impl Drop for DevBox {
    fn drop(&mut self) {
        let id = self.platform_id();
        let _ = self.run(&["platform", "stop"]);
        if let Some(id) = id {
            // Its instances, runs, managed database servers and their volumes.
            let _ = Command::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../scripts/remove-platform.sh"
            ))
            .arg(id)
            .status();
        }
    }
}
