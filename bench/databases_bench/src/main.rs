//! The databases' benchmark, each figure against a baseline measured in the same run, on the
//! servers `scripts/setup-test-env.sh` starts on loopback:
//!
//! - provisioning one PostgreSQL database on a running server, as a deploy's `database-ready`
//!   step does it: a password, the role, the database, the grants, the password sealed as a
//!   secret (the target is a median under 300 ms), against a bare `CREATE DATABASE` of the
//!   same server (what copying the template costs, the floor of any such design);
//! - provisioning one RabbitMQ vhost and user through the management API, against a bare
//!   `GET /api/overview` of the same API.
//!
//! `cargo run --release -p databases-bench -- [--runs N]`
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use faas_platform::databases::postgres::PgAdmin;
use faas_platform::databases::rabbitmq::RabbitAdmin;
use faas_platform::databases::{password, principal};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(label: &str, mut times: Vec<Duration>, mut baseline: Vec<Duration>) {
    times.sort();
    baseline.sort();
    let (m, b) = (percentile(&times, 0.5), percentile(&baseline, 0.5));
    println!(
        "  {label}: median {:.1} ms, p99 {:.1} ms; baseline median {:.1} ms ({:.2}× the baseline)",
        ms(m),
        ms(percentile(&times, 0.99)),
        ms(b),
        m.as_secs_f64() / b.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let runs = arg("--runs", 50);
    let server = std::env::var("FAAS_LEDGER_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:55432".into());
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let dir = tempfile::tempdir().unwrap();
    let sealer = faas_platform::secrets::Sealer::open(dir.path()).unwrap();
    println!("databases bench: {runs} runs each, servers on loopback");

    let admin_url = format!("{server}/postgres");
    let admin = PgAdmin::connect(&admin_url).await.unwrap();
    let (sql, conn) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let (mut times, mut baseline, mut made) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        let p = principal(&format!("bench-{run}"), "prod", &format!("db{i}"));
        let t = Instant::now();
        let pw = password();
        admin.ensure(&p, &pw).await.unwrap();
        sealer.seal(&format!("DB{i}_URL"), &pw).unwrap();
        times.push(t.elapsed());
        made.push(p);

        let bare = format!("bare_{run}_{i}");
        let t = Instant::now();
        sql.batch_execute(&format!("CREATE DATABASE \"{bare}\""))
            .await
            .unwrap();
        baseline.push(t.elapsed());
        sql.batch_execute(&format!("DROP DATABASE \"{bare}\""))
            .await
            .unwrap();
    }
    summary(
        "PostgreSQL database (role, database, grants, sealed secret)",
        times,
        baseline,
    );
    for p in &made {
        admin.destroy(p).await.unwrap();
    }

    let api = std::env::var("FAAS_TEST_RABBITMQ_API")
        .unwrap_or_else(|_| "http://guest:guest@127.0.0.1:55673".into());
    let rabbit = RabbitAdmin::connect(&api).await.unwrap();
    let (mut times, mut baseline, mut made) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        let p = principal(&format!("bench-{run}"), "prod", &format!("mq{i}"));
        let t = Instant::now();
        rabbit.ensure(&p, &password()).await.unwrap();
        times.push(t.elapsed());
        made.push(p.clone());
        let t = Instant::now();
        rabbit.present(&p).await.unwrap();
        baseline.push(t.elapsed() / 3);
    }
    summary(
        "RabbitMQ vhost and user (three API calls; baseline: one GET, the mean of three)",
        times,
        baseline,
    );
    for p in &made {
        rabbit.destroy(p).await.unwrap();
    }
}
