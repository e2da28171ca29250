//! The real `faas` binary as a user runs it: help text, exit codes, the two output streams.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{Sandbox, code, faas_bin, stderr, stdout};
use insta_cmd::assert_cmd_snapshot;

fn faas(args: &[&str]) -> Command {
    let mut cmd = Command::new(faas_bin());
    cmd.args(args)
        .env_remove("NO_COLOR")
        .env_remove("FAAS_MANIFEST");
    cmd
}

#[test]
fn help_texts() {
    for args in [
        &["--help"][..],
        &["service", "--help"],
        &["service", "create", "--help"],
        &["service", "validate", "--help"],
        &["service", "info", "--help"],
        &["templates", "list", "--help"],
        &["postgresql", "--help"],
        &["postgresql", "add", "--help"],
        &["redis", "remove", "--help"],
        &["completions", "--help"],
        &["service", "deploy", "--help"],
        &["service", "status", "--help"],
        &["service", "dev", "--help"],
        &["platform", "--help"],
        &["context", "--help"],
        &["launch", "--help"],
        &["login", "--help"],
        &["ledger", "--help"],
        &["ledger", "balance", "--help"],
    ] {
        let name = args
            .iter()
            .filter(|a| !a.starts_with('-'))
            .copied()
            .collect::<Vec<_>>()
            .join("-");
        let name = if name.is_empty() {
            "faas".to_owned()
        } else {
            format!("faas-{name}")
        };
        insta::with_settings!({ snapshot_suffix => name }, {
            assert_cmd_snapshot!(faas(args));
        });
    }
}

