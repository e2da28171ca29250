//! The billing benchmark, each figure against a baseline measured in the same run:
//!
//! - ingest: usage records (10 million by default, 10 tenants × 5 services over October and
//!   November 2026) priced at a tariff and posted to the SQLite ledger, in records/s (the
//!   target is at least 50,000/s);
//! - `GET /v1/billing/{tenant}?month=2026-10` end to end over HTTP, by resource and by service
//!   and day: median and p99 (the target is under 20 ms), against a plain scan of the usage
//!   records for the same tenant and month.
//!
//! `cargo run --release -p billing-bench -- [--records N] [--calls N]`
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faas_platform::config::{Config, Overrides};
use faas_platform::store::{MeterRound, PriceRow, Store, UsageRecord};
use faas_platform::{Platform, auth, meter, router, runtime};
use rand::{Rng, SeedableRng};

// The daemon's allocator (platform-api/src/main.rs), so the figures are the daemon's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// 2026-10-01T00:00:00Z and 2026-11-01T00:00:00Z, 2026-12-01T00:00:00Z, in µs.
const OCTOBER: i64 = 1_790_812_800 * 1_000_000;
const NOVEMBER: i64 = 1_793_491_200 * 1_000_000;
const DECEMBER: i64 = 1_796_083_200 * 1_000_000;
const TENANTS: usize = 10;
const SERVICES: usize = 5;
const INTERVAL: i64 = 10_000_000;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

fn tenant(t: usize) -> String {
    format!("tenant-{t}@example.com")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The records, spread evenly over tenants, services and resources, in time order over the
/// two months as the meter writes them.
fn records(n: usize, out: &Store) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    let resources = ["vcpu", "memory", "instance", "requests"];
    let span = (DECEMBER - OCTOBER) / INTERVAL;
    let mut made = 0;
    while made < n {
        let batch = (n - made).min(50_000);
        let mut round = MeterRound::default();
        for i in made..made + batch {
            let t = i % TENANTS;
            let s = (i / TENANTS) % SERVICES;
            let resource = resources[(i / (TENANTS * SERVICES)) % resources.len()];
            let from = OCTOBER + (i as i64 * span / n as i64) * INTERVAL;
            let quantity = match resource {
                "vcpu" => rng.random_range(0..10_000_000_000i64),
                "memory" => rng.random_range(0..(256i64 << 20) * 10_000),
                "instance" => INTERVAL,
                _ => rng.random_range(0..1_000),
            };
            round.records.push(UsageRecord {
                id: 0,
                key: format!(
                    "usage:{}/svc-{s}/prod/r1/i{i}/{resource}/{from}-{}",
                    tenant(t),
                    from + INTERVAL
                ),
                tenant: tenant(t),
                service: format!("svc-{s}"),
                env: "prod".into(),
                release: "r1".into(),
                instance: format!("i{i}"),
                resource: resource.into(),
                from_us: from,
                to_us: from + INTERVAL,
                quantity,
                priced: None,
            });
        }
        out.commit_meter_round(&round).unwrap();
        made += batch;
    }
}

async fn platform(dir: &std::path::Path) -> Arc<Platform> {
    let config = Config::resolve(Overrides {
        data_dir: Some(dir.to_path_buf()),
        meter_interval: Some("off".into()),
        ..Default::default()
    })
    .unwrap();
    let store = Arc::new(Store::open(&dir.join("platform.db")).unwrap());
    let ledger = Arc::new(
        faas_ledger::background::open(
            faas_ledger::LedgerConfig::defaults(),
            &dir.join("ledger.db"),
        )
        .await
        .unwrap(),
    );
    Arc::new(Platform {
        runtime: runtime::DockerRuntime::start("bench".into(), "faas-bench".into()).await,
        router: router::Router::new(&config.domain),
        events: Default::default(),
        sealer: faas_platform::secrets::Sealer::open(dir).unwrap(),
        logs: Arc::new(faas_platform::logs::LogHub::new(
            dir.join("logs"),
            1 << 20,
            Duration::from_secs(3600),
        )),
        meter: meter::Meter::new(None),
        stopping: tokio::sync::watch::channel(false).0,
        started: Instant::now(),
        running: Mutex::new(Default::default()),
        canaries: Mutex::new(Default::default()),
        databases: faas_platform::databases::servers::Servers::new(Default::default()),
        runs: Default::default(),
        tasks: faas_platform::tasks::Engine::new(None),
        problems: Default::default(),
        series: Default::default(),
        traces: Default::default(),
        config,
        store,
        ledger,
    })
}

