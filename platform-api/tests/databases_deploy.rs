//! Databases provisioned by deployments, end to end on the real Docker Engine: the platform's
//! managed PostgreSQL, Redis and RabbitMQ servers (containers with named volumes), a deployed
//! service (tests/fixtures/dbapp.py on faas-test/dbclient:1, with the engines' Python drivers)
//! that really uses them through the injected URLs, and another service whose credentials reach
//! none of the first one's data.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::dbapp::*;
use common::{Daemon, wait_until};
use serde_json::json;

#[test]
fn a_service_uses_its_databases_and_reaches_no_other_services() {
    let d = Daemon::start();
    let dbs = [
        ("main", "postgresql"),
        ("cache", "redis"),
        ("queue", "rabbitmq"),
    ];
    for svc in ["shop", "blog"] {
        d.create_service(svc);
        let dep = succeeded(&d, svc, &manifest(svc, &dbs));
        let kinds = steps(&d, svc, &dep);
        let ready = kinds.iter().position(|k| k == "database-ready").unwrap();
        let first_instance = kinds.iter().position(|k| k == "instance-starting").unwrap();
        assert!(ready < first_instance, "{kinds:?}");
        assert_eq!(kinds.iter().filter(|k| *k == "database-ready").count(), 3);
    }

    // The service really uses each of them through the URLs it was given.
    assert_eq!(ok(&d, "shop", "/pg/put/apple"), "stored");
    assert_eq!(ok(&d, "shop", "/pg/get"), "apple");
    assert_eq!(
        ok(&d, "blog", "/pg/get"),
        "",
        "each service has its own database"
    );
    assert_eq!(ok(&d, "shop", "/redis/put/hello"), "stored");
    assert_eq!(ok(&d, "shop", "/redis/get"), "hello");
    assert_eq!(ok(&d, "blog", "/redis/get"), "");
    assert_eq!(ok(&d, "shop", "/amqp/ping"), "ping");

    // Conventional and own names; no password in the API.
    let shop = instance_env(&d, "shop");
    assert_eq!(var(&shop, "DATABASE_URL"), var(&shop, "MAIN_URL"));
    assert_eq!(var(&shop, "REDIS_URL"), var(&shop, "CACHE_URL"));
    assert_eq!(var(&shop, "AMQP_URL"), var(&shop, "QUEUE_URL"));
    let listed = databases(&d, "shop");
    assert_eq!(listed.len(), 3, "{listed:?}");
    for db in &listed {
        assert_eq!(db["provider"], "managed");
        assert_eq!(db["state"], "ready");
        let text = db.to_string();
        for (_, url) in &shop {
            if let Some(pw) = url.split_once("://").and_then(|(_, r)| r.split_once('@')) {
                let pw = pw.0.split(':').nth(1).unwrap_or("-");
                assert!(!text.contains(pw), "a password in the API: {text}");
            }
        }
    }
    let (_, status) = d.get("/v1/services/shop");
    assert_eq!(
        status["environments"][0]["databases"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Blog's logins open none of shop's data.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let blog = instance_env(&d, "blog");
        let blog_pg = from_host(&var(&blog, "DATABASE_URL"), &d, "postgresql");
        let shop_pg = from_host(&var(&shop, "DATABASE_URL"), &d, "postgresql");
        let shop_db = shop_pg.rsplit('/').next().unwrap();
        let into_shop = format!("{}/{shop_db}", blog_pg.rsplit_once('/').unwrap().0);
        let refused = common::pg_connect(&into_shop)
            .await
            .err()
            .unwrap_or_default();
        assert!(refused.contains("permission denied"), "{refused}");
        let blog_client = common::pg_connect(&blog_pg).await.unwrap();
        let superuser: bool = blog_client
            .query_one(
                "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(!superuser);

        let blog_redis =
            redis::Client::open(from_host(&var(&blog, "REDIS_URL"), &d, "redis")).unwrap();
        let mut con = blog_redis.get_multiplexed_async_connection().await.unwrap();
        let get: Result<Option<String>, _> = redis::cmd("GET")
            .arg("shop:prod:greeting")
            .query_async(&mut con)
            .await;
        assert!(
            get.unwrap_err()
                .to_string()
                .to_lowercase()
                .contains("noperm")
        );
        let scan: Result<(u64, Vec<String>), _> =
            redis::cmd("SCAN").arg(0).query_async(&mut con).await;
        assert!(
            scan.unwrap_err()
                .to_string()
                .to_lowercase()
                .contains("noperm")
        );

        let blog_amqp = from_host(&var(&blog, "AMQP_URL"), &d, "rabbitmq");
        let shop_vhost = var(&shop, "AMQP_URL")
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned();
        let into_shop = format!("{}/{shop_vhost}", blog_amqp.rsplit_once('/').unwrap().0);
        let refused =
            lapin::Connection::connect(&into_shop, lapin::ConnectionProperties::default()).await;
        assert!(refused.is_err(), "blog's user opened shop's vhost");
    });

    // A restarted daemon adopts its servers (same containers) and the data is there.
    let id_of = |name: &str| {
        String::from_utf8(
            Command::new("docker")
                .args(["inspect", "-f", "{{.Id}}", name])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
    };
    let before = id_of(&d.server_container("postgresql"));
    let mut d = d;
    d.restart(&[]);
    let dep = succeeded(&d, "shop", &manifest("shop", &dbs));
    assert_eq!(id_of(&d.server_container("postgresql")), before);
    assert!(steps(&d, "shop", &dep).contains(&"database-ready".to_owned()));
    assert_eq!(ok(&d, "shop", "/pg/get"), "apple");
    assert_eq!(ok(&d, "shop", "/redis/get"), "hello");
}

#[test]
fn detach_keeps_the_data_and_only_a_confirmed_destroy_drops_it() {
    let d = Daemon::start();
    d.create_service("notes");
    let with = manifest("notes", &[("main", "postgresql"), ("cache", "redis")]);
    let without = manifest("notes", &[("cache", "redis")]);
    succeeded(&d, "notes", &with);
    ok(&d, "notes", "/pg/put/kept");
    let old_url = var(&instance_env(&d, "notes"), "DATABASE_URL");

    // Removed from app.toml: detached after the deployment succeeded, its data kept.
    let dep = succeeded(&d, "notes", &without);
    assert!(steps(&d, "notes", &dep).contains(&"database-detached".to_owned()));
    let main = databases(&d, "notes")
        .into_iter()
        .find(|db| db["name"] == "main")
        .unwrap();
    assert_eq!(main["state"], "detached");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let refused = rt
        .block_on(common::pg_connect(&from_host(&old_url, &d, "postgresql")))
        .err()
        .unwrap_or_default();
    assert!(
        !refused.is_empty(),
        "a detached database still lets its login in"
    );

    // Destroy needs its name again.
    let (status, body) = d.delete("/v1/services/notes/databases/main?env=prod");
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "confirm-required");

    // Declared again: the same data.
    succeeded(&d, "notes", &with);
    assert_eq!(ok(&d, "notes", "/pg/get"), "kept");
    let (status, body) = d.delete("/v1/services/notes/databases/main?env=prod&confirm=main");
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "database-in-use");

    succeeded(&d, "notes", &without);
    let (status, body) = d.delete("/v1/services/notes/databases/main?env=prod&confirm=main");
    assert_eq!(status, 204, "{body}");
    assert!(databases(&d, "notes").iter().all(|db| db["name"] != "main"));
    succeeded(&d, "notes", &with);
    assert_eq!(
        ok(&d, "notes", "/pg/get"),
        "",
        "destroyed means a new, empty database"
    );
    ok(&d, "notes", "/pg/put/survivor");

    // Deleting the service keeps its data (detached) for a service of the same name.
    let (status, body) = d.delete("/v1/services/notes?confirm=notes");
    assert_eq!(status, 204, "{body}");
    d.create_service("notes");
    succeeded(&d, "notes", &with);
    assert_eq!(ok(&d, "notes", "/pg/get"), "survivor");

    // A preview environment has databases of its own; deleting it with purge drops them.
    let (status, body) = d.post(
        "/v1/services/notes/deployments",
        json!({ "env": "feature-x", "image": IMAGE, "manifest": with }),
    );
    assert_eq!(status, 202, "{body}");
    let dep = d.wait_deployment(
        "notes",
        body["id"].as_str().unwrap(),
        Duration::from_secs(120),
    );
    assert_eq!(dep["state"], "succeeded", "{dep:#}");
    let (_, preview) = d.get("/v1/services/notes/databases?env=feature-x");
    assert_eq!(preview.as_array().unwrap().len(), 2, "{preview}");
    let (status, body) = d.delete("/v1/services/notes/environments/feature-x?purge=true");
    assert_eq!(status, 204, "{body}");
    let (_, preview) = d.get("/v1/services/notes/databases?env=feature-x");
    assert_eq!(preview.as_array().unwrap().len(), 0, "{preview}");
    assert_eq!(
        ok(&d, "notes", "/pg/get"),
        "survivor",
        "prod's own are untouched"
    );
}

