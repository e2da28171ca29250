//! Billing end to end on the real Docker Engine: the meter reads real containers every second,
//! pricing posts to the ledger, and `GET /v1/billing/{tenant}` answers. A container that burns
//! 8 s of CPU is billed 8 vCPU-seconds, one that holds 48 MiB that much memory over its
//! life, an idle one close to no CPU; a back-dated price change splits the cost at its instant
//! to the nano-unit; a SIGKILL of the daemon neither loses nor doubles an interval, and records
//! priced again are billed once. Every case runs twice: with the ledger on SQLite in the
//! daemon's data directory, and on a fresh database of the test PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{Daemon, OWNER, PgDatabase, wait_until};
use serde_json::{Value, json};

/// The tests burn whole cores: one at a time, so that none slows another's.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Where a case's daemon keeps its ledger.
#[derive(Clone, Copy, PartialEq)]
enum On {
    Sqlite,
    Postgres,
}

/// The daemon's environment for a case on `on`: the meter every `interval`, and the ledger on
/// SQLite in the data directory or on a fresh PostgreSQL database (kept while the guard
/// lives: declare it before the daemon).
fn setup(on: On, interval: &str) -> (Option<PgDatabase>, Vec<(&'static str, String)>) {
    let mut env = vec![("FAAS_PLATFORM_METER_INTERVAL", interval.to_owned())];
    let pg = (on == On::Postgres).then(PgDatabase::create);
    if let Some(db) = &pg {
        env.push(("FAAS_PLATFORM_LEDGER", db.url()));
    }
    (pg, env)
}

/// The daemon keeps its ledger where the case asked: a `ledger.db` in its data directory only
/// on SQLite.
fn started(d: Daemon, on: On) -> Daemon {
    assert_eq!(
        d.data_dir().join("ledger.db").exists(),
        on == On::Sqlite,
        "the ledger is not where the case asked ({})",
        d.log()
    );
    d
}

fn pairs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Burns CPU until the shell itself has used `ticks` hundredths of a second of it (user and
/// system, from /proc), then idles: a known amount of CPU time, whatever else the machine
/// runs meanwhile.
fn burn(ticks: u32) -> String {
    format!(
        "while :; do read -r _ _ _ _ _ _ _ _ _ _ _ _ _ u s _ < /proc/$$/stat; [ $((u+s)) -ge {ticks} ] && break; done; exec sleep 100000"
    )
}

fn service(name: &str, work: &str, cpu: &str) -> String {
    format!(
        r#"name = "{name}"
owner = "{OWNER}"
[run]
port = 8080
command = ["sh", "-c", "mkdir -p /tmp/www && echo ok > /tmp/www/_info && httpd -p 8080 -h /tmp/www && {work}"]
[health]
path = "/_info"
interval = "500ms"
grace = "20s"
[size]
cpu = {cpu}
[scale]
replicas = 1
"#
    )
}

fn tariff(d: &Daemon, vcpu: &str) {
    let (status, body) = d.post(
        "/v1/tariffs",
        json!({ "name": "standard", "currency": "EUR", "effective_from": "2026-01-01T00:00:00Z",
                "prices": { "vcpu_second": vcpu, "gib_second": "0.000003", "instance_second": "0.000001",
                            "million_requests": "0.5" } }),
    );
    assert_eq!(status, 201, "{body}");
}

fn bill(d: &Daemon, query: &str) -> Value {
    let (status, b) = d.get(&format!("/v1/billing/{OWNER}?{query}"));
    assert_eq!(status, 200, "{b}");
    b
}

/// The quantity of a service's resource over every row of the bill (all versions).
fn quantity(b: &Value, service: &str, resource: &str) -> f64 {
    b["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["group"]["service"] == service && r["resource"] == resource)
        .map(|r| r["quantity_micros"].as_i64().unwrap() as f64 / 1e6)
        .sum()
}

/// Polls the bill until `ready` says so and every record is priced.
fn bill_when(d: &Daemon, query: &str, what: &str, mut ready: impl FnMut(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let b = bill(d, query);
        if b["unpriced_records"] == 0 && ready(&b) {
            return b;
        }
        assert!(Instant::now() < deadline, "{what}: {b:#}\n{}", d.log());
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn remove_env(d: &Daemon, service: &str) {
    let (status, body) = d.delete(&format!("/v1/services/{service}/environments/prod"));
    assert_eq!(status, 204, "{body}");
}

fn store(d: &Daemon) -> rusqlite::Connection {
    rusqlite::Connection::open(d.data_dir().join("platform.db")).unwrap()
}

/// (from, to, quantity) of a service's records of a resource, in time order.
fn records(d: &Daemon, service: &str, resource: &str) -> Vec<(i64, i64, i64)> {
    let db = store(d);
    let mut q = db
        .prepare(
            "SELECT from_us, to_us, quantity FROM usage_records WHERE service = ?1 AND resource = ?2
             ORDER BY from_us",
        )
        .unwrap();
    q.query_map([service, resource], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn within(got: f64, want: f64, share: f64) -> bool {
    (got - want).abs() <= want * share
}

fn real_containers_are_billed_what_they_used(on: On) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (_pg, env) = setup(on, "1s");
    let d = started(Daemon::start_with(&pairs(&env)), on);
    tariff(&d, "0.00002");
    for (name, work, cpu) in [
        ("burn", burn(800), "1"),
        (
            "hold",
            "dd if=/dev/zero of=/dev/shm/hold bs=1M count=48 2>/dev/null && exec sleep 100000"
                .into(),
            "0.5",
        ),
        ("idle", "exec sleep 100000".into(), "0.5"),
    ] {
        d.create_service(name);
        let dep = d.deploy_and_wait(name, "prod", &service(name, &work, cpu));
        assert_eq!(dep["state"], "succeeded", "{dep:#}");
    }
    for _ in 0..200 {
        assert_eq!(d.route("idle", "prod", "/_info").0, 200);
    }
    bill_when(
        &d,
        "by=service",
        "eight seconds of each metered, 8 s of CPU burnt",
        |b| {
            quantity(b, "burn", "vcpu") >= 8.0
                && ["burn", "hold", "idle"]
                    .iter()
                    .all(|s| quantity(b, s, "instance") >= 8.0)
        },
    );
    for name in ["burn", "hold", "idle"] {
        remove_env(&d, name);
    }
    let b = bill_when(&d, "by=service", "the requests counted", |b| {
        quantity(b, "idle", "requests") >= 200.0
    });

    let burn_time = quantity(&b, "burn", "instance");
    let burn_cpu = quantity(&b, "burn", "vcpu");
    assert!(
        within(burn_cpu, 8.0, 0.05),
        "8 s of CPU burnt (in {burn_time} s) is billed {burn_cpu} vCPU-s"
    );
    let hold_time = quantity(&b, "hold", "instance");
    let hold_memory = quantity(&b, "hold", "memory");
    let want = 48.0 / 1024.0 * hold_time;
    assert!(
        within(hold_memory, want, 0.05),
        "48 MiB held for {hold_time} s is {want} GiB-s, billed {hold_memory}"
    );
    let idle_cpu = quantity(&b, "idle", "vcpu");
    let idle_time = quantity(&b, "idle", "instance");
    eprintln!(
        "burn: {burn_cpu} vCPU-s in {burn_time} s; hold: {hold_memory} GiB-s (48 MiB × {hold_time} s = {want}); idle: {idle_cpu} vCPU-s in {idle_time} s"
    );
    assert!(
        idle_cpu < 0.02 * idle_time,
        "an idle instance used {idle_cpu} vCPU-s in {idle_time} s"
    );
    assert_eq!(quantity(&b, "idle", "requests"), 200.0, "{b:#}");

    // The bill adds up: rows to subtotals to the total, rounded once.
    let rows: i64 = b["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cost_nanos"].as_i64().unwrap())
        .sum();
    let subtotals: i64 = b["subtotals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cost_nanos"].as_i64().unwrap())
        .sum();
    let total = &b["totals"][0];
    assert_eq!(
        (rows, subtotals),
        (total["cost_nanos"].as_i64().unwrap(), rows)
    );
    let exact = total["cost_nanos"].as_i64().unwrap();
    let rounded = (exact + 5_000_000) / 10_000_000 * 10_000_000;
    assert_eq!(total["rounding_nanos"].as_i64().unwrap(), rounded - exact);
    assert_eq!(b["schema_version"], 1);
    assert_eq!(b["tariff_versions"][0]["version"], 1);
    assert!(b["usage_through"].is_string(), "{b:#}");
}

fn a_back_dated_price_change_splits_the_cost_at_its_instant(on: On) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (_pg, env) = setup(on, "1s");
    let d = started(Daemon::start_with(&pairs(&env)), on);
    tariff(&d, "0.00002");
    d.create_service("burn");
    d.deploy_and_wait("burn", "prod", &service("burn", &burn(100_000), "1"));
    wait_until("six seconds of records", Duration::from_secs(60), || {
        records(&d, "burn", "instance")
            .iter()
            .map(|r| r.1 - r.0)
            .sum::<i64>()
            >= 6_000_000
    });
    // The price of CPU rises in the middle of what was metered, 2.5 s ago.
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    let change = now_us - 2_500_000;
    let change_text = humantime::format_rfc3339_micros(
        std::time::UNIX_EPOCH + Duration::from_micros(change as u64),
    )
    .to_string();
    let (status, body) = d.post(
        "/v1/tariffs/standard/versions",
        json!({ "effective_from": change_text, "prices": { "vcpu_second": "0.00005", "gib_second": "0.000003",
                "instance_second": "0.000001", "million_requests": "0.5" } }),
    );
    assert_eq!(status, 201, "{body}");
    remove_env(&d, "burn");
    let b = bill_when(&d, "by=service,resource", "both versions priced", |b| {
        b["tariff_versions"]
            .as_array()
            .is_some_and(|v| v.len() == 2)
    });

    // By hand, from the records: each interval's CPU at the price of its part of the time.
    let cost = |q: i128, price: i128| ((q * price + 500_000_000) / 1_000_000_000) as i64;
    let mut want = 0i64;
    for (from, to, q) in records(&d, "burn", "vcpu") {
        let q = i128::from(q);
        if to <= change {
            want += cost(q, 20_000);
        } else if from >= change {
            want += cost(q, 50_000);
        } else {
            let before = q * i128::from(change - from) / i128::from(to - from);
            want += cost(before, 20_000) + cost(q - before, 50_000);
        }
    }
    let got: i64 = b["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["resource"] == "vcpu")
        .map(|r| r["cost_nanos"].as_i64().unwrap())
        .sum();
    eprintln!("CPU cost by hand {want} nano-units, billed {got}");
    assert_eq!(got, want, "{b:#}");
    let versions: Vec<i64> = b["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["resource"] == "vcpu")
        .map(|r| r["version"].as_i64().unwrap())
        .collect();
    assert!(versions.contains(&1) && versions.contains(&2), "{b:#}");

    // Re-priced by new events: the old charges are reversed, none was changed.
    let (status, page) = d.post(
        "/v1/ledger/events",
        json!({ "type": "usage", "key": { "tenant": OWNER }, "from": "2026-01-01", "to": "2100-01-01", "limit": 1000 }),
    );
    assert_eq!(status, 200, "{page}");
    let keys: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["idempotency_key"].as_str().unwrap())
        .collect();
    assert!(keys.iter().any(|k| k.starts_with("reverse:")), "{keys:?}");
    assert!(keys.iter().any(|k| k.contains(":r1:v2")), "{keys:?}");
}

fn a_killed_daemon_neither_loses_nor_doubles_usage(on: On) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (_pg, env) = setup(on, "1s");
    let mut d = started(Daemon::start_with(&pairs(&env)), on);
    tariff(&d, "0.00002");
    d.create_service("burn");
    d.deploy_and_wait("burn", "prod", &service("burn", &burn(600), "1"));
    bill_when(&d, "by=service", "two seconds of CPU metered", |b| {
        quantity(b, "burn", "vcpu") >= 2.0
    });
    // SIGKILL, in the middle of metering; the container keeps burning meanwhile.
    d.restart(&pairs(&env));
    bill_when(&d, "by=service", "six seconds of CPU metered", |b| {
        quantity(b, "burn", "vcpu") >= 6.0 && quantity(b, "burn", "instance") >= 8.0
    });
    remove_env(&d, "burn");
    wait_until("the last interval closed", Duration::from_secs(30), || {
        store(&d)
            .query_row(
                "SELECT count(*) FROM meter_cursors WHERE subject NOT LIKE 'requests/%'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
            == 0
    });
    let b = bill_when(&d, "by=service", "priced", |_| true);

    // The intervals follow each other without a gap or an overlap, across the kill.
    let spans = records(&d, "burn", "instance");
    for pair in spans.windows(2) {
        assert_eq!(pair[0].1, pair[1].0, "intervals {pair:?} of {spans:?}");
    }
    let lived = (spans.last().unwrap().1 - spans[0].0) as f64 / 1e6;
    let billed_time = quantity(&b, "burn", "instance");
    assert!(
        (billed_time - lived).abs() < 1e-5,
        "{billed_time} against {lived}"
    );
    let cpu = quantity(&b, "burn", "vcpu");
    eprintln!(
        "across a kill: {cpu} vCPU-s, {billed_time} instance-s, lived {lived} s, {} intervals",
        spans.len()
    );
    assert!(
        within(cpu, 6.0, 0.05),
        "6 s of CPU burnt across a kill is billed {cpu} vCPU-s"
    );

    // Pricing replayed (as if the daemon died after posting, before marking): billed once.
    let before = b["totals"].clone();
    d.kill();
    let reset = store(&d)
        .execute(
            "UPDATE usage_records SET priced = NULL, tariff = NULL WHERE generation = 0",
            [],
        )
        .unwrap();
    assert!(reset > 0);
    d.restart(&pairs(&env));
    let again = bill_when(&d, "by=service", "priced again", |_| true);
    assert_eq!(again["totals"], before);
}

fn a_bill_is_the_tenants_own_and_bad_asks_are_refused(on: On) {
    let (_pg, env) = setup(on, "off");
    let d = started(Daemon::start_with(&pairs(&env)), on);
    let (status, t) = d.post(
        "/v1/tokens",
        json!({ "tenant": "ada@example.com", "role": "member" }),
    );
    assert_eq!(status, 201, "{t}");
    let member = t["token"].as_str().unwrap();
    let (status, own) = d.get_as(member, "/v1/billing/ada@example.com?month=2026-11");
    assert_eq!(status, 200, "{own}");
    assert_eq!(own["period"]["from"], "2026-11-01T00:00:00Z");
    assert_eq!(own["period"]["to"], "2026-12-01T00:00:00Z");
    assert_eq!(own["rows"], json!([]));
    let (status, other) = d.get_as(member, &format!("/v1/billing/{OWNER}"));
    assert_eq!(
        (status, other["code"].as_str()),
        (403, Some("forbidden")),
        "{other}"
    );
    for (query, code) in [
        ("month=2026-13", "invalid-month"),
        ("month=November", "invalid-month"),
        ("by=colour", "invalid-by"),
        ("tz=Mars/Olympus", "invalid-tz"),
        ("from=2026-11-05", "invalid-period"),
        ("from=2026-11-05&to=2026-11-01", "invalid-period"),
        (
            "month=2026-11&from=2026-11-01&to=2026-11-02",
            "invalid-period",
        ),
    ] {
        let (status, p) = d.get(&format!("/v1/billing/{OWNER}?{query}"));
        assert_eq!(
            (status, p["code"].as_str()),
            (400, Some(code)),
            "{query}: {p}"
        );
        assert!(p["hint"].is_string(), "{query}: {p}");
    }
    let (status, p) = d.get("/v1/billing/not-an-address");
    assert_eq!(
        (status, p["code"].as_str()),
        (400, Some("invalid-tenant")),
        "{p}"
    );
    let (status, empty) = d.get(&format!("/v1/billing/{OWNER}?month=&from=&to=&by=&tz="));
    assert_eq!(status, 200, "an empty value is no value: {empty}");
    let (status, paris) = d.get(&format!(
        "/v1/billing/{OWNER}?month=2026-11&tz=Europe/Paris&by=day"
    ));
    assert_eq!(status, 200, "{paris}");
    assert_eq!(paris["period"]["from"], "2026-11-01T00:00:00+01:00");
}

/// Each case as a test on each ledger storage.
macro_rules! on_both {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $case() { super::$case(super::On::Sqlite) } )*
        }
        mod postgres {
            $( #[test] fn $case() { super::$case(super::On::Postgres) } )*
        }
    };
}

on_both!(
    real_containers_are_billed_what_they_used,
    a_back_dated_price_change_splits_the_cost_at_its_instant,
    a_killed_daemon_neither_loses_nor_doubles_usage,
    a_bill_is_the_tenants_own_and_bad_asks_are_refused,
);
