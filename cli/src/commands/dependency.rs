//! `faas service dependency add|remove|list`: the services this one calls, in app.toml's
//! `[[dependencies]]`; at deploy each is injected as `<NAME>_URL`.

use std::path::Path;

use clap::Subcommand;
use faas_spec::ManifestFile;

use crate::dependency_edit;
use crate::error::{CliError, CliResult};
use crate::manifest_edit::Outcome;
use crate::printer::Printer;
use crate::project;

#[derive(Debug, Subcommand)]
pub enum DependencyCommand {
    /// Declare a service this one calls (its address is injected as <NAME>_URL at deploy)
    Add {
        /// The other service
        name: String,
        /// Its environment to call when it has none of the deployed one's name, e.g. prod
        #[arg(long, value_name = "ENV")]
        fallback: Option<String>,
    },
    /// Stop declaring a service
    Remove {
        /// The other service
        name: String,
    },
    /// The declared services and the variables that carry their addresses
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

pub fn run(printer: &Printer, manifest: Option<&Path>, cmd: DependencyCommand) -> CliResult {
    let path = project::manifest_path(manifest)?;
    let shown = project::display_path(&path);
    if let DependencyCommand::List { json } = cmd {
        let file = ManifestFile::load(&path)?;
        let deps: Vec<serde_json::Value> = file
            .manifest
            .dependencies
            .iter()
            .map(|d| {
                serde_json::json!({
                    "service": d.service.as_str(),
                    "variable": format!("{}_URL", d.service.as_str().to_ascii_uppercase().replace('-', "_")),
                    "fallback": d.fallback.as_ref().map(|f| f.as_str()),
                })
            })
            .collect();
        if json {
            printer.json(&deps);
        } else if deps.is_empty() {
            printer.info(format!("{shown} declares no dependencies"));
        } else {
            for d in &deps {
                let fallback = d["fallback"]
                    .as_str()
                    .map(|f| format!("  (else its {f})"))
                    .unwrap_or_default();
                printer.result(format!(
                    "{:<24} {}{fallback}",
                    d["service"].as_str().unwrap_or_default(),
                    d["variable"].as_str().unwrap_or_default()
                ));
            }
        }
        return Ok(());
    }
    let text = std::fs::read_to_string(&path).map_err(|e| {
        CliError::failed(
            format!("cannot read {shown}: {e}"),
            Some("check the path, or pass --manifest".into()),
        )
    })?;
    let (outcome, verb) = match cmd {
        DependencyCommand::Add { name, fallback } => (
            dependency_edit::add(&text, &shown, &name, fallback.as_deref())?,
            "Added",
        ),
        DependencyCommand::Remove { name } => {
            (dependency_edit::remove(&text, &shown, &name)?, "Removed")
        }
        DependencyCommand::List { .. } => return Ok(()),
    };
    match outcome {
        Outcome::Changed { text, summary } => {
            project::write_atomically(&path, &text)?;
            printer.status(verb, format!("{summary} in {shown}"));
        }
        Outcome::Unchanged(why) => printer.info(why),
    }
    Ok(())
}
