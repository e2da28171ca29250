//! `faas service debug [-e ENV] [--instance ID] [-- CMD…]`: a shell (or a command) inside a
//! running instance, with a terminal when this one is, on the platform's Docker Engine.

use std::io::IsTerminal;

use clap::Args;
use faas_spec::api::Instance;
use faas_spec::api::databases::ConnectSession;

use crate::client::encode;
use crate::error::{CliError, CliResult};
use crate::printer::Printer;
use crate::session;

#[derive(Debug, Args)]
pub struct DebugArgs {
    /// The environment
    #[arg(short, long, value_name = "ENV", default_value = "prod")]
    pub env: String,
    /// The instance [default: a healthy one]
    #[arg(long, value_name = "ID")]
    pub instance: Option<String>,
    /// The service [default: app.toml's name]
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// The command to run [default: sh]
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

pub fn run(printer: &Printer, context: Option<&str>, service: &str, args: DebugArgs) -> CliResult {
    let client = session::connect(printer, context)?;
    let instances: Vec<Instance> = client.get(&format!(
        "/v1/services/{service}/instances?env={}",
        encode(&args.env)
    ))?;
    let ids = || {
        instances
            .iter()
            .map(|i| i.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let instance = match &args.instance {
        Some(id) => instances.iter().find(|i| &i.id == id).ok_or_else(|| {
            CliError::usage(
                format!("`{id}` is not an instance of {service} in {}", args.env),
                if instances.is_empty() {
                    format!("{service} has no instances in {}", args.env)
                } else {
                    format!("its instances: {}", ids())
                },
            )
        })?,
        None => instances
            .iter()
            .find(|i| i.healthy)
            .or_else(|| instances.iter().find(|i| i.state != "draining"))
            .ok_or_else(|| {
                CliError::failed(
                    format!("{service} has no running instance in {}", args.env),
                    Some(format!("deploy it: faas service deploy -e {}", args.env)),
                )
            })?,
    };
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let (rt, d) = crate::exec::platform_engine(&client, "instances", "faas service debug")?;
    let session: ConnectSession = client.post(
        &format!("/v1/services/{service}/instances/{}/exec", instance.id),
        &serde_json::json!({ "command": args.command, "tty": tty }),
    )?;
    if tty {
        printer.info(format!(
            "{} in instance {} (v{}) of {service} ({})",
            session.command.join(" "),
            instance.id,
            instance.version,
            args.env
        ));
    }
    let code = rt.block_on(crate::exec::attach_exec(&d, &session.exec, tty))?;
    if code != 0 {
        std::process::exit(i32::try_from(code).unwrap_or(1));
    }
    Ok(())
}
