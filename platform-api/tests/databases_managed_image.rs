//! The images of the platform's managed servers (the usual ones where a registry answers, else
//! the ones `scripts/setup-test-env.sh` seeds from Debian's packages) behave as the usual ones on
//! the real Docker Engine, and a service's database is provisioned on each through the
//! container's address, as the platform will:
//! - `postgres:15`: a superuser password from `POSTGRES_PASSWORD`, `POSTGRES_DB` made, data on
//!   the volume kept across a new container (which needs no password then), and a clear refusal
//!   to initialise without one;
//! - `redis:7`: a `.conf` argument given to redis-server, reachable from other hosts, ACL users
//!   saved to the ACL file on the volume and kept, with the keys, across a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::pg_connect;
use faas_platform::databases::postgres::{PgAdmin, url};
use faas_platform::databases::{password, principal};

fn docker(args: &[&str]) -> (bool, String) {
    let out = Command::new("docker").args(args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned()
        + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Removes the containers and the volume of a run, whatever happened.
struct Cleanup(Vec<String>, String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &self.0 {
            docker(&["rm", "-f", c]);
        }
        docker(&["volume", "rm", "-f", &self.1]);
    }
}

/// Starts the image on the volume with the environment in `env_file`; returns its address.
fn start(name: &str, volume: &str, env_file: &std::path::Path) -> String {
    let (ok, out) = docker(&[
        "run",
        "-d",
        "--name",
        name,
        "--env-file",
        env_file.to_str().unwrap(),
        "-v",
        &format!("{volume}:/var/lib/postgresql/data"),
        "postgres:15",
    ]);
    assert!(
        ok,
        "docker run postgres:15 (run scripts/setup-test-env.sh): {out}"
    );
    ip_of(name)
}

/// The address of a container on the engine's default network.
fn ip_of(name: &str) -> String {
    docker(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", name]).1
}

/// What `attempt` gives once the container's server takes connections (`secs` at most; its
/// log is shown if it never does).
async fn when_up<T, E: std::fmt::Display, F: std::future::Future<Output = Result<T, E>>>(
    container: &str,
    secs: u64,
    mut attempt: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match attempt().await {
            Ok(t) => return t,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "{e}\n{}",
                    docker(&["logs", container]).1
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Connects as the admin once the server takes connections.
async fn admin(ip: &str, pw: &str, name: &str) -> PgAdmin {
    let admin_url = format!("postgres://postgres:{pw}@{ip}:5432/postgres");
    when_up(name, 60, || PgAdmin::connect(&admin_url)).await
}

#[tokio::test]
async fn the_managed_postgresql_image_keeps_the_usual_contract() {
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let (first, second, bare) = (
        format!("faas-test-pg-{run}-a"),
        format!("faas-test-pg-{run}-b"),
        format!("faas-test-pg-{run}-c"),
    );
    let volume = format!("faas-test-pg-{run}");
    let _cleanup = Cleanup(
        vec![first.clone(), second.clone(), bare.clone()],
        volume.clone(),
    );
    let dir = tempfile::tempdir().unwrap();
    let admin_pw = password();
    let with_password = dir.path().join("first.env");
    std::fs::write(
        &with_password,
        format!("POSTGRES_PASSWORD={admin_pw}\nPOSTGRES_DB=app\n"),
    )
    .unwrap();

    let ip = start(&first, &volume, &with_password);
    let a = admin(&ip, &admin_pw, &first).await;
    let p = principal(&format!("api-{run}"), "prod", "main");
    let pw = password();
    a.ensure(&p, &pw).await.unwrap();
    let c = pg_connect(&url(&p, &pw, &ip, 5432)).await.unwrap();
    c.batch_execute("CREATE TABLE orders (id int); INSERT INTO orders VALUES (7)")
        .await
        .unwrap();
    // POSTGRES_DB was made; the wrong admin password is refused from another host.
    pg_connect(&format!("postgres://postgres:{admin_pw}@{ip}:5432/app"))
        .await
        .unwrap();
    let wrong = pg_connect(&format!("postgres://postgres:{pw}@{ip}:5432/app"))
        .await
        .unwrap_err();
    assert!(wrong.contains("password authentication failed"), "{wrong}");
    drop((a, c));
    docker(&["rm", "-f", &first]);

    // A new container on the same volume: no password needed to start, the data is there.
    let empty = dir.path().join("second.env");
    std::fs::write(&empty, "").unwrap();
    let ip = start(&second, &volume, &empty);
    admin(&ip, &admin_pw, &second).await;
    let c = pg_connect(&url(&p, &pw, &ip, 5432)).await.unwrap();
    let n: i32 = c
        .query_one("SELECT id FROM orders", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 7);

    // An empty volume and no password: it refuses to initialise, and says how to fix it.
    let fresh = format!("{volume}-fresh");
    let (ok, out) = docker(&[
        "run",
        "--rm",
        "--name",
        &bare,
        "-v",
        &format!("{fresh}:/var/lib/postgresql/data"),
        "postgres:15",
    ]);
    docker(&["volume", "rm", "-f", &fresh]);
    assert!(!ok && out.contains("POSTGRES_PASSWORD"), "{out}");
}

#[tokio::test]
async fn the_managed_redis_image_takes_a_config_and_keeps_its_users() {
    use faas_platform::databases::redis::{RedisAdmin, prefix, url as redis_url};
    use sha2::Digest;
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let name = format!("faas-test-redis-{run}");
    let volume = format!("faas-test-redis-{run}");
    let _cleanup = Cleanup(vec![name.clone()], volume.clone());
    let admin_pw = password();
    let hash = hex::encode(sha2::Sha256::digest(admin_pw.as_bytes()));
    // The configuration and the first users, written onto the volume as the platform will.
    let (ok, out) = docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{volume}:/data"),
        "--entrypoint",
        "sh",
        "redis:7",
        "-c",
        &format!(
            "printf 'aclfile /data/users.acl\\nsave 3600 1\\n' > /data/redis.conf && printf 'user default off\\nuser admin on #{hash} ~* &* +@all\\n' > /data/users.acl"
        ),
    ]);
    assert!(ok, "redis:7 (run scripts/setup-test-env.sh): {out}");
    let (ok, out) = docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "-v",
        &format!("{volume}:/data"),
        "redis:7",
        "/data/redis.conf",
    ]);
    assert!(ok, "{out}");
    let ip = ip_of(&name);
    let admin_url = format!("redis://admin:{admin_pw}@{ip}:6379");
    let admin = when_up(&name, 30, || RedisAdmin::connect(&admin_url)).await;
    let p = principal(&format!("api-{run}"), "prod", "cache");
    let pw = password();
    admin.ensure(&p, &prefix("api", "prod"), &pw).await.unwrap();
    let service = redis::Client::open(redis_url(&p, &pw, &ip, 6379)).unwrap();
    let mut con = service.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg("api:prod:greeting")
        .arg("hello")
        .query_async(&mut con)
        .await
        .unwrap();
    // Nobody gets in without a user.
    let anonymous = redis::Client::open(format!("redis://{ip}:6379")).unwrap();
    let mut anon = anonymous.get_multiplexed_async_connection().await.unwrap();
    let refused = redis::cmd("GET")
        .arg("api:prod:greeting")
        .query_async::<Option<String>>(&mut anon)
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.to_lowercase().contains("auth"), "{refused}");
    drop((admin, con, anon));

    // Restarted: the user and the key are still there.
    let (ok, out) = docker(&["restart", &name]);
    assert!(ok, "{out}");
    let ip = ip_of(&name);
    let service = redis::Client::open(redis_url(&p, &pw, &ip, 6379)).unwrap();
    let mut con = when_up(&name, 30, || service.get_multiplexed_async_connection()).await;
    let got: Option<String> = redis::cmd("GET")
        .arg("api:prod:greeting")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(got.as_deref(), Some("hello"));
}
