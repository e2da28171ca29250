//! The developer loop as a new user runs it, with the real binaries, the real Docker Engine and
//! the seeded images: launch, a request through the router, a change rolled out, rollback,
//! status; the local platform's lifecycle; login; contexts; failures that say what to do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::platform::DevBox;
use common::{code, first_line, stderr, stdout, succeeded};

/// `faas service create NAME --template static`, as a user would; returns its directory.
fn create_static(d: &DevBox, name: &str) -> std::path::PathBuf {
    let out = d.run(&[
        "service",
        "create",
        name,
        "--template",
        "static",
        "--no-input",
        "--owner",
        "a@b.io",
    ]);
    succeeded(&out);
    d.work().join(name)
}

/// Gives the service in `dir` a `run.command` of `sh -c SCRIPT`.
fn set_command(dir: &std::path::Path, script: &str) {
    let path = dir.join("app.toml");
    let command = toml_edit::Value::from(script).to_string();
    let manifest = std::fs::read_to_string(&path).unwrap().replace(
        "[run]\nport = 8080",
        &format!(
            "[run]\nport = 8080\ncommand = [\"sh\", \"-c\", {}]",
            command.trim()
        ),
    );
    std::fs::write(path, manifest).unwrap();
}

fn launch_static(d: &DevBox, name: &str) -> std::path::PathBuf {
    let out = d.run(&[
        "launch",
        name,
        "--template",
        "static",
        "--no-input",
        "--owner",
        "me@example.com",
    ]);
    succeeded(&out);
    assert_eq!(
        stdout(&out).trim(),
        format!("http://{name}.localhost:{}", d.router_port),
        "stdout is the URL"
    );
    d.work().join(name)
}

#[test]
fn launch_deploy_a_change_roll_back_and_read_status() {
    let d = DevBox::new();
    let dir = launch_static(&d, "site");
    let err_text = d.run(&["platform", "status", "--json"]);
    assert_eq!(code(&err_text), 0);
    d.wait_route("site", "/", "<h1>site</h1>");

    // A change, deployed with the rolling strategy.
    let index = dir.join("public/index.html");
    let html = std::fs::read_to_string(&index)
        .unwrap()
        .replace("<h1>site</h1>", "<h1>site v2</h1>");
    std::fs::write(&index, html).unwrap();
    let out = d.deploy_prod(&dir, &["--strategy", "rolling"]);
    let err = succeeded(&out);
    assert!(
        err.contains("instance-healthy") && err.contains("succeeded"),
        "{err}"
    );
    assert!(err.contains("(rolling,"), "{err}");
    d.wait_route("site", "/", "site v2");

    let out = d.run_in(&dir, &["service", "releases", "--json"]);
    let releases: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(releases.as_array().unwrap().len(), 2);
    assert_eq!(releases[0]["version"], 2);
    assert_eq!(releases[0]["current"], true);

    let out = d.run_in(&dir, &["service", "rollback"]);
    succeeded(&out);
    d.wait_route("site", "/", "<h1>site</h1>");

    let out = d.run_in(&dir, &["service", "status", "--json"]);
    succeeded(&out);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["name"], "site");
    assert_eq!(status["owner"], "me@example.com");
    let prod = &status["environments"][0];
    assert_eq!(prod["env"], "prod");
    assert_eq!(
        prod["release"]["version"], 1,
        "the first release serves again"
    );
    assert_eq!(
        prod["url"],
        format!("http://site.localhost:{}", d.router_port)
    );
    assert!(
        prod["instances"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["healthy"] == true && i["version"] == 1)
    );

    let out = d.run_in(&dir, &["service", "status"]);
    let text = stdout(&out);
    assert!(
        text.contains("prod") && text.contains("v1") && text.contains("healthy"),
        "{text}"
    );

    let out = d.run(&["service", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["name"], "site");

    let out = d.run_in(&dir, &["service", "delete"]);
    assert_eq!(code(&out), 2, "no terminal: --yes is required");
    assert!(stderr(&out).contains("--yes"));
    let out = d.run_in(&dir, &["service", "delete", "--yes"]);
    succeeded(&out);
    assert_eq!(d.route("site", "/").0, 404);
}

#[test]
fn a_deploy_that_fails_exits_1_with_the_reason_and_the_log() {
    let d = DevBox::new();
    let dir = launch_static(&d, "broken");
    set_command(&dir, "echo cannot find config >&2; exit 3");
    let out = d.deploy_prod(&dir, &[]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("was rolled back") && err.contains("exited with code 3"),
        "{err}"
    );
    assert!(
        err.contains("cannot find config"),
        "the failed container's output: {err}"
    );
    assert!(stdout(&out).is_empty());
    d.wait_route("broken", "/", "<h1>broken</h1>");
}