#[test]
fn version_prints_on_stdout() {
    let out = faas(&["--version"]).output().unwrap();
    assert_eq!(code(&out), 0);
    assert_eq!(
        stdout(&out),
        format!("faas {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_exit_2() {
    let out = faas(&["service", "frobnicate"]).output().unwrap();
    assert_eq!(code(&out), 2);
    assert!(stdout(&out).is_empty());
    assert!(stderr(&out).contains("unrecognized subcommand"));
}

#[test]
fn create_scaffolds_a_valid_service_with_git() {
    let s = Sandbox::new();
    let out = s.run(&[
        "service",
        "create",
        "demo",
        "--no-input",
        "--owner",
        "me@example.com",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        "demo",
        "stdout carries the created directory only"
    );
    assert!(stderr(&out).contains("Created"));
    let dir = s.work().join("demo");
    for file in [
        "app.toml",
        "Dockerfile",
        "README.md",
        "app/functions.py",
        "faas_runtime/server.py",
        ".git/HEAD",
    ] {
        assert!(dir.join(file).exists(), "{file} missing");
    }
    let manifest = std::fs::read_to_string(dir.join("app.toml")).unwrap();
    // Editors find the schema from the first line: a copy beside the CLI's config, offline.
    let first = manifest.lines().next().unwrap();
    let schema = first
        .strip_prefix("#:schema file://")
        .unwrap_or_else(|| panic!("editors find the schema from the first line: {first}"));
    assert_eq!(
        std::path::Path::new(schema),
        s.home().join(".config/faas/app.schema.json")
    );
    assert!(
        std::fs::read_to_string(schema)
            .unwrap()
            .contains("\"deploy\"")
    );
    assert!(manifest.contains("owner = \"me@example.com\""));
    assert!(!dir.join("template.toml").exists());
    let validate = s.run_in(&dir, &["service", "validate"]);
    assert_eq!(code(&validate), 0, "{}", stderr(&validate));
}

#[test]
fn every_template_scaffolds_a_valid_manifest() {
    let s = Sandbox::new();
    for template in ["python-action", "python-function", "rust-http", "static"] {
        let name = format!("svc-{template}");
        let out = s.run(&[
            "service",
            "create",
            &name,
            "--template",
            template,
            "--owner",
            "a@b.io",
            "--no-input",
        ]);
        assert_eq!(code(&out), 0, "{template}: {}", stderr(&out));
        let dir = s.work().join(&name);
        let rendered = std::fs::read_to_string(dir.join("README.md")).unwrap();
        assert!(
            rendered.starts_with(&format!("# {name}")),
            "{template}: README rendered"
        );
        assert!(
            !rendered.contains("{{"),
            "{template}: nothing left unrendered"
        );
        let out = s.run_in(&dir, &["service", "validate"]);
        assert_eq!(code(&out), 0, "{template}: {}", stderr(&out));
    }
    let dockerfile = std::fs::read_to_string(s.work().join("svc-rust-http/Dockerfile")).unwrap();
    assert!(dockerfile.contains("target/release/svc-rust-http"));
    assert!(dockerfile.matches("FROM ").count() >= 2, "multi-stage");
}

#[test]
fn create_with_quotes_in_the_description_stays_valid_toml() {
    let s = Sandbox::new();
    let out = s.run(&[
        "service",
        "create",
        "quoted",
        "--owner",
        "a@b.io",
        "--no-input",
        "--description",
        "Says \"hi\" \\ bye",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let info = s.run_in(&s.work().join("quoted"), &["service", "info", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(json["description"], "Says \"hi\" \\ bye");
}

#[test]
fn create_refuses_a_non_empty_directory_and_changes_nothing() {
    let s = Sandbox::new();
    std::fs::create_dir_all(s.work().join("demo")).unwrap();
    std::fs::write(s.work().join("demo/keep.txt"), "mine").unwrap();
    let out = s.run(&[
        "service",
        "create",
        "demo",
        "--no-input",
        "--owner",
        "me@example.com",
    ]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("not empty"), "{}", stderr(&out));
    assert!(stderr(&out).contains("--dir"));
    let entries: Vec<_> = std::fs::read_dir(s.work().join("demo")).unwrap().collect();
    assert_eq!(entries.len(), 1);
    let leftovers: Vec<_> = std::fs::read_dir(s.work())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "no staging directory left behind: {leftovers:?}"
    );
}

#[test]
fn create_into_an_empty_directory_given_by_dir() {
    let s = Sandbox::new();
    std::fs::create_dir_all(s.work().join("empty")).unwrap();
    let out = s.run(&[
        "service",
        "create",
        "demo",
        "--dir",
        "empty",
        "--no-input",
        "--owner",
        "a@b.io",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(s.work().join("empty/app.toml").exists());
}

#[test]
fn create_without_a_terminal_names_the_missing_flag() {
    let s = Sandbox::new();
    let out = s.run(&["service", "create", "demo", "--no-input"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("--owner EMAIL"), "{}", stderr(&out));
    let out = s.run(&["service", "create", "--no-input", "--owner", "a@b.io"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("faas service create NAME"),
        "{}",
        stderr(&out)
    );
    // stdin is not a terminal here either: no prompt without --no-input.
    let out = s
        .cmd()
        .args(["service", "create", "demo"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
    assert!(!s.work().join("demo").exists());
}

#[test]
fn create_rejects_bad_names_templates_and_owners() {
    let s = Sandbox::new();
    let out = s.run(&[
        "service",
        "create",
        "Bad_Name",
        "--no-input",
        "--owner",
        "a@b.io",
    ]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("DNS label"), "{}", stderr(&out));
    let out = s.run(&[
        "service",
        "create",
        "demo",
        "--template",
        "cobol",
        "--no-input",
        "--owner",
        "a@b.io",
    ]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("python-function, rust-http, static"),
        "{}",
        stderr(&out)
    );
    let out = s.run(&[
        "service",
        "create",
        "demo",
        "--no-input",
        "--owner",
        "nobody",
    ]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("e-mail"), "{}", stderr(&out));
    assert!(!s.work().join("demo").exists());
}

const BAD: &str = "name = \"pricing\"\nowner = \"team@example.com\"\n\n[scale]\nreplcas = 2\n\n[deploy]\nstrategy = \"canary\"\n";

#[test]
fn validate_reports_every_problem_and_exits_2() {
    let s = Sandbox::new();
    std::fs::write(s.work().join("app.toml"), BAD).unwrap();
    let out = s.run(&["service", "validate"]);
    assert_eq!(code(&out), 2);
    assert!(stdout(&out).is_empty(), "problems go to stderr");
    let err = stderr(&out);
    assert!(err.contains("app.toml:5:1"), "{err}");
    assert!(err.contains("did you mean `replicas`?"), "{err}");
    assert!(err.contains("app.toml:8:12"), "{err}");
    assert!(err.contains("needs a health check"), "{err}");
    assert!(err.contains("has 2 problems"), "{err}");
    assert!(
        !err.contains('\u{1b}'),
        "no color when stderr is not a terminal"
    );
}

#[test]
fn validate_json_lists_problems_with_positions() {
    let s = Sandbox::new();
    std::fs::write(s.work().join("app.toml"), BAD).unwrap();
    let out = s.run(&["service", "validate", "--json"]);
    assert_eq!(code(&out), 2);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["valid"], false);
    let problems = json["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2);
    assert_eq!(problems[0]["code"], "unknown-key");
    assert_eq!(problems[0]["line"], 5);
    assert_eq!(problems[0]["column"], 1);
    assert_eq!(problems[0]["help"], "did you mean `replicas`?");
    assert_eq!(problems[1]["code"], "needs-health-check");
}

#[test]
fn validate_finds_app_toml_in_a_parent_and_checks_an_environment() {
    let s = Sandbox::new();
    std::fs::write(
        s.work().join("app.toml"),
        "name = \"pricing\"\nowner = \"a@b.io\"\n[environments.prod]\nscale = { replicas = 3 }\n",
    )
    .unwrap();
    std::fs::create_dir_all(s.work().join("src/deep")).unwrap();
    let out = s.run_in(
        &s.work().join("src/deep"),
        &["service", "validate", "-e", "prod", "--json"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["valid"], true);
    assert_eq!(json["environments"], serde_json::json!(["prod"]));
    let out = s.run(&["service", "validate", "-e", "staging"]);
    assert_eq!(code(&out), 0);
    assert!(
        stderr(&out).contains("uses the base manifest"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn validate_without_a_manifest_says_what_to_do() {
    let s = Sandbox::new();
    let out = s.run(&["service", "validate"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("no app.toml"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("faas service create"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn info_prints_the_effective_manifest() {
    let s = Sandbox::new();
    std::fs::write(
        s.work().join("app.toml"),
        "name = \"pricing\"\nowner = \"a@b.io\"\n[scale]\nreplicas = 2\n[environments.prod]\nscale = { replicas = 5 }\nsize = { memory = \"1Gi\" }\n",
    )
    .unwrap();
    let out = s.run(&["service", "info", "-e", "prod", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["name"], "pricing");
    assert_eq!(json["scale"]["replicas"], 5);
    assert_eq!(json["size"]["memory"], "1Gi");
    assert_eq!(json["size"]["cpu"], 0.5);
    assert_eq!(json["run"]["port"], 8080);
    assert_eq!(json["health"]["grace"], "30s");
    assert_eq!(json["deploy"]["strategy"], "rolling");
    assert!(json.get("environments").is_none());

    let base = s.run(&["service", "info", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&base.stdout).unwrap();
    assert_eq!(json["scale"]["replicas"], 2);

    let human = s.run(&["service", "info", "-e", "prod"]);
    let text = stdout(&human);
    assert!(text.contains("replicas = 5"), "{text}");
    let reparsed: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(reparsed["name"].as_str(), Some("pricing"));
}

#[test]
fn templates_list_names_each_template() {
    let out = faas(&["templates", "list", "--json"]).output().unwrap();
    assert_eq!(code(&out), 0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["python-action", "python-function", "rust-http", "static"]
    );
    for t in json.as_array().unwrap() {
        assert!(!t["description"].as_str().unwrap().is_empty());
    }
    let out = faas(&["templates", "list"]).output().unwrap();
    insta::assert_snapshot!(stdout(&out));
}

#[test]
fn completions_are_generated_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = faas(&["completions", shell]).output().unwrap();
        assert_eq!(code(&out), 0, "{shell}");
        let script = stdout(&out);
        assert!(script.contains("faas"), "{shell}");
        assert!(
            script.contains("validate"),
            "{shell}: subcommands completed"
        );
    }
}