#[test]
fn a_crash_at_each_provisioning_step_converges_without_duplicates() {
    for (i, kind) in ["database-provisioning", "database-ready"]
        .iter()
        .enumerate()
    {
        let mut d = Daemon::start();
        let svc = format!("crash{i}");
        d.create_service(&svc);
        d.restart(&[("FAAS_PLATFORM_CRASH_AT", kind)]);
        let (status, body) = d.post(
            &format!("/v1/services/{svc}/deployments"),
            json!({ "env": "prod", "image": IMAGE, "manifest": manifest(&svc, &[("main", "postgresql")]) }),
        );
        assert_eq!(status, 202, "{body}");
        assert!(
            d.wait_exit(Duration::from_secs(60)),
            "the daemon did not abort at {kind}"
        );
        d.restart(&[]);
        let dep = d.wait_deployment(&svc, body["id"].as_str().unwrap(), Duration::from_secs(120));
        assert_eq!(dep["state"], "succeeded", "{dep:#}");
        assert_eq!(ok(&d, &svc, "/pg/put/once"), "stored");
        assert_eq!(ok(&d, &svc, "/pg/get"), "once");
        // One role and one database of this service on the server, nothing else left.
        let out = Command::new("docker")
            .args([
                "exec",
                &d.server_container("postgresql"),
                "psql",
                "-U",
                "postgres",
                "-tAc",
                &format!(
                    "SELECT (SELECT count(*) FROM pg_roles WHERE rolname LIKE 'f\\_{svc}\\_%'), (SELECT count(*) FROM pg_database WHERE datname LIKE 'f\\_{svc}\\_%')"
                ),
            ])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "1|1",
            "{out:?}"
        );
    }
}

