//! A command's link to its platform: the context, the local platform started on first use, and
//! the token.

use crate::client::Client;
use crate::config::{Config, Context};
use crate::credentials;
use crate::error::{CliError, CliResult};
use crate::local::Local;
use crate::printer::Printer;

pub fn context(wanted: Option<&str>) -> CliResult<Context> {
    Config::load()?.resolve(wanted)
}

/// The client for the chosen context; the local platform is started when it does not answer.
pub fn connect(printer: &Printer, wanted: Option<&str>) -> CliResult<Client> {
    let context = context(wanted)?;
    if context.local {
        let local = Local::new();
        if !local.answers() {
            printer.info(format!(
                "Starting the local platform (data in {})…",
                local.data_dir.display()
            ));
            local.start()?;
            printer.status("Started", format!("the local platform at {}", local.url()));
        }
        local.check_ours(&context)?;
    }
    let token = credentials::token(&context).ok_or_else(|| {
        CliError::usage(
            format!(
                "not logged in to context `{}` ({})",
                context.name, context.url
            ),
            "run `faas login` (or set FAAS_TOKEN)",
        )
    })?;
    Client::new(context, Some(token))
}

/// The client for the chosen context when its platform answers now and a token is at hand,
/// without starting anything (for checks that are only advice, such as `validate`'s).
pub fn if_reachable(wanted: Option<&str>) -> Option<Client> {
    let context = context(wanted).ok()?;
    if context.local {
        let local = Local::new();
        if !local.answers() || local.check_ours(&context).is_err() {
            return None;
        }
    }
    let token = credentials::token(&context)?;
    Client::new(context, Some(token)).ok()
}
