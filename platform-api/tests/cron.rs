//! Cron on the real Docker Engine: entries fire on time in a container of the release (its
//! variables, its output in the environment's logs), `forbid` skips a tick while the last run
//! goes on, a run now by hand, bad entries refused; after downtime only the latest missed tick
//! runs; a crash right after a tick is recorded or launched never launches it twice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, manifest_with, wait_until};
use serde_json::{Value, json};

fn history(d: &Daemon, svc: &str, entry: &str) -> Vec<Value> {
    let (status, h) = d.get(&format!(
        "/v1/services/{svc}/cron/{entry}/history?env=prod&limit=100"
    ));
    assert_eq!(status, 200, "{h}");
    h.as_array().unwrap().clone()
}

fn secs(text: &str) -> f64 {
    let t = humantime::parse_rfc3339_weak(text).unwrap();
    t.duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn logs(d: &Daemon, svc: &str) -> String {
    d.text(&format!("/v1/services/{svc}/logs?env=prod"))
}

const ENTRIES: &str = r#"
[run.env]
GREETING = "hello"
[[cron]]
name = "tick"
schedule = "*/2 * * * * *"
command = ["sh", "-c", "echo tick $GREETING $FAAS_RUN"]
[[cron]]
name = "slow"
schedule = "*/2 * * * * *"
command = ["sh", "-c", "sleep 5"]
"#;

#[test]
fn entries_fire_on_time_in_the_release_and_forbid_skips_a_busy_tick() {
    let d = Daemon::start();
    d.create_service("clock");
    let m = manifest_with("clock", "1", 1, "").replace("env = { VERSION = \"1\" }\n", "");
    let dep = d.deploy_and_wait("clock", "prod", &format!("{m}{ENTRIES}"));
    assert_eq!(dep["state"], "succeeded", "{dep:#}");

    wait_until("three ticks run", Duration::from_secs(30), || {
        history(&d, "clock", "tick")
            .iter()
            .filter(|r| r["state"] == "exited")
            .count()
            >= 3
    });
    let runs: Vec<Value> = history(&d, "clock", "tick")
        .into_iter()
        .filter(|r| r["state"] == "exited")
        .collect();
    for r in &runs {
        let tick = secs(r["tick"].as_str().unwrap());
        let recorded = secs(r["created_at"].as_str().unwrap());
        let started = secs(r["started_at"].as_str().unwrap());
        assert!(
            (0.0..1.0).contains(&(recorded - tick)),
            "recorded {} s after its tick: {r}",
            recorded - tick
        );
        assert!(
            (0.0..5.0).contains(&(started - tick)),
            "started {} s after its tick: {r}",
            started - tick
        );
    }
    let ticks: Vec<f64> = runs
        .iter()
        .map(|r| secs(r["tick"].as_str().unwrap()))
        .collect();
    assert!(
        ticks.windows(2).all(|w| (w[0] - w[1]) % 2.0 == 0.0),
        "{ticks:?}"
    );
    let id = runs[0]["id"].as_str().unwrap();
    wait_until(
        "its output in the environment's logs",
        Duration::from_secs(10),
        || logs(&d, "clock").contains(&format!("tick hello {id}")),
    );

    // `slow` runs 5 s every 2 s: the ticks meanwhile are skipped, naming the run, and two of
    // its runs never overlap.
    wait_until("a skipped tick", Duration::from_secs(20), || {
        history(&d, "clock", "slow")
            .iter()
            .any(|r| r["state"] == "skipped")
    });
    let slow = history(&d, "clock", "slow");
    let skipped = slow.iter().find(|r| r["state"] == "skipped").unwrap();
    assert!(
        skipped["reason"]
            .as_str()
            .unwrap()
            .contains("still running"),
        "{skipped}"
    );
    let spans: Vec<(f64, f64)> = slow
        .iter()
        .filter(|r| r["started_at"].is_string())
        .map(|r| {
            let end = r["finished_at"].as_str().map_or(f64::MAX, secs);
            (secs(r["started_at"].as_str().unwrap()), end)
        })
        .collect();
    for (i, a) in spans.iter().enumerate() {
        for b in &spans[i + 1..] {
            assert!(a.1 <= b.0 || b.1 <= a.0, "two runs at once: {a:?} {b:?}");
        }
    }

    // By hand: now, and refused while `slow` still runs, or for an unknown entry.
    let (status, run) = d.post("/v1/services/clock/cron/tick/run?env=prod", json!({}));
    assert_eq!(status, 201, "{run}");
    wait_until("a slow run going", Duration::from_secs(10), || {
        history(&d, "clock", "slow")
            .iter()
            .any(|r| r["state"] == "running")
    });
    let (status, body) = d.post("/v1/services/clock/cron/slow/run?env=prod", json!({}));
    assert_eq!(status, 409, "{body}");
    let (status, body) = d.post("/v1/services/clock/cron/nope/run?env=prod", json!({}));
    assert_eq!(status, 404, "{body}");
    // The service's status shows its entries.
    let (_, s) = d.get("/v1/services/clock");
    assert_eq!(
        s["environments"][0]["cron"].as_array().unwrap().len(),
        2,
        "{s}"
    );
}

#[test]
fn bad_entries_are_refused_with_what_is_wrong() {
    let d = Daemon::start();
    d.create_service("badcron");
    let m = manifest_with("badcron", "1", 1, "");
    for (entry, says) in [
        ("schedule = \"61 * * * *\"", "cron schedule"),
        ("schedule = \"* * *\"", "has 3 fields"),
        (
            "schedule = \"* * * * *\"\ntimezone = \"Mars/Olympus\"",
            "time zone",
        ),
        ("schedule = \"* * * * *\"\ntimeout = \"soon\"", "duration"),
        (
            "schedule = \"* * * * *\"\nconcurrency = \"sometimes\"",
            "concurrency",
        ),
    ] {
        let manifest = format!("{m}[[cron]]\nname = \"job\"\ncommand = [\"true\"]\n{entry}\n");
        let (status, body) = d.post(
            "/v1/services/badcron/deployments",
            json!({ "env": "prod", "image": "busybox:stable", "manifest": manifest }),
        );
        assert_eq!(status, 422, "{entry}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains(says),
            "{entry}: {body}"
        );
    }
}

/// Waits (polling) until `t` has passed.
fn until(t: Instant) {
    wait_until("the time", Duration::from_secs(60), || Instant::now() >= t);
}

#[test]
fn after_downtime_only_the_latest_tick_runs_and_a_crash_never_launches_one_twice() {
    let mut d = Daemon::start();
    d.create_service("late");
    let entry = r#"
[[cron]]
name = "job"
schedule = "*/2 * * * * *"
command = ["sh", "-c", "echo launched $FAAS_RUN"]
starting_deadline = "30s"
"#;
    let dep = d.deploy_and_wait(
        "late",
        "prod",
        &format!("{}{entry}", manifest_with("late", "1", 1, "")),
    );
    assert_eq!(dep["state"], "succeeded", "{dep:#}");
    wait_until("a first tick", Duration::from_secs(10), || {
        !history(&d, "late", "job").is_empty()
    });

    // Down across at least two ticks.
    d.kill();
    let down = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    until(Instant::now() + Duration::from_secs(5));
    d.restart(&[]);
    let up = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    wait_until(
        "the tick after the restart",
        Duration::from_secs(10),
        || {
            history(&d, "late", "job")
                .iter()
                .any(|r| secs(r["tick"].as_str().unwrap()) > up)
        },
    );
    let in_downtime: Vec<Value> = history(&d, "late", "job")
        .into_iter()
        .filter(|r| {
            let t = secs(r["tick"].as_str().unwrap());
            t > down + 0.5 && t < up - 0.5
        })
        .collect();
    assert!(
        in_downtime.len() <= 1,
        "missed ticks replayed: {in_downtime:#?}"
    );

    // A crash right after a tick is recorded, and right after it is launched: after the
    // restart each tick of that life has one run, whose output says so once.
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    for hook in ["cron-recorded", "cron-launched"] {
        let before = now();
        d.restart(&[("FAAS_PLATFORM_CRASH_AT", hook)]);
        assert!(d.wait_exit(Duration::from_secs(30)), "no crash at {hook}");
        let crashed = now();
        d.restart(&[]);
        let of_that_life = || -> Vec<Value> {
            history(&d, "late", "job")
                .into_iter()
                .filter(|r| {
                    let t = secs(r["created_at"].as_str().unwrap());
                    t >= before && t <= crashed
                })
                .collect()
        };
        wait_until(
            "the crashed life's ticks run",
            Duration::from_secs(20),
            || {
                let runs = of_that_life();
                !runs.is_empty() && runs.iter().all(|r| r["state"] == "exited")
            },
        );
        let runs = of_that_life();
        let mut ticks: Vec<&str> = runs.iter().map(|r| r["tick"].as_str().unwrap()).collect();
        ticks.dedup();
        assert_eq!(
            ticks.len(),
            runs.len(),
            "{hook}: a tick run twice: {runs:#?}"
        );
        for r in &runs {
            let id = r["id"].as_str().unwrap();
            wait_until("its output", Duration::from_secs(10), || {
                logs(&d, "late").contains(&format!("launched {id}"))
            });
            let text = logs(&d, "late");
            assert_eq!(text.matches(&format!("launched {id}")).count(), 1, "{hook}");
        }
    }
}
