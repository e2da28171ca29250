//! `faas service validate [-e ENV] [--json]`

use std::path::Path;

use faas_spec::{LoadError, ManifestFile};
use serde_json::json;

use crate::error::{CliError, CliResult};
use crate::printer::Printer;
use crate::project;

pub fn run(
    printer: &Printer,
    manifest: Option<&Path>,
    context: Option<&str>,
    env: Option<&str>,
    json: bool,
) -> CliResult {
    let path = project::manifest_path(manifest)?;
    let shown = project::display_path(&path);
    let file = match ManifestFile::load(&path) {
        Ok(file) => file,
        Err(LoadError::Invalid(report)) if json => {
            printer.json(&json!({ "valid": false, "file": shown, "problems": report.located() }));
            printer.raw_stderr(&report.render(printer.color));
            return Err(CliError::ManifestReported);
        }
        Err(e) => return Err(e.into()),
    };
    let known = file
        .environment_names()
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>();
    if let Some(env) = env {
        faas_spec::names::check_env_name(env).map_err(|e| {
            CliError::usage(e.message, format!("an environment name is {}", e.rule))
        })?;
        file.effective(Some(env))
            .map_err(|r| CliError::Manifest(Box::new(r)))?;
        if !known.iter().any(|k| k == env) {
            printer.warn(format!(
                "{shown} has no [environments.{env}]: environment `{env}` uses the base manifest"
            ));
        }
    }
    // Advice only: each dependency is checked on the platform when it answers now.
    let mut warnings = Vec::new();
    if !file.manifest.dependencies.is_empty()
        && let Some(client) = crate::session::if_reachable(context)
    {
        for d in &file.manifest.dependencies {
            let name = d.service.as_str();
            if let Err(CliError::Platform { status: 404, .. }) =
                client.get::<serde_json::Value>(&format!("/v1/services/{name}"))
            {
                let warning = format!(
                    "dependency `{name}` is not a service on the platform at {}: a deploy will refuse it until it is created and deployed",
                    client.context.url
                );
                printer.warn(&warning);
                warnings.push(warning);
            }
        }
    }
    if json {
        printer.json(&json!({ "valid": true, "file": shown, "environments": known, "problems": [], "warnings": warnings }));
    } else {
        let envs = if known.is_empty() {
            String::new()
        } else {
            format!(" (environments: {})", known.join(", "))
        };
        printer.status(
            "Valid",
            format!("{shown}: service `{}`{envs}", file.manifest.name),
        );
    }
    Ok(())
}
