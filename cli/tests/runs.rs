//! `faas function …` and `faas service cron …` as a developer runs them against the local
//! platform on the real Docker Engine: a run's output split to stdout and stderr and its exit
//! code as faas's (124 for a timeout), detach and cancel, the listings; cron entries listed,
//! run by hand, and their history.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::platform::DevBox;
use common::{code, stderr, stdout, succeeded};

#[test]
fn a_function_run_exits_as_its_command_does_with_its_output_split() {
    let d = DevBox::new();
    let out = d.run(&[
        "function",
        "run",
        "busybox:stable",
        "--env",
        "WHO=ada",
        "--",
        "sh",
        "-c",
        "echo hello $WHO; echo oops >&2; exit 3",
    ]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "hello ada");
    assert!(stderr(&out).contains("oops"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("exited with code 3"),
        "{}",
        stderr(&out)
    );

    let out = d.run(&[
        "function",
        "run",
        "busybox:stable",
        "--timeout",
        "1s",
        "--",
        "sleep",
        "30",
    ]);
    assert_eq!(code(&out), 124, "{}", stderr(&out));

    let out = d.run(&[
        "function",
        "run",
        "busybox:stable",
        "--detach",
        "--",
        "sleep",
        "30",
    ]);
    succeeded(&out);
    let id = stdout(&out).trim().to_owned();
    assert!(id.starts_with("run-"), "{id}");
    succeeded(&d.run(&["function", "cancel", &id]));
    let show = || stdout(&d.run(&["function", "show", &id, "--json"]));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !show().contains("\"cancelled\"") {
        assert!(std::time::Instant::now() < deadline, "{}", show());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let list = stdout(&d.run(&["function", "list"]));
    assert_eq!(list.lines().count(), 3, "{list}");
    assert!(
        list.contains("timed_out") && list.contains("failed"),
        "{list}"
    );

    let out = d.run(&["function", "run", "no-such-image:never"]);
    assert_ne!(code(&out), 0);
    let out = d.run(&["function", "run", "busybox:stable", "--env", "NOEQUALS"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
}

#[test]
fn cron_entries_are_listed_run_by_hand_and_their_history_kept() {
    let d = DevBox::new();
    succeeded(&d.run(&[
        "launch",
        "ticker",
        "--template",
        "static",
        "--no-input",
        "--owner",
        "ada@example.com",
    ]));
    let dir = d.work().join("ticker");
    let manifest = dir.join("app.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str(
        "\n[[cron]]\nname = \"nightly\"\nschedule = \"0 3 * * *\"\ntimezone = \"Europe/Paris\"\ncommand = [\"sh\", \"-c\", \"echo nightly ran; exit 4\"]\n",
    );
    std::fs::write(&manifest, text).unwrap();
    succeeded(&d.deploy_prod(&dir, &[]));
    let list = stdout(&d.run_in(&dir, &["service", "cron", "list"]));
    assert!(
        list.contains("nightly") && list.contains("Europe/Paris"),
        "{list}"
    );
    let out = d.run_in(&dir, &["service", "cron", "run", "nightly"]);
    succeeded(&out);
    let id = stdout(&out).trim().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let history = stdout(&d.run_in(&dir, &["service", "cron", "history", "nightly"]));
        if history.contains("exited with code 4") {
            assert!(history.contains(&id), "{history}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{history}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let status = d.run_in(&dir, &["service", "status"]);
    assert!(
        stderr(&status).contains("cron `nightly` failed"),
        "{}",
        stderr(&status)
    );
    let logs = stdout(&d.run_in(&dir, &["service", "logs", "--instance", &id]));
    assert!(logs.contains("nightly ran"), "{logs}");
}
