//! The parsers a user or a client can reach cannot be crashed: app.toml's parser, validator and
//! error renderer, and the API's JSON request bodies (with the name checks and the app.toml a
//! deployment carries). Property tests feed them arbitrary strings and bytes, and mutations of
//! real manifests and bodies (the inputs that get deep); none may panic.
//!
//! Cases per property: `FAAS_FUZZ_CASES` (default 20,000 here; `bench/fuzz.sh` runs a million).
//! Any input that ever crashed one of them is kept in `tests/fuzz-corpus/` and replayed first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use faas_spec::ManifestFile;
use faas_spec::api::{
    CanaryControl, CreateDeployment, CreateService, CreateToken, Rollback, Scale, SetSecrets,
    UnsetSecrets,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};

fn config() -> Config {
    let cases = std::env::var("FAAS_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..Config::default()
    }
}

/// Everything a manifest's text goes through: parse and validate, render the report (spans
/// underlined), resolve every environment.
fn manifest(text: &str) {
    match ManifestFile::parse("app.toml", text) {
        Ok(file) => {
            let _ = file.effective(None);
            for env in file.manifest.environments.keys() {
                let _ = file.effective(Some(env.as_str()));
            }
            let _ = file.effective(Some("prod"));
        }
        Err(report) => {
            let _ = report.render(false);
            let _ = report.render(true);
            let _ = report.located();
        }
    }
}

/// Everything a request body goes through before a handler acts on it.
fn body(bytes: &[u8]) {
    use faas_spec::names::{check_email, check_env_name, check_service_name};
    if let Ok(b) = serde_json::from_slice::<CreateDeployment>(bytes) {
        let _ = check_env_name(&b.env);
        manifest(&b.manifest);
    }
    if let Ok(b) = serde_json::from_slice::<CreateService>(bytes) {
        let _ = check_service_name(&b.name);
        let _ = b.owner.as_deref().map(check_email);
    }
    if let Ok(b) = serde_json::from_slice::<CreateToken>(bytes) {
        let _ = check_email(&b.tenant);
    }
    let _ = serde_json::from_slice::<Scale>(bytes);
    let _ = serde_json::from_slice::<Rollback>(bytes);
    let _ = serde_json::from_slice::<CanaryControl>(bytes);
    let _ = serde_json::from_slice::<SetSecrets>(bytes);
    let _ = serde_json::from_slice::<UnsetSecrets>(bytes);
}

const MANIFESTS: &[&str] = &[
    include_str!("good-manifests/design-example.toml"),
    include_str!("bad-manifests/27-canary-steps-decreasing.toml"),
    include_str!("bad-manifests/40-many-problems-at-once.toml"),
    include_str!("bad-manifests/44-canary-on-quiet-typo.toml"),
];

/// Tokens that matter to TOML and to the manifest's rules.
const TOKENS: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "=",
    "\"",
    "'",
    "'''",
    "\"\"\"",
    "\n",
    "\r\n",
    "\t",
    ",",
    "{",
    "}",
    "#",
    ".",
    "-",
    "+",
    "0",
    "1e400",
    "-0",
    "nan",
    "inf",
    "0x7f",
    "9999999999999999999999",
    "true",
    "\\u0000",
    "\\uD800",
    "é",
    "🚀",
    "\u{0}",
    "\u{feff}",
    "[environments.prod]",
    "[environments.x.deploy.canary]",
    "[[cron]]",
    "[databases.main]",
    "[deploy.canary]",
    "steps = [",
    "max_wait = \"",
    "interval = \"0s\"",
    "memory = \"1Ki\"",
    "cpu = 1e-9",
    "replicas = -1",
    "strategy = \"canary\"",
    "on_quiet = ",
    "port = 70000",
    "name = ",
    "owner = \"@\"",
    "schedule = \"* * * * * *\"",
    "timezone = ",
    "2026-12-01T00:00:00Z",
    "1d",
    "999999h",
    "500ms",
    "256Mi",
    "x = 1\nx = 2",
];

const BODIES: &[&str] = &[
    r#"{"env": "prod", "image": "busybox:stable", "manifest": "name = \"demo\"\nowner = \"a@b.io\"\n", "strategy": "canary", "manual": true}"#,
    r#"{"name": "demo", "owner": "team@example.com"}"#,
    r#"{"tenant": "t@example.com", "role": "member", "name": "ci"}"#,
    r#"{"env": "prod", "replicas": 3.0}"#,
    r#"{"env": "prod", "release": 2}"#,
    r#"{"env": "prod", "values": {"TOKEN": "s3cret", "B": ""}}"#,
    r#"{"env": "prod", "names": ["TOKEN"]}"#,
];

const JSON_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"",
    "\\",
    "\\u0000",
    "\\ud800",
    "null",
    "true",
    "-",
    "0",
    "1e400",
    "-1",
    "1.5",
    "18446744073709551616",
    "9223372036854775808",
    "\"env\"",
    "\"manifest\"",
    "\"strategy\"",
    "\"replicas\"",
    "\"values\"",
    " ",
    "é",
];

/// One edit of a text: insert a token, delete a range, or repeat a range.
#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, usize),
    Delete(usize, usize),
    Repeat(usize, usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        (any::<usize>(), any::<usize>()).prop_map(|(at, t)| Edit::Insert(at, t)),
        (any::<usize>(), 0usize..40).prop_map(|(at, n)| Edit::Delete(at, n)),
        (any::<usize>(), 0usize..60).prop_map(|(at, n)| Edit::Repeat(at, n)),
    ];
    proptest::collection::vec(edit, 1..8)
}

/// Applies edits at character boundaries, so the result stays text.
fn mutate(seed: &str, edits: &[Edit], tokens: &[&str]) -> String {
    let mut chars: Vec<char> = seed.chars().collect();
    for edit in edits {
        let len = chars.len();
        match *edit {
            Edit::Insert(at, t) => {
                let at = if len == 0 { 0 } else { at % (len + 1) };
                let token: Vec<char> = tokens[t % tokens.len()].chars().collect();
                chars.splice(at..at, token);
            }
            Edit::Delete(at, n) if len > 0 => {
                let at = at % len;
                let end = (at + n).min(len);
                chars.drain(at..end);
            }
            Edit::Repeat(at, n) if len > 0 => {
                let at = at % len;
                let end = (at + n).min(len);
                let copy: Vec<char> = chars[at..end].to_vec();
                chars.splice(end..end, copy);
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

#[test]
fn the_corpus_of_past_crashes_still_parses() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-corpus");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => manifest(&String::from_utf8_lossy(&bytes)),
            Some("json") => body(&bytes),
            _ => continue,
        }
        n += 1;
    }
    assert!(n > 0, "the corpus is empty");
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_text_as_app_toml(text in ".{0,300}") {
        manifest(&text);
    }

    #[test]
    fn mutated_manifests(seed in 0..MANIFESTS.len(), edits in edits()) {
        manifest(&mutate(MANIFESTS[seed], &edits, TOKENS));
    }

    #[test]
    fn any_bytes_as_a_request_body(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        body(&bytes);
    }

    #[test]
    fn mutated_request_bodies(seed in 0..BODIES.len(), edits in edits()) {
        body(mutate(BODIES[seed], &edits, JSON_TOKENS).as_bytes());
    }
}
