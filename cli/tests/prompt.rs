//! Prompts through a real pseudo-terminal: `faas service create` asks for what the flags did
//! not say, and colors follow the terminal and NO_COLOR.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Sandbox;
use rexpect::session::spawn_command;

const TIMEOUT_MS: Option<u64> = Some(20_000);

#[test]
fn create_prompts_for_missing_answers_on_a_terminal() {
    let s = Sandbox::new();
    let mut cmd = s.cmd();
    cmd.args(["service", "create"]).env("TERM", "xterm");
    let mut p = spawn_command(cmd, TIMEOUT_MS).unwrap();
    p.exp_string("Service name").unwrap();
    p.send_line("Bad_Name").unwrap();
    p.exp_string("try `bad-name`").unwrap();
    // The refused answer is cleared and the question asked again.
    p.exp_string("Service name").unwrap();
    p.send_line("prompted").unwrap();
    p.exp_string("Template").unwrap();
    p.send_line("").unwrap();
    p.exp_string("Owner").unwrap();
    p.send_line("owner@example.com").unwrap();
    p.exp_string("Kind").unwrap();
    p.send("\x1b[B").unwrap(); // down: infrastructure
    p.send_line("").unwrap();
    p.exp_string("Created").unwrap();
    p.exp_eof().unwrap();

    let manifest = std::fs::read_to_string(s.work().join("prompted/app.toml")).unwrap();
    assert!(manifest.contains("name = \"prompted\""), "{manifest}");
    assert!(
        manifest.contains("owner = \"owner@example.com\""),
        "{manifest}"
    );
    assert!(manifest.contains("kind = \"infrastructure\""), "{manifest}");
    assert!(
        s.work().join("prompted/app/functions.py").exists(),
        "the default template"
    );
}

#[test]
fn no_input_never_prompts_even_on_a_terminal() {
    let s = Sandbox::new();
    let mut cmd = s.cmd();
    cmd.args(["service", "create", "quiet", "--no-input"])
        .env("TERM", "xterm");
    let mut p = spawn_command(cmd, TIMEOUT_MS).unwrap();
    p.exp_string("--owner EMAIL").unwrap();
    p.exp_eof().unwrap();
    assert!(!s.work().join("quiet").exists());
}

fn validate_output_on_a_terminal(s: &Sandbox, extra_env: &[(&str, &str)], args: &[&str]) -> String {
    std::fs::write(
        s.work().join("app.toml"),
        "name = \"Pricing\"\nowner = \"a@b.io\"\n",
    )
    .unwrap();
    let mut cmd = s.cmd();
    cmd.args(["service", "validate"])
        .args(args)
        .env("TERM", "xterm");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut p = spawn_command(cmd, TIMEOUT_MS).unwrap();
    p.exp_eof().unwrap()
}

#[test]
fn colors_on_a_terminal_and_off_with_no_color() {
    let s = Sandbox::new();
    let colored = validate_output_on_a_terminal(&s, &[], &[]);
    assert!(
        colored.contains("\u{1b}["),
        "a terminal gets colors: {colored:?}"
    );
    let plain = validate_output_on_a_terminal(&s, &[("NO_COLOR", "1")], &[]);
    assert!(!plain.contains("\u{1b}["), "NO_COLOR: {plain:?}");
    assert!(plain.contains("app.toml:1:8"));
    let plain = validate_output_on_a_terminal(&s, &[], &["--no-color"]);
    assert!(!plain.contains("\u{1b}["), "--no-color: {plain:?}");
    let plain = validate_output_on_a_terminal(&s, &[("TERM", "dumb")], &[]);
    assert!(!plain.contains("\u{1b}["), "TERM=dumb: {plain:?}");
}

#[test]
fn deploying_to_prod_on_a_terminal_asks_first() {
    let s = Sandbox::new();
    let out = s.run(&[
        "service",
        "create",
        "careful",
        "--template",
        "static",
        "--no-input",
        "--owner",
        "a@b.io",
    ]);
    assert!(out.status.success());
    let mut cmd = s.cmd_in(&s.work().join("careful"));
    cmd.args(["service", "deploy", "-e", "prod"])
        .env("TERM", "xterm");
    let mut p = spawn_command(cmd, TIMEOUT_MS).unwrap();
    p.exp_string("Deploy careful to prod?").unwrap();
    p.send_line("n").unwrap();
    let rest = p.exp_eof().unwrap();
    assert!(rest.contains("not deployed"), "{rest:?}");
}
