//! Redis databases provisioned per service and environment on a real `redis-server` (Debian's,
//! installed by `scripts/setup-test-env.sh`; each case runs its own on loopback with an ACL
//! file): a service's user reaches only the keys and channels under `<service>:<env>:`, and
//! none of the commands that act on the whole keyspace; users survive a restart of the server;
//! rotation lets both passwords open until the old one is removed; detach keeps the keys;
//! destroy deletes them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use faas_platform::databases::redis::{RedisAdmin, prefix, url};
use faas_platform::databases::{password, principal};
use sha2::Digest;

const ADMIN_PASSWORD: &str = "faas-test-admin";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A redis-server of the test's own: loopback, its files in `dir`.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    /// A server with an ACL file (`dir/users.acl`: an admin, the default user off), on a free
    /// port of its own.
    fn start(dir: &Path) -> Self {
        let acl = dir.join("users.acl");
        let hash = hex::encode(sha2::Sha256::digest(ADMIN_PASSWORD.as_bytes()));
        std::fs::write(
            &acl,
            format!("user default off\nuser admin on #{hash} ~* &* +@all\n"),
        )
        .unwrap();
        Self::on_free_port(dir, |port| {
            format!(
                "bind 127.0.0.1\nport {port}\ndir {}\naclfile {}\nsave 3600 1\nappendonly no\ndaemonize no\n",
                dir.display(),
                acl.display()
            )
        })
    }

    /// Another port may be taken between choosing it and the server binding it: then the server
    /// exits, and another one is tried.
    fn on_free_port(dir: &Path, conf: impl Fn(u16) -> String) -> Self {
        for _ in 0..5 {
            let port = free_port();
            std::fs::write(dir.join("redis.conf"), conf(port)).unwrap();
            if let Some(server) = Self::spawn(dir, port) {
                return server;
            }
        }
        panic!(
            "redis-server did not start on any of 5 ports; see {}",
            dir.join("redis.log").display()
        )
    }

    /// Starts the server of `dir/redis.conf` again (its users and keys are in `dir`).
    fn restart(dir: &Path, port: u16) -> Self {
        Self::spawn(dir, port).expect("redis-server did not start again on its port")
    }

    /// Runs `dir/redis.conf` and waits (20 s at most) until the server says it accepts
    /// connections; `None` if it exits first.
    fn spawn(dir: &Path, port: u16) -> Option<Self> {
        let log = dir.join("redis.log");
        let mut child = Command::new("redis-server")
            .arg(dir.join("redis.conf"))
            .stdout(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("redis-server (run scripts/setup-test-env.sh)");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("Ready to accept connections")
            {
                return Some(Server { child, port });
            }
            if child.try_wait().unwrap().is_some() {
                return None;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not get ready on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM: Redis saves its data set and exits.
    fn stop(mut self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap();
    }

    fn admin_url(&self) -> String {
        format!("redis://admin:{ADMIN_PASSWORD}@127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn login(
    user: &str,
    pw: &str,
    port: u16,
) -> Result<redis::aio::MultiplexedConnection, String> {
    let client = redis::Client::open(url(user, pw, "127.0.0.1", port)).unwrap();
    client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())
}

/// Refused for want of permission (NOPERM).
fn denied(error: &str) -> bool {
    error.to_lowercase().contains("noperm")
}

async fn run(
    con: &mut redis::aio::MultiplexedConnection,
    args: &[&str],
) -> Result<redis::Value, String> {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(con).await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn each_service_reaches_only_its_own_keys_and_users_outlive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let port = server.port;
    let admin = RedisAdmin::connect(&server.admin_url()).await.unwrap();
    let (a, b) = (
        principal("api", "prod", "cache"),
        principal("web", "prod", "cache"),
    );
    let (pa, pb) = (password(), password());
    admin.ensure(&a, &prefix("api", "prod"), &pa).await.unwrap();
    admin.ensure(&b, &prefix("web", "prod"), &pb).await.unwrap();

    let mut ca = login(&a, &pa, port).await.unwrap();
    run(&mut ca, &["SET", "api:prod:greeting", "hello"])
        .await
        .unwrap();
    run(&mut ca, &["RPUSH", "api:prod:queue", "1", "2"])
        .await
        .unwrap();
    let outside = run(&mut ca, &["SET", "web:prod:x", "1"]).await.unwrap_err();
    assert!(denied(&outside), "{outside}");

    // B cannot read A's keys, nor list, scan, sample or flush the keyspace.
    let mut cb = login(&b, &pb, port).await.unwrap();
    for args in [
        &["GET", "api:prod:greeting"][..],
        &["KEYS", "*"],
        &["SCAN", "0"],
        &["RANDOMKEY"],
        &["FLUSHALL"],
        &["FLUSHDB"],
        &["SELECT", "1"],
        &["PUBSUB", "CHANNELS"],
        &["CONFIG", "GET", "*"],
        &["ACL", "LIST"],
    ] {
        let refused = run(&mut cb, args).await.unwrap_err();
        assert!(denied(&refused), "{args:?}: {refused}");
    }
    let wrong = login(&a, &pb, port).await.err().unwrap_or_default();
    assert!(
        wrong.to_lowercase().contains("authentication failed"),
        "{wrong}"
    );

    // The users and the keys outlive a restart of the server.
    drop(ca);
    drop(cb);
    drop(admin);
    server.stop();
    let server = Server::restart(dir.path(), port);
    let admin = RedisAdmin::connect(&server.admin_url()).await.unwrap();
    let mut ca = login(&a, &pa, port).await.unwrap();
    assert_eq!(
        run(&mut ca, &["GET", "api:prod:greeting"]).await.unwrap(),
        redis::Value::BulkString(b"hello".to_vec())
    );
    let mut cb = login(&b, &pb, port).await.unwrap();
    assert!(
        run(&mut cb, &["GET", "api:prod:greeting"])
            .await
            .unwrap_err()
            .to_lowercase()
            .contains("noperm")
    );

    // Rotation: both passwords open until the old one is removed.
    let new = password();
    admin.add_password(&a, &new).await.unwrap();
    login(&a, &pa, port).await.unwrap();
    login(&a, &new, port).await.unwrap();
    admin.remove_password(&a, &pa).await.unwrap();
    assert!(login(&a, &pa, port).await.is_err());
    login(&a, &new, port).await.unwrap();

    // Detach: no login, the keys stay; ensured again, they are there.
    admin.detach(&a).await.unwrap();
    assert_eq!(admin.present(&a).await.unwrap(), Some(false));
    assert!(login(&a, &new, port).await.is_err());
    admin
        .ensure(&a, &prefix("api", "prod"), &new)
        .await
        .unwrap();
    assert_eq!(admin.present(&a).await.unwrap(), Some(true));
    let mut ca = login(&a, &new, port).await.unwrap();
    assert_eq!(
        run(&mut ca, &["LLEN", "api:prod:queue"]).await.unwrap(),
        redis::Value::Int(2)
    );

    // Destroy: A's keys and user are gone, B's untouched.
    run(&mut cb, &["SET", "web:prod:kept", "1"]).await.unwrap();
    drop(ca);
    admin.destroy(&a, &prefix("api", "prod")).await.unwrap();
    assert_eq!(admin.present(&a).await.unwrap(), None);
    let mut root = login("admin", ADMIN_PASSWORD, port).await.unwrap();
    assert_eq!(
        run(
            &mut root,
            &[
                "EXISTS",
                "api:prod:greeting",
                "api:prod:queue",
                "web:prod:kept"
            ]
        )
        .await
        .unwrap(),
        redis::Value::Int(1)
    );
    admin.destroy(&a, &prefix("api", "prod")).await.unwrap();
}

#[tokio::test]
async fn a_server_that_would_forget_its_users_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // No ACL file: the default user, no password, and users kept in memory only.
    let server = Server::on_free_port(dir.path(), |port| {
        format!(
            "bind 127.0.0.1\nport {port}\ndir {}\nsave \"\"\n",
            dir.path().display()
        )
    });
    let port = server.port;
    let admin = RedisAdmin::connect(&format!("redis://127.0.0.1:{port}"))
        .await
        .unwrap();
    let err = admin
        .ensure(&principal("api", "prod", "cache"), "api:prod:", &password())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("ACL file"), "{err}");
}
