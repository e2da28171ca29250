//! `faas service info [-e ENV] [--json]`: the effective manifest, every default filled in.

use std::path::Path;

use faas_spec::ManifestFile;

use crate::error::{CliError, CliResult};
use crate::printer::Printer;
use crate::project;

pub fn run(printer: &Printer, manifest: Option<&Path>, env: Option<&str>, json: bool) -> CliResult {
    let path = project::manifest_path(manifest)?;
    let file = ManifestFile::load(&path)?;
    if let Some(env) = env {
        faas_spec::names::check_env_name(env).map_err(|e| {
            CliError::usage(e.message, format!("an environment name is {}", e.rule))
        })?;
    }
    let effective = file
        .effective(env)
        .map_err(|r| CliError::Manifest(Box::new(r)))?;
    if json {
        printer.json(&effective);
        return Ok(());
    }
    let text = toml::to_string(&effective)
        .map_err(|e| CliError::failed(format!("cannot print the manifest as TOML: {e}"), None))?;
    let heading = match env {
        Some(env) => {
            format!("# the manifest environment `{env}` sees, with every default filled in")
        }
        None => "# the base manifest, with every default filled in".to_owned(),
    };
    printer.result(format!("{heading}\n{}", text.trim_end()));
    Ok(())
}
