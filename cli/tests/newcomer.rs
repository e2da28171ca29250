//! A newcomer's first minutes, with the real binaries and Docker Engine: `faas launch` without
//! `--owner` finds one (or names the flag), the URL comes with a form every HTTP client can
//! use, another platform on the local port is named as such, and a canary of a service that
//! gets no traffic ends (rolled back, exit 1) instead of waiting forever.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::platform::DevBox;
use common::{code, stderr, stdout, succeeded};

fn git_config_email(d: &DevBox, email: &str) {
    let status = std::process::Command::new("git")
        .args(["config", "--global", "user.email", email])
        .env("HOME", d.sandbox.home())
        .env("XDG_CONFIG_HOME", d.sandbox.home().join(".config"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn launch_without_owner_takes_gits_email_and_says_so_then_a_quiet_canary_ends() {
    let d = DevBox::new();
    git_config_email(&d, "dev@example.com");
    let out = d.run(&["launch", "hush", "--template", "static", "--no-input"]);
    let err = succeeded(&out);
    assert!(
        err.contains("Owner: dev@example.com (from git config user.email"),
        "{err}"
    );
    let manifest = std::fs::read_to_string(d.work().join("hush/app.toml")).unwrap();
    assert!(
        manifest.contains("owner = \"dev@example.com\""),
        "{manifest}"
    );
    // The URL is the result; beside it, a form that works where `*.localhost` does not resolve.
    assert_eq!(
        stdout(&out).trim(),
        format!("http://hush.localhost:{}", d.router_port)
    );
    assert!(
        err.contains(&format!(
            "curl -H 'Host: hush.localhost' http://127.0.0.1:{}/",
            d.router_port
        )),
        "{err}"
    );
    // The scaffold's schema line names a file that exists and is the schema.
    let schema_line = manifest.lines().next().unwrap();
    let path = schema_line
        .strip_prefix("#:schema file://")
        .unwrap_or_else(|| panic!("{schema_line}"));
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(schema["properties"]["deploy"].is_object());

    // Nobody calls it: the canary is rolled back after max_wait, and deploy exits 1.
    let dir = d.work().join("hush");
    let quiet = manifest.replace(
        "strategy = \"rolling\"",
        "strategy = \"canary\"\n\n[deploy.canary]\nsteps = [50, 100]\ninterval = \"1s\"\nmin_requests = 20\nmax_wait = \"2s\"",
    );
    std::fs::write(dir.join("app.toml"), quiet).unwrap();
    std::fs::write(dir.join("public/index.html"), "<h1>hush v2</h1>\n").unwrap();
    let out = d.deploy_prod(&dir, &[]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("canary-quiet") && err.contains("was rolled back"),
        "{err}"
    );
    d.wait_route("hush", "/", "hush");
    let (_, page) = d.route("hush", "/");
    assert!(!page.contains("v2"), "v1 still serves: {page}");
}

#[test]
fn launch_without_owner_git_email_or_login_names_the_flag() {
    let d = DevBox::new();
    let out = d.run(&["launch", "nobody", "--template", "static", "--no-input"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("--owner EMAIL") && err.contains("user.email"),
        "{err}"
    );
    assert!(
        !d.work().join("nobody").exists(),
        "nothing half-made is left"
    );
}

#[test]
fn another_platform_on_the_local_port_is_named_not_called_a_missing_login() {
    let theirs = DevBox::new();
    succeeded(&theirs.run(&["platform", "start"]));
    let ours = DevBox::new();
    let out = ours
        .cmd_in(&ours.work())
        .env(
            "FAAS_LOCAL_LISTEN",
            format!("127.0.0.1:{}", theirs.api_port),
        )
        .args(["service", "list"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "another faas platform answers at 127.0.0.1:{}",
            theirs.api_port
        )),
        "{err}"
    );
    let their_dir = std::fs::canonicalize(theirs.data_dir()).unwrap();
    assert!(
        err.contains(&their_dir.display().to_string())
            || err.contains(&theirs.data_dir().display().to_string()),
        "{err}"
    );
    assert!(
        err.contains("FAAS_LOCAL_LISTEN"),
        "how to choose another port: {err}"
    );
    assert!(!err.contains("not logged in"), "{err}");
}