#[test]
fn deploying_to_prod_without_a_terminal_needs_yes() {
    let d = DevBox::new();
    create_static(&d, "shy");
    let out = d.run_in(&d.work().join("shy"), &["service", "deploy", "-e", "prod"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("pass --yes"), "{}", stderr(&out));
}

#[test]
fn the_local_platform_starts_stops_and_says_where_it_is() {
    let d = DevBox::new();
    let status = |d: &DevBox| -> serde_json::Value {
        serde_json::from_slice(&d.run(&["platform", "status", "--json"]).stdout).unwrap()
    };
    assert_eq!(status(&d)["running"], false);

    let out = d.run(&["platform", "start"]);
    succeeded(&out);
    let s = status(&d);
    assert_eq!(s["running"], true);
    assert_eq!(s["api"], format!("http://127.0.0.1:{}", d.api_port));
    assert_eq!(s["data_dir"], d.data_dir().display().to_string());
    assert!(s["pid"].is_u64());
    assert_eq!(s["info"]["docker"]["available"], true);
    let out = d.run(&["platform", "start"]);
    assert!(stderr(&out).contains("running already"));

    let out = d.run(&["platform", "stop"]);
    assert_eq!(code(&out), 0);
    assert_eq!(status(&d)["running"], false);

    // A command aimed at the local context starts it by itself, and says so on stderr.
    let out = d.run(&["service", "list", "--json"]);
    succeeded(&out);
    assert!(
        stderr(&out).contains("Starting the local platform"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out).trim(), "[]");
}

#[test]
fn login_keeps_the_token_in_a_private_file_when_no_keyring_answers() {
    let d = DevBox::new();
    succeeded(&d.run(&["platform", "start"]));
    let token = std::fs::read_to_string(d.data_dir().join("admin-token")).unwrap();
    let out = d.run_with_stdin(&d.work(), &["login", "--token-stdin"], token.as_bytes());
    let err = succeeded(&out);
    assert!(err.contains("no keyring service answers"), "{err}");
    assert!(err.contains("Logged in"), "{err}");
    let file = d.sandbox.home().join(".config/faas/credentials.toml");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains(token.trim())
    );

    let who: serde_json::Value =
        serde_json::from_slice(&d.run(&["whoami", "--json"]).stdout).unwrap();
    assert_eq!(who["role"], "admin");

    // FAAS_TOKEN wins, and a bad one says so.
    let out = d
        .cmd_in(&d.work())
        .args(["whoami"])
        .env("FAAS_TOKEN", "faas_nope")
        .output()
        .unwrap();
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("invalid-token"), "{}", stderr(&out));

    let out = d.run(&["logout"]);
    assert!(stderr(&out).contains("Logged out"));
    assert!(
        !std::fs::read_to_string(&file)
            .unwrap()
            .contains(token.trim())
    );

    let out = d.cmd_in(&d.work()).args(["login"]).output().unwrap();
    assert_eq!(code(&out), 2, "no terminal to ask for the token on");
    assert!(stderr(&out).contains("--token-stdin"));
}

#[test]
fn contexts_are_added_listed_and_used_and_an_unreachable_platform_is_named() {
    let d = DevBox::new();
    let dead = common::platform::free_port();
    let out = d.run(&[
        "context",
        "add",
        "staging",
        "--url",
        &format!("http://127.0.0.1:{dead}"),
    ]);
    succeeded(&out);
    let out = d.run(&["context", "add", "bad", "--url", "not a url"]);
    assert_eq!(code(&out), 2);

    let list: serde_json::Value =
        serde_json::from_slice(&d.run(&["context", "list", "--json"]).stdout).unwrap();
    assert_eq!(list[0]["name"], "local");
    assert_eq!(list[0]["current"], true);
    assert_eq!(list[1]["name"], "staging");

    assert_eq!(code(&d.run(&["context", "use", "staging"])), 0);
    let list: serde_json::Value =
        serde_json::from_slice(&d.run(&["context", "list", "--json"]).stdout).unwrap();
    assert_eq!(list[1]["current"], true);

    // Not logged in there yet.
    let out = d.run(&["service", "list"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("faas login"), "{}", stderr(&out));
    // With a token, the dead URL is named with what to do.
    let out = d
        .cmd_in(&d.work())
        .args(["service", "list"])
        .env("FAAS_TOKEN", "x")
        .output()
        .unwrap();
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("http://127.0.0.1:{dead} does not answer")),
        "{err}"
    );
    assert!(err.contains("faas context list"), "{err}");
    // -C picks another context for one command.
    let out = d.run(&["-C", "nowhere", "service", "list"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("no context named `nowhere`"));
}

