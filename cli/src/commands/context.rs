//! `faas context add|use|list`.

use crate::config::{Config, ContextEntry, LOCAL};
use crate::error::{CliError, CliResult};
use crate::printer::Printer;

pub fn add(printer: &Printer, name: &str, url: &str) -> CliResult {
    faas_spec::names::check_env_name(name).map_err(|e| {
        CliError::usage(
            format!("`{name}` is not a valid context name"),
            format!("a context name is {}", e.rule),
        )
    })?;
    if name == LOCAL {
        return Err(CliError::usage(
            "`local` is the platform on this machine",
            "choose another name",
        ));
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| {
        CliError::usage(
            format!("`{url}` is not a URL: {e}"),
            "e.g. https://faas.example.com",
        )
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(CliError::usage(
            format!("`{url}` is not an http(s) URL"),
            "e.g. https://faas.example.com",
        ));
    }
    let mut config = Config::load()?;
    let existed = config
        .contexts
        .insert(
            name.to_owned(),
            ContextEntry {
                url: url.trim_end_matches('/').to_owned(),
            },
        )
        .is_some();
    config.save()?;
    printer.status(
        if existed { "Updated" } else { "Added" },
        format!("context `{name}` → {url}"),
    );
    printer.info(format!("use it with `faas context use {name}` or `-C {name}`, and log in with `faas login -C {name}`"));
    Ok(())
}

pub fn use_context(printer: &Printer, name: &str) -> CliResult {
    let mut config = Config::load()?;
    config.resolve(Some(name))?;
    config.current = Some(name.to_owned());
    config.save()?;
    printer.status("Using", format!("context `{name}`"));
    Ok(())
}

pub fn list(printer: &Printer, wanted: Option<&str>, json: bool) -> CliResult {
    let config = Config::load()?;
    let current = config.resolve(wanted)?.name;
    let all = config.all();
    if json {
        let rows: Vec<_> = all
            .iter()
            .map(|c| serde_json::json!({ "name": c.name, "url": c.url, "local": c.local, "current": c.name == current }))
            .collect();
        printer.json(&rows);
        return Ok(());
    }
    for c in all {
        let mark = if c.name == current { "*" } else { " " };
        printer.result(format!(
            "{mark} {:<16} {}{}",
            c.name,
            c.url,
            if c.local { "  (this machine)" } else { "" }
        ));
    }
    Ok(())
}
