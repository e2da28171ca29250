//! Manifest edits as fixture trees, the way cargo tests `cargo add`: each case under
//! tests/edit/<case>/ has `in/` (the project before), `case.toml` (the arguments and the exit
//! code), and `out/` (the project after, byte for byte). What the command printed on stderr is
//! a snapshot.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::Sandbox;

#[derive(serde::Deserialize)]
struct Case {
    args: Vec<String>,
    code: i32,
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn assert_same_tree(expected: &Path, actual: &Path, case: &str) {
    let mut expected_names: Vec<_> = std::fs::read_dir(expected)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let mut actual_names: Vec<_> = std::fs::read_dir(actual)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    expected_names.sort();
    actual_names.sort();
    assert_eq!(
        expected_names, actual_names,
        "{case}: the files differ (a temporary file left behind?)"
    );
    for name in expected_names {
        let (e, a) = (expected.join(&name), actual.join(&name));
        if e.is_dir() {
            assert_same_tree(&e, &a, case);
        } else {
            let (e, a) = (
                std::fs::read_to_string(e).unwrap(),
                std::fs::read_to_string(a).unwrap(),
            );
            pretty_eq(&e, &a, &format!("{case}/{}", name.to_string_lossy()));
        }
    }
}

fn pretty_eq(expected: &str, actual: &str, what: &str) {
    assert!(
        expected == actual,
        "{what} differs\n--- expected\n{expected}\n--- actual\n{actual}"
    );
}

#[test]
fn manifest_edits_match_their_fixtures() {
    insta::glob!("edit/*/case.toml", |case_file| {
        let case_dir = case_file.parent().unwrap();
        let name = case_dir.file_name().unwrap().to_string_lossy().into_owned();
        let case: Case = toml::from_str(&std::fs::read_to_string(case_file).unwrap()).unwrap();

        let sandbox = Sandbox::new();
        let project = sandbox.work();
        copy_tree(&case_dir.join("in"), &project);

        let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
        let out = sandbox.run_in(&project, &args);
        assert_eq!(
            common::code(&out),
            case.code,
            "{name}: exit code; stderr:\n{}",
            common::stderr(&out)
        );
        assert_same_tree(&case_dir.join("out"), &project, &name);
        insta::assert_snapshot!(common::stderr(&out));
    });
}