#[test]
fn build_tags_the_image_with_the_git_commit() {
    let d = DevBox::new();
    let dir = create_static(&d, "tagged");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(&dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .unwrap()
    };
    git(&["add", "-A"]);
    git(&["commit", "-qm", "first"]);
    let sha = String::from_utf8(git(&["rev-parse", "--short=12", "HEAD"]).stdout)
        .unwrap()
        .trim()
        .to_owned();
    let out = d.run_in(&dir, &["service", "build"]);
    succeeded(&out);
    assert_eq!(stdout(&out).trim(), format!("faas/tagged:{sha}"));
    std::fs::write(dir.join("public/new.html"), "x").unwrap();
    let out = d.run_in(&dir, &["service", "build"]);
    assert_eq!(stdout(&out).trim(), format!("faas/tagged:{sha}-dirty"));
    // A failing step shows its output.
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM busybox:stable\nRUN echo about to fail && exit 7\n",
    )
    .unwrap();
    let out = d.run_in(&dir, &["service", "build"]);
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(
        err.contains("about to fail") && err.contains("the build failed"),
        "{err}"
    );
    for tag in [
        format!("faas/tagged:{sha}"),
        format!("faas/tagged:{sha}-dirty"),
    ] {
        let _ = std::process::Command::new("docker")
            .args(["rmi", "-f", &tag])
            .output();
    }
}

fn git(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap()
}

#[test]
fn push_deploys_the_branch_to_its_preview_and_delete_removes_it() {
    let d = DevBox::new();
    let dir = create_static(&d, "web");
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-qm", "first"]);
    git(&dir, &["checkout", "-qb", "Feature/New_Login"]);

    let out = d.run_in(&dir, &["service", "push"]);
    succeeded(&out);
    let url = format!("http://web-feature-new-login.localhost:{}", d.router_port);
    assert_eq!(stdout(&out).trim(), url);
    d.wait_route("web-feature-new-login", "/", "<h1>web</h1>");

    let out = d.run_in(&dir, &["service", "push", "--delete"]);
    succeeded(&out);
    assert_eq!(d.route("web-feature-new-login", "/").0, 404);
}

