//! `faas service secrets set|list|unset`: values go to the platform and are never printed.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};
use std::path::Path;

use faas_spec::api::{SecretInfo, SecretsChanged, Service, SetSecrets, UnsetSecrets};

use crate::cli::SecretsCommand;
use crate::error::{CliError, CliResult};
use crate::printer::Printer;
use crate::session;

pub fn run(
    printer: &Printer,
    manifest: Option<&Path>,
    context: Option<&str>,
    cmd: SecretsCommand,
) -> CliResult {
    let name = super::service::service_name(manifest, None)?;
    match cmd {
        SecretsCommand::Set { pairs, env, deploy } => {
            let values = read_values(&pairs)?;
            let client = session::connect(printer, context)?;
            let changed: SecretsChanged = client.put(
                &format!("/v1/services/{name}/secrets"),
                &SetSecrets {
                    env: env.clone(),
                    values: values.clone(),
                },
            )?;
            let names: Vec<&str> = values.keys().map(String::as_str).collect();
            printer.status(
                "Set",
                format!(
                    "{} in {name} ({env}), secrets version {}",
                    names.join(", "),
                    changed.version
                ),
            );
            if deploy {
                redeploy(printer, manifest, context, &client, &name, &env)
            } else {
                printer.info(format!("the next deploy uses them: `faas service deploy -e {env}`, or set them with --deploy"));
                Ok(())
            }
        }
        SecretsCommand::List { env, json } => {
            let client = session::connect(printer, context)?;
            let list: Vec<SecretInfo> =
                client.get(&format!("/v1/services/{name}/secrets?env={env}"))?;
            if json {
                printer.json(&list);
            } else if list.is_empty() {
                printer.info(format!("{name} has no secrets in {env}"));
            } else {
                for s in list {
                    printer.result(format!("{:<32} v{:<4} {}", s.name, s.version, s.updated_at));
                }
            }
            Ok(())
        }
        SecretsCommand::Unset { names, env } => {
            let client = session::connect(printer, context)?;
            let changed: SecretsChanged = client.delete_json(
                &format!("/v1/services/{name}/secrets"),
                &UnsetSecrets {
                    env: env.clone(),
                    names: names.clone(),
                },
            )?;
            printer.status(
                "Unset",
                format!(
                    "{} in {name} ({env}), secrets version {}",
                    names.join(", "),
                    changed.version
                ),
            );
            printer.info(format!(
                "the next deploy drops them: `faas service deploy -e {env}`"
            ));
            Ok(())
        }
    }
}

/// KEY=VALUE pairs; a lone KEY takes its value from stdin: a hidden prompt on a terminal,
/// else all of stdin (one such KEY at most).
fn read_values(pairs: &[String]) -> CliResult<BTreeMap<String, String>> {
    let mut values = BTreeMap::new();
    let mut from_stdin = None;
    for pair in pairs {
        match pair.split_once('=') {
            Some((k, v)) => {
                values.insert(k.to_owned(), v.to_owned());
            }
            None if from_stdin.is_some() => {
                return Err(CliError::usage(
                    "only one KEY can take its value from stdin",
                    "give the others as KEY=VALUE",
                ));
            }
            None => from_stdin = Some(pair.clone()),
        }
    }
    if let Some(key) = from_stdin {
        let value = if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
            dialoguer::Password::new()
                .with_prompt(format!("Value of {key}"))
                .interact()
                .map_err(|e| CliError::failed(format!("the prompt failed: {e}"), None))?
        } else {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| CliError::failed(format!("cannot read stdin: {e}"), None))?;
            text.strip_suffix('\n')
                .map(|t| t.strip_suffix('\r').unwrap_or(t))
                .unwrap_or(&text)
                .to_owned()
        };
        values.insert(key, value);
    }
    Ok(values)
}

/// Deploys the environment's current image again, so that the new secrets version applies.
fn redeploy(
    printer: &Printer,
    manifest: Option<&Path>,
    context: Option<&str>,
    client: &crate::client::Client,
    name: &str,
    env: &str,
) -> CliResult {
    let service: Service = client.get(&format!("/v1/services/{name}"))?;
    let image = service
        .environments
        .iter()
        .find(|e| e.env == env)
        .and_then(|e| e.release.as_ref())
        .map(|r| r.image.clone())
        .ok_or_else(|| {
            CliError::usage(
                format!("nothing of {name} is deployed in {env} yet"),
                format!("deploy it: `faas service deploy -e {env}`"),
            )
        })?;
    super::deploy::deploy(
        printer,
        manifest,
        context,
        super::deploy::DeployOptions {
            env,
            strategy: None,
            manual: false,
            image: Some(&image),
            detach: false,
            yes: true,
            no_cache: false,
            build_args: &[],
        },
    )
}
