//! What a developer does with a deployed service's databases, end to end on the real Docker
//! Engine and servers: rotation under constant load (no failed request, the old password
//! refused afterwards), backup and restore of a table and a key, and databases on external
//! servers (Debian's PostgreSQL and RabbitMQ on loopback, started by scripts/setup-test-env.sh).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::dbapp::*;
use common::{Daemon, Load};

fn download(d: &Daemon, path: &str) -> (u16, Vec<u8>) {
    let r = d
        .http
        .get(d.api(path))
        .bearer_auth(&d.token)
        .send()
        .unwrap();
    (r.status().as_u16(), r.bytes().unwrap().to_vec())
}

fn upload(d: &Daemon, path: &str, body: Vec<u8>) -> (u16, String) {
    let r = d
        .http
        .post(d.api(path))
        .bearer_auth(&d.token)
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

#[test]
fn rotation_under_load_fails_no_request_and_backups_round_trip() {
    let d = Daemon::start();
    d.create_service("shop");
    let m = manifest("shop", &[("main", "postgresql"), ("cache", "redis")]);
    succeeded(&d, "shop", &m);
    ok(&d, "shop", "/pg/put/apple");
    ok(&d, "shop", "/redis/put/hello");
    let before = instance_env(&d, "shop");

    // Rotation of both, each request of the load opening its own connections meanwhile.
    let host = d.host("shop", "prod");
    let pg_load = Load::start_path(d.router_port, host.clone(), "/pg/get");
    let redis_load = Load::start_path(d.router_port, host, "/redis/get");
    for name in ["main", "cache"] {
        let (status, body) = d.post(
            &format!("/v1/services/shop/databases/{name}/rotate?env=prod"),
            serde_json::json!({}),
        );
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["database"]["rotating"], true);
        let dep = d.wait_deployment(
            "shop",
            body["deployment"].as_str().unwrap(),
            Duration::from_secs(120),
        );
        assert_eq!(dep["state"], "succeeded", "{dep:#}");
        assert!(steps(&d, "shop", &dep).contains(&"database-rotated".to_owned()));
    }
    let (pg_ok, pg_failed, pg_errors) = pg_load.finish();
    let (redis_ok, redis_failed, redis_errors) = redis_load.finish();
    assert_eq!(pg_failed, 0, "{pg_errors:?}");
    assert_eq!(redis_failed, 0, "{redis_errors:?}");
    assert!(pg_ok > 0 && redis_ok > 0);
    eprintln!("rotation under load: {pg_ok} + {redis_ok} requests, 0 failed");

    // The old passwords are refused, the new ones open the same data.
    let after = instance_env(&d, "shop");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let old = from_host(&var(&before, "DATABASE_URL"), &d, "postgresql");
        let new = from_host(&var(&after, "DATABASE_URL"), &d, "postgresql");
        assert_ne!(old, new);
        let refused = common::pg_connect(&old).await.err().unwrap_or_default();
        assert!(
            refused.contains("password authentication failed"),
            "{refused}"
        );
        common::pg_connect(&new).await.unwrap();
        let old = redis::Client::open(from_host(&var(&before, "REDIS_URL"), &d, "redis")).unwrap();
        assert!(old.get_multiplexed_async_connection().await.is_err());
    });
    assert_eq!(ok(&d, "shop", "/pg/get"), "apple");
    assert_eq!(ok(&d, "shop", "/redis/get"), "hello");
    assert!(
        databases(&d, "shop")
            .iter()
            .all(|db| db["rotating"] == false)
    );

    // Backups, then the data changed, then restored.
    let (status, pg_dump) = download(&d, "/v1/services/shop/databases/main/backup?env=prod");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&pg_dump));
    assert!(pg_dump.starts_with(b"PGDMP"));
    let (status, redis_dump) = download(&d, "/v1/services/shop/databases/cache/backup?env=prod");
    assert_eq!(status, 200);
    ok(&d, "shop", "/pg/clear");
    ok(&d, "shop", "/pg/put/banana");
    ok(&d, "shop", "/redis/put/changed");
    let (status, body) = upload(
        &d,
        "/v1/services/shop/databases/main/restore?env=prod",
        pg_dump,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(ok(&d, "shop", "/pg/get"), "apple");
    let (status, body) = upload(
        &d,
        "/v1/services/shop/databases/cache/restore?env=prod",
        redis_dump.clone(),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("restored 1 keys"), "{body}");
    assert_eq!(ok(&d, "shop", "/redis/get"), "hello");
    // A file of the other engine is refused, and nothing changes.
    let (status, body) = upload(
        &d,
        "/v1/services/shop/databases/main/restore?env=prod",
        redis_dump,
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(ok(&d, "shop", "/pg/get"), "apple");
}

#[test]
fn databases_on_external_servers() {
    let pg = common::pg_server();
    let d = Daemon::start_with(&[
        ("FAAS_PLATFORM_POSTGRESQL_ADMIN_URL", pg.as_str()),
        (
            "FAAS_PLATFORM_RABBITMQ_ADMIN_URL",
            "http://guest:guest@127.0.0.1:55673",
        ),
        ("FAAS_PLATFORM_RABBITMQ_SERVICE_ADDR", "127.0.0.1:55672"),
    ]);
    d.create_service("ext");
    succeeded(
        &d,
        "ext",
        &manifest("ext", &[("main", "postgresql"), ("queue", "rabbitmq")]),
    );
    for db in databases(&d, "ext") {
        assert_eq!(db["provider"], "external", "{db}");
        assert_eq!(db["state"], "ready", "{db}");
    }
    assert_eq!(databases(&d, "ext")[0]["server"], "127.0.0.1:55432");
    // The service was given URLs of those servers, and they open its database and vhost.
    let env = instance_env(&d, "ext");
    let url = var(&env, "DATABASE_URL");
    assert!(url.contains("@127.0.0.1:55432/"), "{url}");
    let amqp = var(&env, "AMQP_URL");
    assert!(amqp.contains("@127.0.0.1:55672/"), "{amqp}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = common::pg_connect(&url).await.unwrap();
        client
            .batch_execute("CREATE TABLE t (x int)")
            .await
            .unwrap();
        lapin::Connection::connect(&amqp, lapin::ConnectionProperties::default())
            .await
            .unwrap();
    });
    // No managed server was started.
    for engine in ["postgresql", "rabbitmq"] {
        let found = Command::new("docker")
            .args(["inspect", &d.server_container(engine)])
            .output()
            .unwrap();
        assert!(
            !found.status.success(),
            "a managed {engine} server was started"
        );
    }
    // Removing the service with --purge drops them from the external servers.
    let (status, body) = d.delete("/v1/services/ext?confirm=ext&purge=true");
    assert_eq!(status, 204, "{body}");
    let left = rt
        .block_on(common::pg_connect(&url))
        .err()
        .unwrap_or_default();
    assert!(!left.is_empty(), "the purged database still opens");
}
