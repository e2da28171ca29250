//! The manifest corpus: every bad manifest's report is a snapshot; good manifests load and
//! resolve per environment.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use faas_spec::{Engine, ManifestFile, Strategy};

#[test]
fn every_bad_manifest_reports_its_problems() {
    insta::glob!("bad-manifests/*.toml", |path| {
        let source = std::fs::read_to_string(path).unwrap();
        let name = format!(
            "bad-manifests/{}",
            path.file_name().unwrap().to_string_lossy()
        );
        let report = ManifestFile::parse(&name, &source).expect_err("a bad manifest must not load");
        assert!(!report.diagnostics.is_empty());
        for d in &report.diagnostics {
            assert!(
                !d.message.is_empty(),
                "{name}: a diagnostic without a message"
            );
        }
        insta::assert_snapshot!(report.render(false));
    });
}

#[test]
fn many_problems_are_reported_at_once() {
    let source =
        std::fs::read_to_string("tests/bad-manifests/40-many-problems-at-once.toml").unwrap();
    let report = ManifestFile::parse("app.toml", &source).unwrap_err();
    let codes: Vec<&str> = report.diagnostics.iter().map(|d| d.code).collect();
    for code in [
        "invalid-name",
        "invalid-value",
        "unknown-key",
        "out-of-range",
        "invalid-unit",
        "needs-health-check",
    ] {
        assert!(codes.contains(&code), "missing {code} in {codes:?}");
    }
    assert!(report.diagnostics.len() >= 7, "{codes:?}");
}

#[test]
fn positions_are_line_and_column() {
    let source = "name = \"pricing\"\nowner = \"team@example.com\"\n\n[scale]\nreplcas = 2\n";
    let report = ManifestFile::parse("app.toml", source).unwrap_err();
    let located = report.located();
    assert_eq!((located[0].line, located[0].column), (5, 1));
    assert!(report.render(false).contains("app.toml:5:1"));
    assert!(report.render(false).contains("did you mean `replicas`?"));
}

#[test]
fn the_design_example_loads_and_resolves_per_environment() {
    let source = std::fs::read_to_string("tests/good-manifests/design-example.toml").unwrap();
    let file = ManifestFile::parse("app.toml", &source).unwrap();
    let base = &file.manifest;
    assert_eq!(base.name.as_str(), "pricing");
    assert_eq!(base.scale.replicas, 2);
    assert_eq!(base.deploy.strategy, Strategy::Rolling);
    assert_eq!(base.databases.len(), 2);
    assert_eq!(base.health.grace.as_millis(), 30_000);

    let prod = file.effective(Some("prod")).unwrap();
    assert_eq!(prod.scale.replicas, 3);
    assert_eq!(prod.size.memory.to_string(), "1Gi");
    assert_eq!(
        prod.size.cpu, 0.5,
        "keys not overridden keep the base's value"
    );
    assert_eq!(prod.deploy.strategy, Strategy::Canary);
    assert_eq!(prod.deploy.canary.steps, vec![10, 50, 100]);

    let staging = file.effective(Some("staging")).unwrap();
    assert_eq!(staging.run.env["LOG_LEVEL"], "debug");
    assert_eq!(staging.scale.replicas, 2);

    let preview = file.effective(Some("feature-x")).unwrap();
    assert_eq!(
        preview,
        file.effective(None).unwrap(),
        "an unnamed environment sees the base"
    );

    let envs: Vec<String> = base
        .database_env_names()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(envs, ["CACHE_URL", "REDIS_URL", "MAIN_URL", "DATABASE_URL"]);
    assert_eq!(
        base.databases.values().next().unwrap().engine,
        Engine::Redis
    );
}

#[test]
fn a_minimal_manifest_gets_the_defaults() {
    let file = ManifestFile::parse("app.toml", "name = \"ab\"\nowner = \"a@b.io\"\n").unwrap();
    let m = file.manifest;
    assert_eq!(m.run.port, 8080);
    assert_eq!(m.scale.replicas, 1);
    assert_eq!(m.size.memory.to_string(), "256Mi");
    assert_eq!(m.health.path, None);
    assert_eq!(m.deploy.strategy, Strategy::Rolling);
}
