//! `faas service dependency add|remove|list` and `faas service debug` as a developer runs them:
//! two static services on the real Docker Engine, one declaring the other; the declared one's
//! URL inside the caller's instance, reached from there; a command run inside an instance;
//! a dependency that does not exist and an instance that is not the service's, refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::platform::DevBox;
use common::{code, first_line, stderr, stdout, succeeded};

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

    // `dev --deps-from prod`: the local container reaches the deployed dependency.
    let mut child = d
        .cmd_in(&front)
        .args(["service", "dev", "--deps-from", "prod"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let url = first_line(&mut child, std::time::Duration::from_secs(60));
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let dev = std::process::Command::new("docker")
        .args(["ps", "-q", "--filter", "label=io.faas.dev=front"])
        .output()
        .unwrap();
    let dev = String::from_utf8_lossy(&dev.stdout).trim().to_owned();
    let out = std::process::Command::new("docker")
        .args([
            "exec",
            &dev,
            "sh",
            "-c",
            "echo $BACK_URL; wget -qO- $BACK_URL/",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("back.localhost") && text.contains("the back"),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130));

    // A request with a trace of its own: its hop is kept, drawn by `faas trace show`.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let r = reqwest::blocking::Client::new()
        .get(format!("http://127.0.0.1:{}/", d.router_port))
        .header("host", "back.localhost")
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let shown = loop {
        let out = d.run(&["trace", "show", trace]);
        if code(&out) == 0 {
            break stdout(&out);
        }
        assert!(std::time::Instant::now() < deadline, "{}", stderr(&out));
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(shown.contains(&format!("trace {trace} · 1 hop")), "{shown}");
    assert!(
        shown.contains("back (prod) v2") && shown.contains("GET") && shown.contains("200"),
        "{shown}"
    );
    let out = d.run(&["trace", "show", "not-a-trace"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`not-a-trace` is not a trace id"),
        "{}",
        stderr(&out)
    );
    let out = d.run_in(&front, &["service", "logs", "--trace", "xyz"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));

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
    let out = d.run_in(&front, &["service", "validate"]);
    succeeded(&out);
    assert!(
        stderr(&out).contains("dependency `ghost` is not a service on the platform"),
        "validate warns: {}",
        stderr(&out)
    );
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
