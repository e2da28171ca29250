//! The local platform: `faas-platform serve` started in the background by this CLI, with its
//! pid file and log in its data directory.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::{local_data_dir, local_listen, local_router};
use crate::error::{CliError, CliResult};

pub struct Local {
    pub data_dir: PathBuf,
    pub listen: String,
    pub router: String,
}

impl Local {
    pub fn new() -> Self {
        Self {
            data_dir: local_data_dir(),
            listen: local_listen(),
            router: local_router(),
        }
    }

    pub fn pid_file(&self) -> PathBuf {
        self.data_dir.join("platform.pid")
    }

    pub fn log_file(&self) -> PathBuf {
        self.data_dir.join("platform.log")
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.listen)
    }

    /// The running daemon's pid, if its pid file names a live process.
    pub fn pid(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        alive(pid).then_some(pid)
    }

    pub fn answers(&self) -> bool {
        reqwest::blocking::Client::new()
            .get(format!("{}/_info", self.url()))
            .timeout(Duration::from_secs(2))
            .send()
            .is_ok_and(|r| r.status().is_success())
    }

    /// Fails when the platform answering at this CLI's local address keeps its data elsewhere:
    /// another user's platform, or one started with another data directory. Its tokens are
    /// not ours, so every call would be refused as "not logged in".
    pub fn check_ours(&self, context: &crate::config::Context) -> CliResult {
        let client = crate::client::Client::new(context.clone(), None)?;
        let info = client.info()?;
        let ours = same_dir(&self.data_dir, info.data_dir.as_deref());
        if ours != Some(false) {
            return Ok(());
        }
        let theirs = info.data_dir.unwrap_or_default();
        Err(CliError::failed(
            format!(
                "another faas platform answers at {}: its data is in {theirs}, and this CLI's local platform keeps its data in {}",
                self.listen,
                self.data_dir.display()
            ),
            Some(format!(
                "run yours on other ports, e.g. `export {}=127.0.0.1:7701 {}=127.0.0.1:7781` (then `faas platform start`); or use that platform with {}={theirs}; or stop it (as its user: `faas platform stop`)",
                crate::env_vars::FAAS_LOCAL_LISTEN,
                crate::env_vars::FAAS_LOCAL_ROUTER,
                crate::env_vars::FAAS_PLATFORM_DATA_DIR,
            )),
        ))
    }

    /// Starts the daemon in the background and waits until it answers. Returns false when it
    /// was running already.
    /// Where the flags it was last started with are kept, so that a start without them (the
    /// CLI starting it on demand) runs it the same way: on the same runtime and cluster.
    pub fn args_file(&self) -> PathBuf {
        self.data_dir.join("platform.args")
    }

    /// Starts it with the flags it was last started with (none: on the Docker Engine).
    pub fn start(&self) -> CliResult<bool> {
        let args = std::fs::read_to_string(self.args_file())
            .map(|text| text.lines().map(str::to_owned).collect())
            .unwrap_or_default();
        self.start_with(args)
    }

    /// Starts it with `args` after `serve`'s own, and remembers them for later starts.
    pub fn start_with_args(&self, args: Vec<String>) -> CliResult<bool> {
        if self.answers() {
            return Ok(false);
        }
        self.create_data_dir()?;
        std::fs::write(self.args_file(), args.join("\n")).map_err(|e| {
            CliError::failed(
                format!("cannot write {}: {e}", self.args_file().display()),
                None,
            )
        })?;
        self.start_with(args)
    }

    fn create_data_dir(&self) -> CliResult {
        std::fs::create_dir_all(&self.data_dir).map_err(|e| {
            CliError::failed(
                format!("cannot create {}: {e}", self.data_dir.display()),
                None,
            )
        })
    }

    fn start_with(&self, args: Vec<String>) -> CliResult<bool> {
        if self.answers() {
            return Ok(false);
        }
        self.create_data_dir()?;
        let binary = platform_binary()?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_file())
            .map_err(|e| {
                CliError::failed(
                    format!("cannot open {}: {e}", self.log_file().display()),
                    None,
                )
            })?;
        let log_err = log
            .try_clone()
            .map_err(|e| CliError::failed(e.to_string(), None))?;
        let mut command = Command::new(&binary);
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen", &self.listen, "--router", &self.router])
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            // Its own process group: a Ctrl-C in this terminal does not stop it.
            command.process_group(0);
        }
        let mut child = command.spawn().map_err(|e| {
            CliError::failed(format!("cannot start {}: {e}", binary.display()), None)
        })?;
        std::fs::write(self.pid_file(), child.id().to_string()).map_err(|e| {
            CliError::failed(
                format!("cannot write {}: {e}", self.pid_file().display()),
                None,
            )
        })?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.answers() {
                return Ok(true);
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(CliError::failed(
                    format!(
                        "the local platform exited at start ({status}):\n{}",
                        tail(&self.log_file(), 15)
                    ),
                    Some(format!("its whole log is {}", self.log_file().display())),
                ));
            }
            if Instant::now() > deadline {
                return Err(CliError::failed(
                    "the local platform did not answer within 30 s",
                    Some(format!("see {}", self.log_file().display())),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the daemon (SIGTERM) and waits for it. Returns false when none was running.
    pub fn stop(&self) -> CliResult<bool> {
        let Some(pid) = self.pid() else {
            return Ok(false);
        };
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while alive(pid) {
            if Instant::now() > deadline {
                return Err(CliError::failed(
                    format!("the local platform (pid {pid}) did not stop within 30 s"),
                    None,
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_file(self.pid_file());
        Ok(true)
    }
}

fn alive(pid: u32) -> bool {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    if proc_dir.exists() {
        // A zombie is not alive.
        return std::fs::read_to_string(proc_dir.join("stat"))
            .map(|s| s.split_whitespace().nth(2).is_none_or(|state| state != "Z"))
            .unwrap_or(false);
    }
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn tail(path: &std::path::Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `faas-platform` beside this binary, else on PATH.
fn platform_binary() -> CliResult<PathBuf> {
    if let Ok(exe) = std::env::current_exe() {
        let sibling = exe.with_file_name("faas-platform");
        if sibling.is_file() {
            return Ok(sibling);
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join("faas-platform");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(CliError::failed(
        "cannot find the faas-platform binary beside faas or on PATH",
        Some("install both with ./install.sh".into()),
    ))
}

/// Whether a platform's data directory is `ours`; None when it did not say.
fn same_dir(ours: &std::path::Path, theirs: Option<&str>) -> Option<bool> {
    let theirs = std::path::Path::new(theirs?);
    let canonical = |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    Some(canonical(ours) == canonical(theirs))
}
