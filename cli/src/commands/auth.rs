//! `faas login`, `faas logout`, `faas whoami`.

use std::io::{IsTerminal, Read};

use faas_spec::api::WhoAmI;

use crate::client::Client;
use crate::credentials::{self, Store};
use crate::error::{CliError, CliResult};
use crate::printer::Printer;
use crate::session;

pub fn login(printer: &Printer, wanted: Option<&str>, token_stdin: bool) -> CliResult {
    let context = session::context(wanted)?;
    let token = if token_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::failed(format!("cannot read stdin: {e}"), None))?;
        text.trim().to_owned()
    } else if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        dialoguer::Password::new()
            .with_prompt(format!("Token for {} ({})", context.name, context.url))
            .interact()
            .map_err(|e| CliError::failed(format!("the prompt failed: {e}"), None))?
    } else {
        return Err(CliError::usage(
            "no token given and no terminal to ask on",
            "pipe it in: `… | faas login --token-stdin`",
        ));
    };
    if token.is_empty() {
        return Err(CliError::usage(
            "the token is empty",
            "pass the token your platform admin gave you",
        ));
    }
    // Check it before keeping it.
    if context.local {
        session::connect(printer, Some(&context.name)).map(drop)?;
    }
    let client = Client::new(context.clone(), Some(token.clone()))?;
    let who: WhoAmI = client.get("/v1/whoami")?;
    let store = credentials::save(printer, &context.name, &token)?;
    let place = match store {
        Store::Keyring => "the OS keyring",
        Store::File => "the credentials file",
    };
    printer.status(
        "Logged in",
        format!(
            "to {} as {} ({}); the token is in {place}",
            context.name,
            who.tenant,
            who.role.as_str()
        ),
    );
    Ok(())
}

pub fn logout(printer: &Printer, wanted: Option<&str>) -> CliResult {
    let context = session::context(wanted)?;
    if credentials::forget(&context.name)? {
        printer.status("Logged out", format!("of {}", context.name));
    } else {
        printer.info(format!("no token was kept for {}", context.name));
    }
    Ok(())
}

pub fn whoami(printer: &Printer, wanted: Option<&str>, json: bool) -> CliResult {
    let client = session::connect(printer, wanted)?;
    let who: WhoAmI = client.get("/v1/whoami")?;
    if json {
        printer.json(&serde_json::json!({ "context": client.context.name, "url": client.context.url, "tenant": who.tenant, "role": who.role }));
    } else {
        printer.result(format!(
            "{} ({}) on {} ({})",
            who.tenant,
            who.role.as_str(),
            client.context.name,
            client.context.url
        ));
    }
    Ok(())
}
