//! Logs that are never lost: kept after instances are replaced or crash, merged in time order,
//! followed across a deploy, resumed without a gap or a duplicate, complete after a daemon is
//! killed, bounded by retention, with long lines split and binary escaped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::BufRead;
use std::time::{Duration, Instant};

use common::*;
use faas_spec::api::LogRecord;

/// A service that says hello with its version, then serves.
fn chatty(name: &str, version: &str, replicas: u32) -> String {
    manifest(name, version, replicas).replace(
        "command = [\"sh\", \"-c\", \"",
        &format!("command = [\"sh\", \"-c\", \"echo hello from {version} && echo warming up {version} >&2 && "),
    )
}

fn logs(d: &Daemon, service: &str, query: &str) -> Vec<LogRecord> {
    let text = d.text(&format!("/v1/services/{service}/logs?env=prod{query}"));
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn wait_for_logs(
    d: &Daemon,
    service: &str,
    query: &str,
    what: &str,
    mut ok: impl FnMut(&[LogRecord]) -> bool,
) -> Vec<LogRecord> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let records = logs(d, service, query);
        if ok(&records) {
            return records;
        }
        let summary: Vec<String> = records
            .iter()
            .rev()
            .take(10)
            .map(|r| format!("{} {}", r.seq, r.line.chars().take(80).collect::<String>()))
            .collect();
        assert!(
            Instant::now() < deadline,
            "{what}; {} records, the last: {summary:#?}",
            records.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn logs_of_replaced_and_crashed_instances_stay_readable_in_time_order() {
    let d = Daemon::start();
    d.create_service("chat");
    let v1 = d.deploy_and_wait("chat", "prod", &chatty("chat", "v1", 1));
    let v2 = d.deploy_and_wait("chat", "prod", &chatty("chat", "v2", 1));
    assert_eq!(v2["state"], "succeeded");
    let crash = d.deploy_and_wait("chat", "prod", &crashing_manifest("chat", 1));
    assert_eq!(crash["state"], "rolled_back");

    let records = wait_for_logs(&d, "chat", "", "the crashed instance's lines", |r| {
        r.iter().any(|r| r.line == "fatal: no config")
    });
    let release_of = |line: &str| {
        records
            .iter()
            .find(|r| r.line == line)
            .map(|r| r.release.clone())
    };
    assert_eq!(
        release_of("hello from v1").as_deref(),
        v1["release"].as_str(),
        "the replaced instance's lines"
    );
    assert_eq!(
        release_of("warming up v1").as_deref(),
        v1["release"].as_str(),
        "stderr too"
    );
    assert_eq!(
        release_of("hello from v2").as_deref(),
        v2["release"].as_str()
    );
    assert_eq!(
        release_of("fatal: no config").as_deref(),
        crash["release"].as_str()
    );
    let crashed = records
        .iter()
        .find(|r| r.line == "fatal: no config")
        .unwrap();
    assert!(records.iter().any(|r| r.stream == "event"
        && r.instance == crashed.instance
        && r.line.contains("stopped")));
    assert!(
        records.windows(2).all(|w| w[0].ts <= w[1].ts),
        "merged in time order"
    );

    // Filters.
    let only = logs(
        &d,
        "chat",
        &format!("&release={}", v1["release"].as_str().unwrap()),
    );
    assert!(
        !only.is_empty()
            && only
                .iter()
                .all(|r| r.release == v1["release"].as_str().unwrap())
    );
    let grepped = logs(&d, "chat", "&grep=hello%20from%20v%5B12%5D");
    assert_eq!(
        grepped.iter().map(|r| r.line.as_str()).collect::<Vec<_>>(),
        ["hello from v1", "hello from v2"]
    );
    let tail = logs(&d, "chat", "&tail=2");
    assert_eq!(tail.len(), 2);
}

#[test]
fn follow_streams_across_a_rolling_deploy_and_resumes_after_a_drop() {
    let d = Daemon::start();
    d.create_service("follow");
    assert_eq!(
        d.deploy_and_wait("follow", "prod", &chatty("follow", "v1", 1))["state"],
        "succeeded"
    );

    let url = d.api("/v1/services/follow/logs?env=prod&follow=true");
    let token = d.token.clone();
    let (tx, rx) = std::sync::mpsc::channel::<LogRecord>();
    let reader = std::thread::spawn(move || {
        let client = reqwest::blocking::Client::builder()
            .timeout(None)
            .build()
            .unwrap();
        let response = client.get(url).bearer_auth(token).send().unwrap();
        for line in std::io::BufReader::new(response).lines() {
            let Ok(line) = line else { break };
            if tx.send(serde_json::from_str(&line).unwrap()).is_err() {
                break;
            }
        }
    });
    let v2 = d.deploy_and_wait("follow", "prod", &chatty("follow", "v2", 1));
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(seen.iter().any(|r: &LogRecord| r.line == "hello from v2")
        && seen.iter().any(|r| r.stream == "event"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        seen.push(
            rx.recv_timeout(left)
                .expect("the followed stream went quiet"),
        );
    }
    drop(rx);
    assert!(
        seen.iter().any(|r| r.line == "hello from v1"),
        "the old instance's lines"
    );
    assert!(
        seen.iter()
            .any(|r| r.release == v2["release"].as_str().unwrap()),
        "the new instance's lines as it starts"
    );
    let seqs: Vec<u64> = seen.iter().map(|r| r.seq).collect();
    let mut unique = seqs.clone();
    unique.dedup();
    assert_eq!(seqs, unique, "no duplicates");
    drop(reader);

    // A dropped client resumes with `after`: the journal's numbers continue without a gap.
    let last = seen.last().unwrap().seq;
    let rest = logs(&d, "follow", &format!("&after={last}"));
    let mut all: Vec<u64> = seen.iter().map(|r| r.seq).collect();
    all.extend(rest.iter().map(|r| r.seq));
    all.sort();
    let first = all[0];
    assert_eq!(
        all,
        (first..first + all.len() as u64).collect::<Vec<_>>(),
        "no gap, no duplicate"
    );
}

#[test]
fn a_daemon_killed_while_a_service_logs_loses_and_repeats_no_line() {
    let mut d = Daemon::start();
    d.create_service("counter");
    let counting = manifest("counter", "v1", 1).replace(
        "command = [\"sh\", \"-c\", \"",
        "command = [\"sh\", \"-c\", \"(i=0; while [ $i -lt 3000 ]; do i=$((i+1)); echo n=$i; usleep 1000; done) & ",
    );
    assert_eq!(
        d.deploy_and_wait("counter", "prod", &counting)["state"],
        "succeeded"
    );
    wait_for_logs(&d, "counter", "&grep=%5En%3D", "some lines", |r| {
        r.len() > 200
    });
    d.kill();
    std::thread::sleep(Duration::from_millis(700)); // the service keeps writing meanwhile
    d.restart(&[]);
    let records = wait_for_logs(&d, "counter", "&grep=%5En%3D", "all 3000 lines", |r| {
        r.iter().any(|r| r.line == "n=3000")
    });
    let numbers: Vec<u32> = records
        .iter()
        .map(|r| r.line[2..].parse().unwrap())
        .collect();
    let mut sorted = numbers.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        (1..=3000).collect::<Vec<u32>>(),
        "every line once, none lost, none doubled"
    );
}

#[test]
fn retention_bounds_a_service_that_logs_fast() {
    let d = Daemon::start_with(&[("FAAS_PLATFORM_LOGS_MAX_BYTES", "1000000")]);
    d.create_service("flood");
    let flood = manifest("flood", "v1", 1).replace(
        "command = [\"sh\", \"-c\", \"",
        "command = [\"sh\", \"-c\", \"yes 'a line of output that repeats and repeats and repeats' | head -n 60000 | sed = | paste - - ; ",
    );
    assert_eq!(
        d.deploy_and_wait("flood", "prod", &flood)["state"],
        "succeeded"
    );
    let dir = d.data_dir().join("logs/flood/prod");
    let size = || {
        std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.metadata().unwrap().len())
            .sum::<u64>()
    };
    wait_for_logs(&d, "flood", "&tail=1&grep=%5E60000", "the last line", |r| {
        !r.is_empty()
    });
    assert!(
        size() <= 1_000_000 + 125_000,
        "kept {} bytes for a 1 MB limit",
        size()
    );
    let tail = logs(&d, "flood", "&tail=3&grep=%5E%5B0-9%5D");
    assert!(
        tail.last().unwrap().line.starts_with("60000"),
        "the newest lines are kept: {tail:?}"
    );
}

#[test]
fn long_lines_are_split_and_binary_is_escaped() {
    let d = Daemon::start();
    d.create_service("odd");
    // 100000 x's on one line, then a line with two bytes that are not UTF-8.
    let odd = manifest("odd", "v1", 1).replace(
        "command = [\"sh\", \"-c\", \"",
        r#"command = ["sh", "-c", "printf '%0100000d' 0 | tr 0 x; echo; printf 'bin \\377\\376 \\001\\033[31m end\\n'; echo after; "#,
    );
    assert_eq!(
        d.deploy_and_wait("odd", "prod", &odd)["state"],
        "succeeded",
        "{odd}"
    );
    let records = wait_for_logs(&d, "odd", "", "the line after the binary one", |r| {
        r.iter().any(|r| r.line == "after")
    });
    let xs: Vec<&LogRecord> = records.iter().filter(|r| r.line.starts_with('x')).collect();
    assert_eq!(
        xs.len(),
        2,
        "100000 bytes make two pieces of at most 64 KiB"
    );
    assert_eq!(
        xs.iter().map(|r| r.line.len()).sum::<usize>(),
        100_000,
        "nothing dropped"
    );
    assert!(xs.iter().all(|r| r.line.len() <= 64 * 1024));
    let binary = records.iter().find(|r| r.line.starts_with("bin ")).unwrap();
    // The engine's log driver turns invalid UTF-8 into U+FFFD; bytes that still arrive invalid
    // are escaped as \xNN. Either way the line and the stream after it survive, control
    // characters included.
    assert!(
        binary.line.ends_with("\u{1}\u{1b}[31m end"),
        "{:?}",
        binary.line
    );
    assert!(
        binary.line == "bin \u{fffd}\u{fffd} \u{1}\u{1b}[31m end"
            || binary.line.starts_with("bin \\xff\\xfe"),
        "{:?}",
        binary.line
    );
}
