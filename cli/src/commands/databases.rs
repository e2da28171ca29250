//! `faas service db list|info|connect|rotate|backup|restore|destroy`: a service's databases,
//! never a password on screen or on a command line.

use std::io::IsTerminal;
use std::path::Path;

use clap::Subcommand;
use faas_spec::api::Deployment;
use faas_spec::api::databases::{ConnectRequest, ConnectSession, DatabaseInfo, Rotation};

use crate::client::{Client, encode};
use crate::error::{CliError, CliResult};
use crate::printer::Printer;
use crate::session;

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// The databases of the service, per environment
    List {
        /// Only this environment
        #[arg(short, long, value_name = "ENV")]
        env: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// One database: engine, provider, state, login and the variables it injects
    Info {
        name: String,
        #[arg(short, long, value_name = "ENV", default_value = "prod")]
        env: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Open psql or redis-cli as the service's login, in the managed server's container
    Connect {
        name: String,
        #[arg(short, long, value_name = "ENV", default_value = "prod")]
        env: String,
        /// Arguments for the client after `--`, e.g. `-- -c 'SELECT 1'` or `-- GET key`
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// New credentials: the environment rolls to a release carrying them, then the old ones are revoked
    Rotate {
        name: String,
        #[arg(short, long, value_name = "ENV", default_value = "prod")]
        env: String,
    },
    /// Write a dump (pg_dump's custom format; a snapshot of the environment's Redis keys) to a file
    Backup {
        name: String,
        #[arg(short, long, value_name = "ENV", default_value = "prod")]
        env: String,
        /// The file [default: <service>-<env>-<name>-<time>.dump]
        #[arg(short, long, value_name = "FILE")]
        output: Option<std::path::PathBuf>,
    },
    /// Load a dump made by `backup` back, replacing what has the same name
    Restore {
        name: String,
        /// The dump
        file: std::path::PathBuf,
        #[arg(short, long, value_name = "ENV", default_value = "prod")]
        env: String,
    },
    /// Drop a database and its data for good (refused while app.toml of the release declares it)
    Destroy {
        name: String,
        #[arg(short, long, value_name = "ENV")]
        env: String,
        /// The database's name again
        #[arg(long, value_name = "NAME")]
        confirm: Option<String>,
    },
}

pub fn run(
    printer: &Printer,
    manifest: Option<&Path>,
    context: Option<&str>,
    cmd: DbCommand,
) -> CliResult {
    let service = super::service::service_name(manifest, None)?;
    let client = session::connect(printer, context)?;
    let path = |name: &str, env: &str, what: &str| {
        format!(
            "/v1/services/{service}/databases/{}{what}?env={}",
            encode(name),
            encode(env)
        )
    };
    match cmd {
        DbCommand::List { env, json } => {
            let query = env
                .map(|e| format!("?env={}", encode(&e)))
                .unwrap_or_default();
            let list: Vec<DatabaseInfo> =
                client.get(&format!("/v1/services/{service}/databases{query}"))?;
            if json {
                printer.json(&list);
            } else if list.is_empty() {
                printer.info(format!(
                    "{service} has no databases yet: declare one (`faas postgresql add`) and deploy"
                ));
            } else {
                for db in &list {
                    printer.result(format!(
                        "{:<10} {:<12} {:<11} {:<8} {:<9} {}",
                        db.env,
                        db.name,
                        db.engine,
                        db.provider,
                        db.state,
                        db.variables.join(" ")
                    ));
                }
            }
            Ok(())
        }
        DbCommand::Info { name, env, json } => {
            let db: DatabaseInfo = client.get(&path(&name, &env, ""))?;
            if json {
                printer.json(&db);
                return Ok(());
            }
            printer.result(format!("{} of {service} ({})", db.name, db.env));
            for (k, v) in [
                ("engine", db.engine.clone()),
                ("provider", db.provider.clone()),
                ("state", db.state.clone()),
                ("server", db.server.clone()),
                ("database", db.principal.clone()),
                ("login", db.login.clone()),
                ("variables", db.variables.join(", ")),
                ("created", db.created_at.clone()),
            ] {
                printer.result(format!("  {k:<10} {v}"));
            }
            if db.rotating {
                printer.result("  a rotation is under way: the old login opens until the environment's deployment succeeds");
            }
            Ok(())
        }
        DbCommand::Connect { name, env, args } => {
            connect(&client, &path(&name, &env, "/connect"), args)
        }
        DbCommand::Rotate { name, env } => {
            let r: Rotation = client.post(&path(&name, &env, "/rotate"), &serde_json::json!({}))?;
            printer.status(
                "Rotating",
                format!(
                    "{name} of {service} ({env}): the new login is {}",
                    r.database.login
                ),
            );
            let d: Deployment = client.get(&format!(
                "/v1/services/{service}/deployments/{}",
                r.deployment
            ))?;
            super::deploy::follow(printer, &client, &d)?;
            let after: DatabaseInfo = client.get(&path(&name, &env, ""))?;
            if after.rotating {
                return Err(CliError::failed(
                    format!(
                        "{name} is still being rotated: the old login opens until a deployment of {env} succeeds"
                    ),
                    Some(format!(
                        "deploy {env} again: `faas service deploy -e {env}`"
                    )),
                ));
            }
            printer.status(
                "Rotated",
                format!("{name}: the old login no longer opens it"),
            );
            Ok(())
        }
        DbCommand::Backup { name, env, output } => {
            let file = output.unwrap_or_else(|| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                format!("{service}-{env}-{name}-{now}.dump").into()
            });
            let tmp = file.with_extension("partial");
            let mut out = std::fs::File::create(&tmp).map_err(|e| {
                CliError::failed(format!("cannot write {}: {e}", tmp.display()), None)
            })?;
            let written = client.download(&path(&name, &env, "/backup"), &mut out);
            let written = match written {
                Ok(n) => n,
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e);
                }
            };
            std::fs::rename(&tmp, &file).map_err(|e| {
                CliError::failed(format!("cannot write {}: {e}", file.display()), None)
            })?;
            printer.status(
                "Saved",
                format!(
                    "{name} of {service} ({env}) to {} ({written} bytes)",
                    file.display()
                ),
            );
            Ok(())
        }
        DbCommand::Restore { name, file, env } => {
            let handle = std::fs::File::open(&file).map_err(|e| {
                CliError::usage(
                    format!("cannot read {}: {e}", file.display()),
                    "give a file `faas service db backup` wrote",
                )
            })?;
            let len = handle.metadata().map(|m| m.len()).unwrap_or(0);
            let done: String = client.upload_as(
                &path(&name, &env, "/restore"),
                handle,
                len,
                "application/octet-stream",
            )?;
            printer.status(
                "Restored",
                format!("{} ({service}, {env}): {done}", file.display()),
            );
            Ok(())
        }
        DbCommand::Destroy { name, env, confirm } => {
            let Some(confirm) = confirm else {
                return Err(CliError::usage(
                    format!("destroying {name} of {service} ({env}) deletes its data for good"),
                    format!(
                        "repeat its name: `faas service db destroy {name} -e {env} --confirm {name}`"
                    ),
                ));
            };
            client.delete(&format!(
                "{}&confirm={}",
                path(&name, &env, ""),
                encode(&confirm)
            ))?;
            printer.status(
                "Destroyed",
                format!("{name} of {service} ({env}) and its data"),
            );
            Ok(())
        }
    }
}

/// Asks the platform for a session as the service's login, then attaches to it on this Docker
/// Engine (which must be the platform's: the managed server runs there).
fn connect(client: &Client, path: &str, args: Vec<String>) -> CliResult {
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let (rt, d) =
        crate::exec::platform_engine(client, "database servers", "faas service db connect")?;
    let session: ConnectSession = client.post(path, &ConnectRequest { args, tty })?;
    let code = rt.block_on(crate::exec::attach_exec(&d, &session.exec, tty))?;
    if code != 0 {
        std::process::exit(i32::try_from(code).unwrap_or(1));
    }
    Ok(())
}
