//! `faas service dev --deps-from ENV`: the service's `[[dependencies]]` reached in an
//! environment of the platform: each `<NAME>_URL` points at that environment's service through
//! the router, whose host the dev container resolves to the router's address on the platform's
//! network.

use std::path::Path;

use faas_spec::ManifestFile;
use serde::Deserialize;

use crate::client::encode;
use crate::error::{CliError, CliResult};
use crate::printer::Printer;
use crate::{project, session};

/// What the dev container gets for its dependencies.
#[derive(Debug, Clone, Default)]
pub struct DevDependencies {
    /// `BILLING_URL`, its URL.
    pub env: Vec<(String, String)>,
    /// `host:ip` entries for the container.
    pub hosts: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct ServiceAddress {
    url: String,
    host: String,
    env: String,
    #[serde(default)]
    network_address: Option<String>,
}

/// Asks the platform where each dependency is in `from` (or its fallback).
pub fn resolve(
    printer: &Printer,
    manifest: Option<&Path>,
    context: Option<&str>,
    from: &str,
) -> CliResult<DevDependencies> {
    let path = project::manifest_path(manifest)?;
    let file = ManifestFile::load(&path)?;
    let mut out = DevDependencies::default();
    if file.manifest.dependencies.is_empty() {
        printer.warn(format!(
            "{} declares no dependencies: --deps-from {from} changes nothing",
            project::display_path(&path)
        ));
        return Ok(out);
    }
    let client = session::connect(printer, context)?;
    for d in &file.manifest.dependencies {
        let name = d.service.as_str();
        let ask = |env: &str| {
            client
                .get::<ServiceAddress>(&format!("/v1/services/{name}/address?env={}", encode(env)))
        };
        let address = match (ask(from), &d.fallback) {
            (Ok(a), _) => a,
            (Err(_), Some(fallback)) => ask(fallback.as_str())?,
            (Err(e), None) => {
                return Err(CliError::failed(
                    format!("dependency `{name}` cannot be reached in {from}: {e}"),
                    Some(format!(
                        "deploy it there, or give it `fallback = \"prod\"` (faas service dependency add {name} --fallback prod)"
                    )),
                ));
            }
        };
        let var = format!("{}_URL", name.to_ascii_uppercase().replace('-', "_"));
        printer.status(
            "Reaching",
            format!("{name} in {} as {var}={}", address.env, address.url),
        );
        if let Some(ip) = address
            .network_address
            .as_deref()
            .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
            .map(|a| a.ip())
        {
            out.hosts.push(format!("{}:{ip}", address.host));
        }
        out.env.push((var, address.url));
    }
    Ok(out)
}
