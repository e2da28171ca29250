//! `faas <engine> add [NAME]` and `faas <engine> remove [NAME]`: edit app.toml in place.

use std::path::Path;

use faas_spec::Engine;

use crate::error::{CliError, CliResult};
use crate::manifest_edit::{self, Outcome};
use crate::printer::Printer;
use crate::project;

pub enum Action<'a> {
    Add {
        name: Option<&'a str>,
        version: Option<&'a str>,
    },
    Remove {
        name: Option<&'a str>,
    },
}

pub fn run(
    printer: &Printer,
    manifest: Option<&Path>,
    engine: Engine,
    action: Action<'_>,
) -> CliResult {
    let path = project::manifest_path(manifest)?;
    let shown = project::display_path(&path);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        CliError::failed(
            format!("cannot read {shown}: {e}"),
            Some("check the path, or pass --manifest".into()),
        )
    })?;
    let (outcome, verb) = match action {
        Action::Add { name, version } => (
            manifest_edit::add_database(&text, &shown, engine, name, version)?,
            "Added",
        ),
        Action::Remove { name } => (
            manifest_edit::remove_database(&text, &shown, engine, name)?,
            "Removed",
        ),
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
