//! faas-spec: the app.toml model, its validation, and (later) the platform API's wire types.
//!
//! [`ManifestFile::parse`] checks a manifest and reports every problem at once with its place in
//! the file; [`ManifestFile::effective`] resolves the manifest one environment sees.

pub mod api;
mod checks;
pub mod diagnostic;
pub mod manifest;
pub mod money;
pub mod names;
pub mod schema;
pub mod task;
pub mod units;
mod validate;
pub mod whole;

use std::path::Path;

use toml_edit::{Item, TableLike};

pub use diagnostic::{Diagnostic, Report};
pub use manifest::*;
pub use validate::nearest;

/// The manifest's file name in a service directory.
pub const MANIFEST_FILE: &str = "app.toml";

/// A checked manifest: its source, and the base model.
#[derive(Debug, Clone)]
pub struct ManifestFile {
    pub file_name: String,
    pub source: String,
    pub manifest: Manifest,
}

/// Why a manifest could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Box<Report>),
}

impl ManifestFile {
    /// Reads and checks a manifest file.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let source = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&path.display().to_string(), &source)
            .map_err(|r| LoadError::Invalid(Box::new(r)))
    }

    /// Checks a manifest given as text; `file_name` is how errors name it.
    pub fn parse(file_name: &str, source: &str) -> Result<Self, Report> {
        let report = |diagnostics| Report {
            file_name: file_name.to_owned(),
            source: source.to_owned(),
            diagnostics,
        };
        let doc = match toml_edit::Document::parse(source) {
            Ok(doc) => doc,
            Err(e) => return Err(report(vec![diagnostic::toml_syntax(file_name, &e)])),
        };
        let root = doc.as_table();

        let mut walker = validate::Walker::new();
        walker.walk_document(root, 0..source.len());
        let mut diagnostics = walker.diagnostics;

        let service_name = root.get("name").and_then(Item::as_str);
        checks::run(
            &checks::Layered {
                base: root,
                env: None,
            },
            service_name,
            &mut diagnostics,
        );
        if let Some(envs) = root.get("environments").and_then(Item::as_table_like) {
            for (env, item) in envs.iter() {
                if let Some(overrides) = item.as_table_like() {
                    let layer = checks::Layered {
                        base: root,
                        env: Some((env, overrides)),
                    };
                    checks::run(&layer, service_name, &mut diagnostics);
                }
            }
        }
        dedupe(&mut diagnostics);
        if !diagnostics.is_empty() {
            return Err(report(diagnostics));
        }

        match toml::from_str::<Manifest>(source) {
            Ok(manifest) => Ok(Self {
                file_name: file_name.to_owned(),
                source: source.to_owned(),
                manifest,
            }),
            Err(e) => Err(report(vec![
                Diagnostic::new(
                    "invalid-manifest",
                    e.span().unwrap_or(0..0),
                    e.message().trim().to_owned(),
                )
                .label("here"),
            ])),
        }
    }

    /// The manifest environment `env` sees: `[environments.<env>]` merged over the base, with no
    /// `environments` table of its own. An environment with no overrides (a preview, say) sees
    /// the base; `None` is the base.
    pub fn effective(&self, env: Option<&str>) -> Result<Manifest, Report> {
        let Some(env) = env else {
            let mut base = self.manifest.clone();
            base.environments.clear();
            return Ok(base);
        };
        let as_report = |e: toml::de::Error| Report {
            file_name: self.file_name.clone(),
            source: self.source.clone(),
            diagnostics: vec![
                Diagnostic::new(
                    "invalid-manifest",
                    e.span().unwrap_or(0..0),
                    e.message().trim().to_owned(),
                )
                .label(format!("in environment `{env}`")),
            ],
        };
        let mut base: toml::Table = toml::from_str(&self.source).map_err(as_report)?;
        let overrides = base.remove("environments").and_then(|e| match e {
            toml::Value::Table(mut t) => t.remove(env),
            _ => None,
        });
        if let Some(toml::Value::Table(overrides)) = overrides {
            merge(&mut base, overrides);
        }
        toml::Value::Table(base)
            .try_into::<Manifest>()
            .map_err(as_report)
    }

    /// The environments the manifest names.
    pub fn environment_names(&self) -> Vec<&str> {
        self.manifest
            .environments
            .keys()
            .map(|e| e.as_str())
            .collect()
    }
}

/// Tables merge key by key; anything else replaces.
fn merge(base: &mut toml::Table, overrides: toml::Table) {
    for (key, value) in overrides {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn dedupe(diagnostics: &mut Vec<Diagnostic>) {
    let mut seen = std::collections::HashSet::new();
    diagnostics.retain(|d| seen.insert((d.code, d.span.start, d.span.end, d.message.clone())));
    diagnostics.sort_by_key(|d| d.span.start);
}

/// Reads the `name` of a table-like, for callers that edit manifests.
pub fn table_str<'a>(table: &'a dyn TableLike, key: &str) -> Option<&'a str> {
    table.get(key).and_then(Item::as_str)
}