#[tokio::main]
async fn main() {
    let n = arg("--records", 10_000_000);
    let calls = arg("--calls", 200);
    let dir = tempfile::tempdir().unwrap();
    let p = platform(dir.path()).await;
    let prices = PriceRow {
        vcpu_second: 20_000,
        gib_second: 3_000,
        instance_second: 1_000,
        million_requests: 500_000_000,
        run: 0,
    };
    p.store
        .create_tariff("standard", "EUR", 0, &prices, true)
        .unwrap()
        .unwrap();

    println!(
        "billing bench: {n} usage records, {TENANTS} tenants × {SERVICES} services, October and November 2026"
    );
    let t = Instant::now();
    records(n, &p.store);
    let stored = t.elapsed();
    println!(
        "  records stored by the meter's commit: {:.0}/s ({:.1} s)",
        n as f64 / stored.as_secs_f64(),
        stored.as_secs_f64()
    );

    let t = Instant::now();
    let priced = meter::pricing::price_pending(&p).await.unwrap();
    let ingest = t.elapsed();
    assert_eq!(priced, n);
    println!(
        "  ingest, records priced into ledger charges (2 events each): {:.0} records/s ({:.1} s; target ≥ 50,000/s)",
        n as f64 / ingest.as_secs_f64(),
        ingest.as_secs_f64()
    );

    let t = Instant::now();
    loop {
        let sequenced = p
            .ledger
            .sequence("bench", 60_000_000)
            .await
            .unwrap()
            .unwrap_or(0);
        let aggregated = p.ledger.aggregate().await.unwrap();
        if sequenced + aggregated == 0 {
            break;
        }
    }
    println!(
        "  sequencing and aggregation of {} events: {:.1} s",
        2 * n,
        t.elapsed().as_secs_f64()
    );

    // The API on loopback, with an admin token, as the CLI calls it.
    let token = "faas_bench_admin";
    p.store
        .add_token(
            &auth::hash_token(token),
            "admin@faas.local",
            faas_spec::api::Role::Admin,
            None,
        )
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, faas_platform::app(p.clone())).await });
    let http = reqwest::Client::new();
    let who = tenant(3);
    for (label, query) in [
        ("by resource", "month=2026-10"),
        ("by service and day", "month=2026-10&by=service,day"),
    ] {
        let url = format!("http://{addr}/v1/billing/{who}?{query}");
        let mut times = Vec::with_capacity(calls);
        let mut total = String::new();
        for _ in 0..calls {
            let t = Instant::now();
            let r = http.get(&url).bearer_auth(token).send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            let bill: serde_json::Value = r.json().await.unwrap();
            times.push(t.elapsed());
            total = bill["totals"][0]["amount"]
                .as_str()
                .unwrap_or("")
                .to_owned();
        }
        times.sort();
        println!(
            "  GET /v1/billing ({label}), {calls} calls: median {:.2} ms, p99 {:.2} ms (total {total} EUR)",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99))
        );
    }

    // Baseline: the same tenant-month summed by a plain scan of the usage records.
    let db = rusqlite::Connection::open(dir.path().join("platform.db")).unwrap();
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let mut q = db
            .prepare_cached(
                "SELECT resource, sum(quantity) FROM usage_records
                 WHERE tenant = ?1 AND from_us >= ?2 AND from_us < ?3 GROUP BY resource",
            )
            .unwrap();
        let rows: Vec<(String, i64)> = q
            .query_map(rusqlite::params![who, OCTOBER, NOVEMBER], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(rows.len(), 4);
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "  baseline, a plain scan of the usage records for that tenant-month: median {:.1} ms",
        ms(percentile(&times, 0.5))
    );
}