#[test]
fn scale_changes_the_instances_and_status_shows_them() {
    let d = DevBox::new();
    let dir = launch_static(&d, "wide");
    let out = d.run_in(&dir, &["service", "scale", "-e", "prod", "--replicas", "3"]);
    succeeded(&out);
    let status: serde_json::Value = serde_json::from_slice(
        &d.run_in(&dir, &["service", "status", "-e", "prod", "--json"])
            .stdout,
    )
    .unwrap();
    assert_eq!(
        status["environments"][0]["instances"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let out = d.run_in(&dir, &["service", "scale", "-e", "qa", "--replicas", "1"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("nothing-to-scale"),
        "{}",
        stderr(&out)
    );
}

fn dev_containers(service: &str) -> usize {
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=io.faas.dev={service}"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .count()
}

#[test]
fn dev_runs_the_service_and_ctrl_c_removes_what_it_started() {
    let d = DevBox::new();
    let dir = create_static(&d, "devsite");
    let mut child = d
        .cmd_in(&dir)
        .args(["service", "dev", "--watch"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let url = first_line(&mut child, std::time::Duration::from_secs(60))
        .trim()
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let get = |path: &str| {
        reqwest::blocking::Client::new()
            .get(format!("{url}{path}"))
            .timeout(std::time::Duration::from_secs(5))
            .send()
            .ok()
            .map(|r| (r.status().as_u16(), r.text().unwrap_or_default()))
    };
    let wait_for = |want: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if let Some((200, body)) = get("/")
                && body.contains(want)
            {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{url} never answered {want:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    wait_for("<h1>devsite</h1>");
    assert_eq!(dev_containers("devsite"), 1);

    // --watch: a saved change is rebuilt and served.
    let index = dir.join("public/index.html");
    let html = std::fs::read_to_string(&index)
        .unwrap()
        .replace("<h1>devsite</h1>", "<h1>devsite changed</h1>");
    std::fs::write(&index, html).unwrap();
    wait_for("devsite changed");

    // Ctrl-C stops and removes everything it started.
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "interrupted");
    assert_eq!(dev_containers("devsite"), 0);
}

#[test]
fn an_image_is_uploaded_when_the_platform_has_another_engine() {
    let d = DevBox::new();
    let dir = create_static(&d, "shipped");
    let out = d
        .cmd_in(&dir)
        .args(["service", "deploy", "-e", "prod", "--yes"])
        .env("FAAS_UPLOAD", "always")
        .output()
        .unwrap();
    succeeded(&out);
    assert!(
        stderr(&out).contains("Uploading faas/shipped:"),
        "{}",
        stderr(&out)
    );
    d.wait_route("shipped", "/", "<h1>shipped</h1>");
}

#[test]
fn a_docker_engine_that_does_not_answer_says_how_to_start_one() {
    let d = DevBox::new();
    create_static(&d, "nodock");
    let out = d
        .cmd_in(&d.work().join("nodock"))
        .args(["service", "build"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(err.contains("the Docker Engine does not answer"), "{err}");
    assert!(err.contains("start it"), "{err}");
}

/// Instance ids, ports, image ids and times vary from run to run.
fn normalise(text: &str, router_port: u16) -> String {
    let mut out = text.replace(&router_port.to_string(), "[ROUTER]");
    for (pattern, with) in [
        (r"\b[0-9a-f]{12}\b", "[ID]"),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]"),
        (r"\d{4}-\d\d-\d\dT[0-9:.]+Z", "[TIME]"),
        (r"build-\d+", "build-[STAMP]"),
    ] {
        out = regex_lite::Regex::new(pattern)
            .unwrap()
            .replace_all(&out, with)
            .into_owned();
    }
    out
}

#[test]
fn human_status_output() {
    let d = DevBox::new();
    let dir = launch_static(&d, "shown");
    let out = d.run_in(&dir, &["service", "status"]);
    succeeded(&out);
    insta::assert_snapshot!(normalise(&stdout(&out), d.router_port));
    let out = d.run_in(&dir, &["service", "releases"]);
    insta::assert_snapshot!(
        "human_releases_output",
        normalise(&stdout(&out), d.router_port)
    );
}

#[test]
fn secrets_are_set_from_arguments_or_stdin_deployed_and_never_printed() {
    let d = DevBox::new();
    let dir = create_static(&d, "keeper");
    set_command(
        &dir,
        "mkdir -p /tmp/w && echo ok > /tmp/w/_info && echo token=$TOKEN > /tmp/w/index.html && exec httpd -f -p 8080 -h /tmp/w",
    );
    let out = d.deploy_prod(&dir, &[]);
    succeeded(&out);
    d.wait_route("keeper", "/", "token=\n");

    let out = d.run_in(
        &dir,
        &[
            "service",
            "secrets",
            "set",
            "TOKEN=from-an-argument",
            "--deploy",
        ],
    );
    succeeded(&out);
    d.wait_route("keeper", "/", "token=from-an-argument");
    assert!(
        !stderr(&out).contains("from-an-argument") && !stdout(&out).contains("from-an-argument")
    );

    let out = d.run_with_stdin(
        &dir,
        &["service", "secrets", "set", "TOKEN", "--deploy"],
        b"piped-in-value\n",
    );
    succeeded(&out);
    d.wait_route("keeper", "/", "token=piped-in-value");
    assert!(!stderr(&out).contains("piped-in-value"));

    let list: serde_json::Value = serde_json::from_slice(
        &d.run_in(&dir, &["service", "secrets", "list", "--json"])
            .stdout,
    )
    .unwrap();
    assert_eq!(list[0]["name"], "TOKEN");
    assert!(!list.to_string().contains("piped-in-value"));
    let out = d.run_in(&dir, &["service", "secrets", "unset", "TOKEN"]);
    succeeded(&out);
    let out = d.run_in(&dir, &["service", "secrets", "unset", "TOKEN"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("secret-not-found"));
}

#[test]
fn logs_show_the_output_and_a_followed_stream_survives_a_platform_restart() {
    let d = DevBox::new();
    let dir = create_static(&d, "talker");
    // Numbered lines, one every 5 ms, for 8 s.
    set_command(
        &dir,
        "(i=0; while [ $i -lt 1600 ]; do i=$((i+1)); echo n=$i; usleep 5000; done) & exec httpd -f -p 8080 -h /www",
    );
    let out = d.deploy_prod(&dir, &[]);
    succeeded(&out);

    let out = d.run_in(&dir, &["service", "logs", "-n", "3", "--grep", "^n="]);
    succeeded(&out);
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        text.lines().all(|l| l.contains(" stdout n=")),
        "plain lines off a terminal: {text}"
    );

    let mut follow = d
        .cmd_in(&dir)
        .args([
            "service", "logs", "-f", "--json", "--grep", "^n=", "-n", "1",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout_pipe = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout_pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first: serde_json::Value =
        serde_json::from_str(&rx.recv_timeout(std::time::Duration::from_secs(20)).unwrap())
            .unwrap();
    // The platform goes away and comes back: the stream drops, the CLI reconnects.
    assert_eq!(code(&d.run(&["platform", "stop"])), 0);
    succeeded(&d.run(&["platform", "start"]));
    let mut numbers = vec![first["line"].as_str().unwrap()[2..].parse::<u32>().unwrap()];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while *numbers.last().unwrap() < 1600 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("the followed stream stopped before n=1600");
        let record: serde_json::Value = serde_json::from_str(&line).unwrap();
        numbers.push(record["line"].as_str().unwrap()[2..].parse().unwrap());
    }
    let _ = follow.kill();
    let _ = follow.wait();
    let start = numbers[0];
    assert_eq!(
        numbers,
        (start..=1600).collect::<Vec<u32>>(),
        "no gap and no duplicate across the reconnect"
    );
}

/// Writes `<h1>TEXT</h1>` as the static site's page.
fn set_page(dir: &std::path::Path, text: &str) {
    std::fs::write(
        dir.join("public/index.html"),
        format!("<html><body><h1>{text}</h1></body></html>\n"),
    )
    .unwrap();
}

#[test]
fn canary_by_hand_then_automatic_then_blue_green_and_back() {
    let d = DevBox::new();
    let dir = launch_static(&d, "cani");
    d.wait_route("cani", "/", "<h1>cani</h1>");

    // A canary held at each step: status, promote, promote.
    set_page(&dir, "cani v2");
    let out = d.deploy_prod(&dir, &["--strategy", "canary", "--manual", "--detach"]);
    succeeded(&out);
    assert!(stdout(&out).trim().starts_with("dep-"), "{}", stdout(&out));
    for step in ["step 1/3", "step 2/3"] {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let text = loop {
            let out = d.run_in(&dir, &["service", "canary", "status"]);
            let text = stdout(&out);
            if code(&out) == 0 && text.contains(step) {
                break text;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{}{}",
                text,
                stderr(&out)
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        assert!(
            text.contains("canary ") && text.contains("baseline"),
            "{text}"
        );
        if step == "step 1/3" {
            let out = d.run_in(&dir, &["service", "status"]);
            let text = stdout(&out);
            assert!(
                text.contains("the canary takes 10% of requests")
                    && text.contains("healthy, canary")
                    && text.contains("healthy, live"),
                "{text}"
            );
        }
        let out = d.run_in(&dir, &["service", "canary", "promote"]);
        succeeded(&out);
        assert!(stderr(&out).contains("Promoting"), "{}", stderr(&out));
    }
    d.wait_route("cani", "/", "cani v2");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let out = d.run_in(&dir, &["service", "canary", "status"]);
        if code(&out) == 1 {
            assert!(stderr(&out).contains("no-canary"), "{}", stderr(&out));
            break;
        }
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // An automatic canary, followed: each step with both sets' figures.
    set_page(&dir, "cani v3");
    let manifest = std::fs::read_to_string(dir.join("app.toml")).unwrap().replace(
        "strategy = \"rolling\"",
        "strategy = \"canary\"\n\n[deploy.canary]\nsteps = [50, 100]\ninterval = \"1s\"\nmin_requests = 0\n\n[deploy.bluegreen]\nkeep_previous = \"5m\"",
    );
    std::fs::write(dir.join("app.toml"), &manifest).unwrap();
    let out = d.deploy_prod(&dir, &[]);
    let err = succeeded(&out);
    assert!(
        err.contains("canary-step") && err.contains("canary-passed"),
        "{err}"
    );
    assert!(err.contains("baseline") && err.contains("p99"), "{err}");
    d.wait_route("cani", "/", "cani v3");

    // Blue-green, then the rollback switches back to the warm set.
    set_page(&dir, "cani v4");
    let out = d.deploy_prod(&dir, &["--strategy", "bluegreen"]);
    let err = succeeded(&out);
    assert!(
        err.contains("green-ready") && err.contains("switched"),
        "{err}"
    );
    assert!(err.contains("cani-prod-green.localhost"), "{err}");
    d.wait_route("cani", "/", "cani v4");
    let out = d.run_in(&dir, &["service", "rollback"]);
    let err = succeeded(&out);
    assert!(
        err.contains("switched") && !err.contains("instance-starting"),
        "{err}"
    );
    d.wait_route("cani", "/", "cani v3");

    // --manual is for canaries only.
    let out = d.deploy_prod(&dir, &["--strategy", "rolling", "--manual"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("--manual"), "{}", stderr(&out));
}