#[test]
fn what_cannot_be_provisioned_is_refused_before_anything_starts() {
    let d = Daemon::start();
    d.create_service("docs");
    let (status, body) = d.post(
        "/v1/services/docs/deployments",
        json!({ "env": "prod", "image": IMAGE, "manifest": manifest("docs", &[("store", "mongodb")]) }),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "no-database-provider");
    assert!(
        body["detail"].as_str().unwrap().contains("MongoDB"),
        "{body}"
    );

    let set = d
        .http
        .put(d.api("/v1/services/docs/secrets"))
        .bearer_auth(&d.token)
        .json(&json!({ "env": "prod", "values": { "DATABASE_URL": "postgres://mine" } }))
        .send()
        .unwrap();
    assert_eq!(set.status().as_u16(), 200);
    let (status, body) = d.post(
        "/v1/services/docs/deployments",
        json!({ "env": "prod", "image": IMAGE, "manifest": manifest("docs", &[("main", "postgresql")]) }),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "database-secret-clash");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("DATABASE_URL (database main)"),
        "{body}"
    );

    let mut wrong_version = manifest("docs", &[("main", "postgresql")]);
    wrong_version.push_str("version = \"9\"\n");
    let (status, body) = d.post(
        "/v1/services/docs/deployments",
        json!({ "env": "prod", "image": IMAGE, "manifest": wrong_version }),
    );
    assert_eq!(status, 422, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("version 15"),
        "{body}"
    );

    let (status, body) = d.post(
        "/v1/services/docs/deployments",
        json!({ "env": "prod", "image": IMAGE, "manifest": manifest("docs", &[("Main_DB", "postgresql")]) }),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "invalid-manifest");

    // Nothing was recorded or started for any of them.
    let (_, deps) = d.get("/v1/services/docs/deployments");
    assert_eq!(deps.as_array().unwrap().len(), 0, "{deps}");
    assert!(databases(&d, "docs").is_empty());
    wait_until("no server started", Duration::from_secs(1), || {
        !Command::new("docker")
            .args(["inspect", &d.server_container("postgresql")])
            .output()
            .unwrap()
            .status
            .success()
    });
}
