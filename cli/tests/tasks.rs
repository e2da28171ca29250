//! `faas task …` and `faas action list` as a developer runs them against the local platform:
//! a chain runs to its output, a definition's problems are shown at their file:line:col (the
//! file's own, and those only the platform can find), a step waits for approval until
//! `faas task approve`, and a failed task exits 1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::platform::DevBox;
use common::{code, stderr, stdout, succeeded};

fn write(d: &DevBox, name: &str, text: &str) -> String {
    let path = d.work().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn a_chain_runs_to_its_output_and_bad_definitions_show_their_place() {
    let d = DevBox::new();
    let def = write(
        &d,
        "greet.toml",
        r#"
name = "greet"

[[steps]]
name = "hello"
action = "faas.echo"
input = { greeting = "hello", who = "$input.who" }

[[steps]]
name = "shout"
action = "faas.echo"
input = { said = "$steps.hello.greeting", to = "$steps.hello.who" }
"#,
    );
    let out = d.run(&["task", "run", &def, "--input", r#"{"who": "ada"}"#]);
    succeeded(&out);
    let output: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(output, serde_json::json!({"said": "hello", "to": "ada"}));
    assert!(stderr(&out).contains("2/2 shout"), "{}", stderr(&out));

    let list = stdout(&d.run(&["task", "list"]));
    assert!(
        list.contains("greet") && list.contains("succeeded") && list.contains("2/2"),
        "{list}"
    );
    assert!(!list.contains("faas-launch"), "{list}");
    assert!(stdout(&d.run(&["task", "list", "--all"])).contains("faas-launch"));
    let actions = stdout(&d.run(&["action", "list"]));
    assert!(
        actions.contains("faas.echo") && actions.contains("built in"),
        "{actions}"
    );

    // The file's own problem, found before the network.
    let bad = write(
        &d,
        "bad.toml",
        "name = \"bad\"\n[[steps]]\nname = \"a\"\naction = \"faas.echo\"\ninput = { x = \"$steps.zz.out\" }\n",
    );
    let out = d.run(&["task", "run", &bad]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("bad.toml:5:15"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("there is no step `zz`"),
        "{}",
        stderr(&out)
    );

    // One only the platform can find: the action does not exist.
    let unknown = write(
        &d,
        "unknown.toml",
        "name = \"unknown\"\n[[steps]]\nname = \"a\"\naction = \"resize-image\"\n",
    );
    let out = d.run(&["task", "run", &unknown]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("unknown.toml:4:10"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("there is no action `resize-image`"),
        "{}",
        stderr(&out)
    );

    let out = d.run(&["task", "run", &def, "--input", "{not json"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
}

#[test]
fn an_approval_waits_for_faas_task_approve_and_a_failed_task_exits_1() {
    let d = DevBox::new();
    let def = write(
        &d,
        "ship.toml",
        r#"
name = "ship"

[[steps]]
name = "ask"
approval = { message = "Ship it?" }

[[steps]]
name = "ship"
action = "faas.echo"
input = { by = "$steps.ask.by" }
"#,
    );
    let out = d.run(&["task", "run", &def, "--detach"]);
    succeeded(&out);
    let id = stdout(&out).trim().to_owned();
    assert!(id.starts_with("task-"), "{id}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !stdout(&d.run(&["task", "show", &id])).contains("approval") {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    succeeded(&d.run(&["task", "approve", &id, "ask", "--input", r#"{"by": "ann"}"#]));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let shown: serde_json::Value =
            serde_json::from_str(&stdout(&d.run(&["task", "show", &id, "--json"]))).unwrap();
        if shown["state"] == "succeeded" {
            assert_eq!(shown["output"], serde_json::json!({"by": "ann"}));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{shown:#}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = d.run(&["task", "approve", &id, "ask"]);
    assert_eq!(code(&out), 1, "no longer waiting: {}", stderr(&out));

    let refused = write(
        &d,
        "refused.toml",
        "name = \"refused\"\n[[steps]]\nname = \"ask\"\napproval = {}\n",
    );
    let out = d.run(&["task", "run", &refused, "--detach"]);
    let id = stdout(&out).trim().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !stdout(&d.run(&["task", "show", &id])).contains("approval") {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    succeeded(&d.run(&["task", "approve", &id, "ask", "--reject"]));
    let failing = write(
        &d,
        "fails.toml",
        "name = \"fails\"\n[[steps]]\nname = \"get\"\nhttp = { url = \"http://127.0.0.1:9/\" }\nretry = { attempts = 1 }\n",
    );
    let out = d.run(&["task", "run", &failing]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("step `get` failed"),
        "{}",
        stderr(&out)
    );
}
