//! PostgreSQL databases provisioned per service and environment on a real server (the test
//! PostgreSQL `scripts/setup-test-env.sh` starts, where every role but the admin logs in by
//! password): each principal owns its own database and nothing else; another service's
//! credentials cannot connect to it; doing it again, or after a crash halfway, converges with
//! nothing duplicated; rotation refuses the old password; detach keeps the data; destroy
//! drops it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{pg_connect, pg_server};
use faas_platform::databases::postgres::{PgAdmin, Present, url};
use faas_platform::databases::{password, principal};
use tokio_postgres::Client;

/// Host and port of the test server, as a service would be given them.
fn address() -> (String, u16) {
    let s = pg_server();
    let hostport = s.rsplit('@').next().unwrap();
    let (host, port) = hostport.rsplit_once(':').unwrap();
    (host.to_owned(), port.parse().unwrap())
}

async fn admin() -> (PgAdmin, Client) {
    let url = format!("{}/postgres", pg_server());
    let admin = PgAdmin::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("the test PostgreSQL (run scripts/setup-test-env.sh): {e}"));
    (admin, pg_connect(&url).await.unwrap())
}

fn login(principal: &str, password: &str, database: &str) -> String {
    let (host, port) = address();
    let own = url(principal, password, &host, port);
    own.rsplit_once('/').unwrap().0.to_owned() + "/" + database
}

#[tokio::test]
async fn each_service_gets_its_own_role_and_database_and_nothing_of_another() {
    let (admin, sql) = admin().await;
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let a = principal(&format!("api-{run}"), "prod", "main");
    let b = principal(&format!("web-{run}"), "prod", "main");
    let (pa, pb) = (password(), password());
    admin.ensure(&a, &pa).await.unwrap();
    admin.ensure(&b, &pb).await.unwrap();

    // A works in its own database, as its owner (PostgreSQL 15: the owner may create in
    // `public`).
    let ca = pg_connect(&login(&a, &pa, &a)).await.unwrap();
    ca.batch_execute("CREATE TABLE orders (id int); INSERT INTO orders VALUES (7)")
        .await
        .unwrap();
    // B's credentials do not open A's database; a wrong password opens nothing.
    let refused = pg_connect(&login(&b, &pb, &a)).await.unwrap_err();
    assert!(refused.contains("permission denied"), "{refused}");
    let wrong = pg_connect(&login(&a, &pb, &a)).await.unwrap_err();
    assert!(wrong.contains("password authentication failed"), "{wrong}");
    // No power beyond its database.
    let row = sql
        .query_one(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls
             FROM pg_roles WHERE rolname = $1",
            &[&a],
        )
        .await
        .unwrap();
    for i in 0..5 {
        assert!(!row.get::<_, bool>(i), "attribute {i} of {a}");
    }
    let public_connect: bool = sql
        .query_one(
            "SELECT has_database_privilege('public', $1, 'CONNECT')",
            &[&a],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!public_connect);
    // The server never saw the password: only its verifier is stored.
    let stored: String = sql
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            &[&a],
        )
        .await
        .unwrap()
        .get(0);
    assert!(stored.starts_with("SCRAM-SHA-256$") && !stored.contains(&pa));

    // Again: nothing duplicated, nothing lost.
    admin.ensure(&a, &pa).await.unwrap();
    let count = |table: &'static str, column: &'static str| {
        let sql = &sql;
        let a = a.clone();
        async move {
            sql.query_one(
                &format!("SELECT count(*) FROM {table} WHERE {column} = $1"),
                &[&a],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
        }
    };
    assert_eq!(count("pg_roles", "rolname").await, 1);
    assert_eq!(count("pg_database", "datname").await, 1);
    let again = pg_connect(&login(&a, &pa, &a)).await.unwrap();
    let n: i32 = again
        .query_one("SELECT id FROM orders", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 7);

    // A crash between the role and its database: the next attempt makes the database.
    let c = principal(&format!("job-{run}"), "prod", "main");
    sql.batch_execute(&format!("CREATE ROLE \"{c}\" NOLOGIN"))
        .await
        .unwrap();
    assert_eq!(
        admin.present(&c).await.unwrap(),
        Present {
            role: true,
            can_login: false,
            database: false
        }
    );
    let pc = password();
    admin.ensure(&c, &pc).await.unwrap();
    pg_connect(&login(&c, &pc, &c)).await.unwrap();

    // Rotation: the new password opens, the old one no longer does.
    let new = password();
    admin.rotate(&a, &new).await.unwrap();
    pg_connect(&login(&a, &new, &a)).await.unwrap();
    let old = pg_connect(&login(&a, &pa, &a)).await.unwrap_err();
    assert!(old.contains("password authentication failed"), "{old}");

    // Detach: no login, the data kept; attached again, the row is there.
    admin.detach(&a).await.unwrap();
    let detached = pg_connect(&login(&a, &new, &a)).await.unwrap_err();
    assert!(detached.contains("not permitted to log in"), "{detached}");
    assert!(admin.present(&a).await.unwrap().database);
    admin.ensure(&a, &new).await.unwrap();
    let back = pg_connect(&login(&a, &new, &a)).await.unwrap();
    let n: i32 = back
        .query_one("SELECT id FROM orders", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 7);

    // Destroy drops the data and the role, and may be repeated.
    for p in [&a, &b, &c] {
        admin.destroy(p).await.unwrap();
        admin.destroy(p).await.unwrap();
        assert_eq!(
            admin.present(p).await.unwrap(),
            Present {
                role: false,
                can_login: false,
                database: false
            }
        );
    }
}
