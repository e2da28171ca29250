//! `faas service db …` as a developer runs it against the local platform on the real Docker
//! Engine: declare databases, deploy, see them in the status, connect as the service's login
//! (in the managed server's container: nothing installed locally), back up and restore, rotate,
//! and destroy only with the name again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::platform::DevBox;
use common::{code, first_line, stderr, stdout, succeeded};

#[test]
fn a_developer_declares_deploys_connects_backs_up_rotates_and_destroys() {
    let d = DevBox::new();
    succeeded(&d.run(&[
        "launch",
        "notes",
        "--template",
        "static",
        "--no-input",
        "--owner",
        "ada@example.com",
    ]));
    let dir = d.work().join("notes");
    succeeded(&d.run_in(&dir, &["postgresql", "add"]));
    succeeded(&d.run_in(&dir, &["redis", "add"]));
    succeeded(&d.deploy_prod(&dir, &[]));

    let status = stdout(&succeeded_out(&d.run_in(&dir, &["service", "status"])));
    assert!(
        status.contains("database main (postgresql, managed): ready"),
        "{status}"
    );
    assert!(
        status.contains("database cache (redis, managed): ready"),
        "{status}"
    );
    let list = stdout(&succeeded_out(&d.run_in(&dir, &["service", "db", "list"])));
    assert!(list.contains("MAIN_URL DATABASE_URL"), "{list}");
    let info = stdout(&succeeded_out(
        &d.run_in(&dir, &["service", "db", "info", "main"]),
    ));
    assert!(info.contains("login      f_notes_prod_main_"), "{info}");

    // psql and redis-cli as the service's login, in the server's container.
    let sql = |q: &str| d.run_in(&dir, &["service", "db", "connect", "main", "--", "-tAc", q]);
    let out = sql("CREATE TABLE t (v text); INSERT INTO t VALUES ('kept'); SELECT current_user");
    assert!(
        stdout(&succeeded_out(&out)).contains("f_notes_prod_main_"),
        "{}",
        stderr(&out)
    );
    let out = sql("SELECT count(*) FROM pg_database WHERE datname LIKE 'f_notes%'");
    succeeded(&out);
    let cli = |args: &[&str]| {
        let mut all = vec!["service", "db", "connect", "cache", "--"];
        all.extend_from_slice(args);
        d.run_in(&dir, &all)
    };
    succeeded(&cli(&["SET", "notes:prod:greeting", "hello"]));
    assert_eq!(
        stdout(&succeeded_out(&cli(&["GET", "notes:prod:greeting"]))).trim(),
        "hello"
    );
    let other = stdout(&cli(&["GET", "blog:prod:greeting"]));
    assert!(other.to_lowercase().contains("noperm"), "{other}");
    // A failing statement's exit code comes back.
    assert_ne!(code(&sql("SELECT * FROM missing")), 0);

    // Backup, a change, restore.
    let dump = d.work().join("main.dump");
    succeeded(&d.run_in(
        &dir,
        &[
            "service",
            "db",
            "backup",
            "main",
            "-o",
            dump.to_str().unwrap(),
        ],
    ));
    succeeded(&sql("DELETE FROM t"));
    succeeded(&d.run_in(
        &dir,
        &["service", "db", "restore", "main", dump.to_str().unwrap()],
    ));
    assert_eq!(
        stdout(&succeeded_out(&sql("SELECT v FROM t"))).trim(),
        "kept"
    );

    // Rotation: the environment rolls, then the old login is refused.
    let out = d.run_in(&dir, &["service", "db", "rotate", "main"]);
    assert!(
        stderr(&succeeded_out(&out)).contains("the old login no longer opens it"),
        "{}",
        stderr(&out)
    );
    let info = stdout(&succeeded_out(
        &d.run_in(&dir, &["service", "db", "info", "main"]),
    ));
    assert!(info.contains("login      g_notes_prod_main_"), "{info}");
    assert_eq!(
        stdout(&succeeded_out(&sql("SELECT v FROM t"))).trim(),
        "kept"
    );

    // Destroy: the name again, and not while app.toml's release uses it.
    let out = d.run_in(&dir, &["service", "db", "destroy", "main", "-e", "prod"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let out = d.run_in(
        &dir,
        &[
            "service",
            "db",
            "destroy",
            "main",
            "-e",
            "prod",
            "--confirm",
            "main",
        ],
    );
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("database-in-use"), "{}", stderr(&out));

    // Deleting the service keeps the data unless --purge.
    succeeded(&d.run_in(&dir, &["service", "delete", "--yes", "--purge"]));
}

fn succeeded_out(o: &std::process::Output) -> std::process::Output {
    succeeded(o);
    o.clone()
}

/// Removes what a dev session of `service` left for the next one (servers, volumes, network).
struct DevLeftovers(&'static str);

impl Drop for DevLeftovers {
    fn drop(&mut self) {
        for engine in ["postgresql", "redis"] {
            let name = format!("faas-dev-{}-{engine}", self.0);
            let _ = std::process::Command::new("docker")
                .args(["rm", "-f", &name])
                .output();
            let _ = std::process::Command::new("docker")
                .args(["volume", "rm", "-f", &name])
                .output();
        }
        let _ = std::process::Command::new("docker")
            .args(["network", "rm", &format!("faas-dev-{}", self.0)])
            .output();
    }
}

#[test]
fn dev_runs_the_service_with_databases_of_its_own_under_the_same_names() {
    let _leftovers = DevLeftovers("devdb");
    let d = DevBox::new();
    let dir = d.work().join("devdb");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("app.toml"),
        "name = \"devdb\"\nowner = \"ada@example.com\"\n[run]\nport = 8080\ncommand = [\"python3\", \"/app/dbapp.py\"]\n[health]\npath = \"/_info\"\n[databases.main]\nengine = \"postgresql\"\n[databases.cache]\nengine = \"redis\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM faas-test/dbclient:1\nCOPY dbapp.py /app/dbapp.py\n",
    )
    .unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../platform-api/tests/fixtures/dbapp.py"
        ),
        dir.join("dbapp.py"),
    )
    .unwrap();
    let mut child = d
        .cmd_in(&dir)
        .args(["service", "dev"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = first_line(&mut child, std::time::Duration::from_secs(120))
        .trim()
        .to_owned();
    let get = |path: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let answer = reqwest::blocking::Client::new()
                .get(format!("{url}{path}"))
                .timeout(std::time::Duration::from_secs(10))
                .send()
                .ok()
                .map(|r| (r.status().as_u16(), r.text().unwrap_or_default()));
            match answer {
                Some((200, body)) => return body,
                other => assert!(
                    std::time::Instant::now() < deadline,
                    "{url}{path}: {other:?}"
                ),
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    assert_eq!(get("/pg/put/local"), "stored");
    assert_eq!(get("/pg/get"), "local");
    assert_eq!(get("/redis/put/hi"), "stored");
    assert_eq!(get("/redis/get"), "hi");
    assert!(get("/env/DATABASE_URL").contains("@faas-dev-devdb-postgresql:5432/main"));
    assert!(get("/env/CACHE_URL").starts_with("redis://faas-dev-devdb-redis:6379"));
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130));
}
