//! `faas service dependency add|remove|list` and `faas service debug` as a developer runs them:
//! two static services on the real Docker Engine, one declaring the other; the declared one's
//! URL inside the caller's instance, reached from there; a command run inside an instance;
//! a dependency that does not exist and an instance that is not the service's, refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::platform::DevBox;
use common::{code, stderr, stdout, succeeded};

#[test]
fn a_declared_dependency_is_reached_from_inside_and_debug_runs_in_an_instance() {
    let d = DevBox::new();
    for name in ["back", "front"] {
        succeeded(&d.run(&[
            "launch",
            name,
            "--template",
            "static",
            "--no-input",
            "--owner",
            "ada@example.com",
        ]));
    }
    std::fs::write(
        d.work().join("back").join("public").join("index.html"),
        "the back\n",
    )
    .unwrap();
    succeeded(&d.deploy_prod(&d.work().join("back"), &[]));
    let front = d.work().join("front");

    let out = d.run_in(&front, &["service", "dependency", "add", "back"]);
    succeeded(&out);
    assert!(stderr(&out).contains("BACK_URL"), "{}", stderr(&out));
    let manifest = std::fs::read_to_string(front.join("app.toml")).unwrap();
    assert!(
        manifest.contains("[[dependencies]]\nservice = \"back\""),
        "{manifest}"
    );
    let list = stdout(&d.run_in(&front, &["service", "dependency", "list"]));
    assert!(list.contains("back") && list.contains("BACK_URL"), "{list}");
    succeeded(&d.deploy_prod(&front, &[]));

    // Inside front's instance: its dependency's URL, answering through the router.
    let out = d.run_in(
        &front,
        &[
            "service",
            "debug",
            "--",
            "sh",
            "-c",
            "echo $BACK_URL; wget -qO- $BACK_URL/",
        ],
    );
    succeeded(&out);
    let text = stdout(&out);
    assert!(
        text.contains(&format!("http://back.localhost:{}", d.router_port)),
        "{text}"
    );
    assert!(text.contains("the back"), "{text}");
    let out = d.run_in(
        &front,
        &["service", "debug", "--", "cat", "/proc/1/cmdline"],
    );
    succeeded(&out);
    assert!(stdout(&out).contains("httpd"), "{}", stdout(&out));
    // The command's exit code is faas's.
    let out = d.run_in(&front, &["service", "debug", "--", "sh", "-c", "exit 7"]);
    assert_eq!(code(&out), 7);

    // Refusals that name what is wrong.
    let out = d.run_in(
        &front,
        &["service", "debug", "--instance", "nope", "--", "true"],
    );
    assert_ne!(code(&out), 0);
    assert!(
        stderr(&out).contains("`nope` is not an instance of front"),
        "{}",
        stderr(&out)
    );
    succeeded(&d.run_in(&front, &["service", "dependency", "add", "ghost"]));
    let out = d.deploy_prod(&front, &[]);
    assert_ne!(code(&out), 0);
    assert!(
        stderr(&out).contains("`ghost` is not a service"),
        "{}",
        stderr(&out)
    );
    succeeded(&d.run_in(&front, &["service", "dependency", "remove", "ghost"]));
    let manifest = std::fs::read_to_string(front.join("app.toml")).unwrap();
    assert!(!manifest.contains("ghost"), "{manifest}");
}
