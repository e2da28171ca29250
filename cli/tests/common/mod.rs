//! Runs the real `faas` binary with an isolated HOME and no inherited styling variables.
#![allow(dead_code)] // each test crate uses a part of these helpers

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn faas_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_faas"))
}

/// A fresh HOME and working directory for one test.
pub struct Sandbox {
    pub root: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("home")).unwrap();
        std::fs::create_dir_all(root.path().join("work")).unwrap();
        Self { root }
    }

    pub fn home(&self) -> PathBuf {
        self.root.path().join("home")
    }

    pub fn work(&self) -> PathBuf {
        self.root.path().join("work")
    }

    pub fn cmd(&self) -> Command {
        self.cmd_in(&self.work())
    }

    pub fn cmd_in(&self, dir: &Path) -> Command {
        let mut cmd = Command::new(faas_bin());
        cmd.current_dir(dir)
            .env("HOME", self.home())
            .env("XDG_CONFIG_HOME", self.home().join(".config"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env_remove("NO_COLOR")
            .env_remove("FAAS_MANIFEST")
            .env_remove("FAAS_NO_INPUT")
            .env_remove("CLICOLOR_FORCE");
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    pub fn run_in(&self, dir: &Path, args: &[&str]) -> Output {
        self.cmd_in(dir).args(args).output().unwrap()
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// Asserts the command exited 0; returns its stderr (the progress it reported).
#[track_caller]
pub fn succeeded(o: &Output) -> String {
    assert_eq!(code(o), 0, "{}", stderr(o));
    stderr(o)
}

/// Reads a child's stdout until a line arrives, within `within`.
pub fn first_line(child: &mut std::process::Child, within: std::time::Duration) -> String {
    use std::io::BufRead;
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    rx.recv_timeout(within)
        .unwrap_or_else(|_| panic!("no line on stdout within {within:?}"))
}

pub mod platform;
