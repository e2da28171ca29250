//! Edits of app.toml that keep the user's comments, order and formatting (toml_edit). An edit
//! is checked as a whole manifest before it is written: a change that would leave app.toml
//! invalid is refused and nothing is written.

use faas_spec::{Engine, ManifestFile, names};
use toml_edit::{DocumentMut, Item, Table, value};

use crate::error::{CliError, CliResult};

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The new text of app.toml and what changed, in words.
    Changed { text: String, summary: String },
    /// Nothing to do, and why.
    Unchanged(String),
}

pub(crate) fn parse(text: &str, file: &str) -> CliResult<DocumentMut> {
    text.parse::<DocumentMut>().map_err(|e| {
        CliError::usage(
            format!("{file} is not valid TOML: {}", e.message().trim()),
            "run `faas service validate` to see where, and fix it first",
        )
    })
}

pub(crate) fn check_result(text: String, file: &str, summary: String) -> CliResult<Outcome> {
    ManifestFile::parse(file, &text).map_err(|report| CliError::Manifest(Box::new(report)))?;
    Ok(Outcome::Changed { text, summary })
}

fn engine_of(table: &dyn toml_edit::TableLike) -> Option<&str> {
    table.get("engine").and_then(Item::as_str)
}

/// Adds `[databases.<name>]` with `engine` (and `version`).
pub fn add_database(
    text: &str,
    file: &str,
    engine: Engine,
    name: Option<&str>,
    version: Option<&str>,
) -> CliResult<Outcome> {
    let name = name.unwrap_or(engine.default_name());
    names::check_db_name(name)
        .map_err(|e| CliError::usage(e.message, format!("a database name is {}", e.rule)))?;
    let mut doc = parse(text, file)?;

    let databases = doc
        .entry("databases")
        .or_insert_with(|| {
            let mut t = Table::new();
            t.set_implicit(true);
            Item::Table(t)
        })
        .as_table_like_mut()
        .ok_or_else(|| {
            CliError::usage(
                format!("`databases` in {file} is not a table"),
                "make it `[databases.<name>]` tables",
            )
        })?;

    if let Some(existing) = databases.get(name).and_then(Item::as_table_like) {
        return match engine_of(existing) {
            Some(e) if e == engine.as_str() => Ok(Outcome::Unchanged(format!(
                "{file} already has the {} database `{name}`: nothing to do",
                engine.as_str()
            ))),
            other => Err(CliError::usage(
                format!(
                    "{file} already has a database named `{name}` ({})",
                    other.map_or("with no engine".to_owned(), |o| format!("a {o} database"))
                ),
                format!("name this one: `faas {} add <NAME>`", engine.as_str()),
            )),
        };
    }

    let mut table = Table::new();
    table.insert("engine", value(engine.as_str()));
    if let Some(version) = version {
        table.insert("version", value(version));
    }
    databases.insert(name, Item::Table(table));
    place_before_environments(&mut doc, name);
    // `databases = { … }` written inline: re-space it, or the old last entry keeps its padding.
    if let Some(inline) = doc.get_mut("databases").and_then(Item::as_inline_table_mut) {
        inline.fmt();
    }

    let env_var = format!("{}_URL", name.to_ascii_uppercase());
    check_result(
        doc.to_string(),
        file,
        format!(
            "{} database `{name}` (injected as {env_var})",
            engine.as_str()
        ),
    )
}

/// New tables go at the end; when `[environments.*]` tables close the file, move the new
/// database table above them so the file still reads base first, overrides last.
fn place_before_environments(doc: &mut DocumentMut, name: &str) {
    let mut env_positions: Vec<isize> = Vec::new();
    if let Some(envs) = doc.get("environments").and_then(Item::as_table) {
        collect_positions(envs, &mut env_positions);
    }
    let Some(first_env) = env_positions.into_iter().min() else {
        return;
    };
    let root = doc.as_table_mut();
    shift_positions(root, first_env);
    if let Some(table) = root
        .get_mut("databases")
        .and_then(Item::as_table_mut)
        .and_then(|d| d.get_mut(name))
        .and_then(Item::as_table_mut)
    {
        table.set_position(Some(first_env));
    }
}

pub(crate) fn collect_positions(table: &Table, out: &mut Vec<isize>) {
    if let Some(p) = table.position()
        && !table.is_implicit()
    {
        out.push(p);
    }
    for (_, item) in table.iter() {
        if let Some(t) = item.as_table() {
            collect_positions(t, out);
        }
    }
}

pub(crate) fn shift_positions(table: &mut Table, from: isize) {
    if let Some(p) = table.position()
        && p >= from
    {
        table.set_position(Some(p + 1));
    }
    for (_, item) in table.iter_mut() {
        if let Some(t) = item.as_table_mut() {
            shift_positions(t, from);
        }
    }
}

/// Removes a database of `engine`: the one named, or the only one of that engine.
pub fn remove_database(
    text: &str,
    file: &str,
    engine: Engine,
    name: Option<&str>,
) -> CliResult<Outcome> {
    let mut doc = parse(text, file)?;
    let Some(databases) = doc.get_mut("databases").and_then(Item::as_table_like_mut) else {
        return Ok(Outcome::Unchanged(format!(
            "{file} has no databases: nothing to remove"
        )));
    };
    let of_engine: Vec<String> = databases
        .iter()
        .filter(|(_, item)| item.as_table_like().and_then(engine_of) == Some(engine.as_str()))
        .map(|(k, _)| k.to_owned())
        .collect();
    let name = match name {
        Some(n) => n.to_owned(),
        None => match of_engine.as_slice() {
            [] => {
                return Ok(Outcome::Unchanged(format!(
                    "{file} has no {} database: nothing to remove",
                    engine.as_str()
                )));
            }
            [only] => only.clone(),
            several => {
                return Err(CliError::usage(
                    format!(
                        "{file} has {} {} databases: {}",
                        several.len(),
                        engine.as_str(),
                        several.join(", ")
                    ),
                    format!(
                        "name the one to remove: `faas {} remove <NAME>`",
                        engine.as_str()
                    ),
                ));
            }
        },
    };
    match databases.get(&name).and_then(Item::as_table_like) {
        None => {
            return Ok(Outcome::Unchanged(format!(
                "{file} has no database named `{name}`: nothing to remove"
            )));
        }
        Some(t) if engine_of(t) != Some(engine.as_str()) => {
            return Err(CliError::usage(
                format!(
                    "`{name}` in {file} is not a {} database ({})",
                    engine.as_str(),
                    engine_of(t).unwrap_or("it has no engine")
                ),
                format!(
                    "remove it with `faas {} remove {name}`",
                    engine_of(t).unwrap_or("<engine>")
                ),
            ));
        }
        Some(_) => {}
    }
    databases.remove(&name);
    if databases.is_empty() {
        doc.remove("databases");
    }
    check_result(
        doc.to_string(),
        file,
        format!("{} database `{name}`", engine.as_str()),
    )
}
