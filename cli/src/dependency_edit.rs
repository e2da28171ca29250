//! `[[dependencies]]` edits of app.toml that keep the user's comments and layout, checked as a
//! whole manifest before anything is written.

use faas_spec::names;
use toml_edit::{ArrayOfTables, Item, Table, value};

use crate::error::{CliError, CliResult};
use crate::manifest_edit::{Outcome, check_result, collect_positions, parse, shift_positions};

fn check_name(name: &str) -> CliResult<()> {
    names::check_service_name(name)
        .map_err(|e| CliError::usage(e.message, format!("a service name is {}", e.rule)))
}

fn service_of(t: &Table) -> Option<&str> {
    t.get("service").and_then(Item::as_str)
}

/// Adds `[[dependencies]] service = NAME` (and its `fallback`).
pub fn add(text: &str, file: &str, name: &str, fallback: Option<&str>) -> CliResult<Outcome> {
    check_name(name)?;
    if let Some(f) = fallback {
        names::check_env_name(f).map_err(|e| {
            CliError::usage(e.message, format!("an environment name is {}", e.rule))
        })?;
    }
    let mut doc = parse(text, file)?;
    let first_env = {
        let mut positions = Vec::new();
        if let Some(envs) = doc.get("environments").and_then(Item::as_table) {
            collect_positions(envs, &mut positions);
        }
        positions.into_iter().min()
    };
    let list = doc
        .entry("dependencies")
        .or_insert_with(|| Item::ArrayOfTables(ArrayOfTables::new()))
        .as_array_of_tables_mut()
        .ok_or_else(|| {
            CliError::usage(
                format!("`dependencies` in {file} is not a list of `[[dependencies]]` tables"),
                "write each as a `[[dependencies]]` table with `service = \"NAME\"`",
            )
        })?;
    if let Some(existing) = list.iter_mut().find(|t| service_of(t) == Some(name)) {
        let current = existing
            .get("fallback")
            .and_then(Item::as_str)
            .map(str::to_owned);
        if current.as_deref() == fallback || fallback.is_none() {
            return Ok(Outcome::Unchanged(format!(
                "{file} already depends on `{name}`: nothing to do"
            )));
        }
        existing.insert("fallback", value(fallback.unwrap_or_default()));
    } else {
        let mut table = Table::new();
        table.insert("service", value(name));
        if let Some(f) = fallback {
            table.insert("fallback", value(f));
        }
        list.push(table);
    }
    // Base tables before the `[environments.*]` overrides, as the file reads.
    if let Some(first_env) = first_env {
        shift_positions(doc.as_table_mut(), first_env);
        if let Some(t) = doc
            .get_mut("dependencies")
            .and_then(Item::as_array_of_tables_mut)
            .and_then(|l| l.iter_mut().find(|t| service_of(t) == Some(name)))
        {
            t.set_position(Some(first_env));
        }
    }
    let var = format!("{}_URL", name.to_ascii_uppercase().replace('-', "_"));
    let how = fallback
        .map(|f| format!(", falling back to its `{f}`"))
        .unwrap_or_default();
    check_result(
        doc.to_string(),
        file,
        format!("dependency on `{name}` (its address injected as {var}{how})"),
    )
}

/// Removes the dependency on `name`.
pub fn remove(text: &str, file: &str, name: &str) -> CliResult<Outcome> {
    check_name(name)?;
    let mut doc = parse(text, file)?;
    let Some(list) = doc
        .get_mut("dependencies")
        .and_then(Item::as_array_of_tables_mut)
    else {
        return Ok(Outcome::Unchanged(format!(
            "{file} has no dependencies: nothing to remove"
        )));
    };
    let Some(at) = list.iter().position(|t| service_of(t) == Some(name)) else {
        return Ok(Outcome::Unchanged(format!(
            "{file} does not depend on `{name}`: nothing to remove"
        )));
    };
    list.remove(at);
    if list.is_empty() {
        doc.remove("dependencies");
    }
    check_result(doc.to_string(), file, format!("dependency on `{name}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "# my service\nname = \"web\"\nowner = \"a@example.com\"\n\n[run]\nport = 8080 # the port\n\n[environments.staging]\nscale = { replicas = 1 }\n";

    fn changed(o: Outcome) -> String {
        match o {
            Outcome::Changed { text, .. } => text,
            Outcome::Unchanged(why) => panic!("unchanged: {why}"),
        }
    }

    #[test]
    fn add_keeps_comments_goes_before_the_environments_and_is_idempotent() {
        let text = changed(add(BASE, "app.toml", "billing", Some("prod")).unwrap());
        assert!(text.starts_with("# my service\n"), "{text}");
        assert!(text.contains("port = 8080 # the port"), "{text}");
        let deps = text.find("[[dependencies]]").unwrap();
        assert!(
            deps < text.find("[environments.staging]").unwrap(),
            "{text}"
        );
        assert!(
            text.contains("service = \"billing\"\nfallback = \"prod\""),
            "{text}"
        );
        assert!(matches!(
            add(&text, "app.toml", "billing", None).unwrap(),
            Outcome::Unchanged(_)
        ));
        let two = changed(add(&text, "app.toml", "users", None).unwrap());
        assert_eq!(two.matches("[[dependencies]]").count(), 2, "{two}");
        let back = changed(remove(&two, "app.toml", "billing").unwrap());
        let none = changed(remove(&back, "app.toml", "users").unwrap());
        assert!(!none.contains("dependencies"), "{none}");
        assert!(matches!(
            remove(&none, "app.toml", "users").unwrap(),
            Outcome::Unchanged(_)
        ));
    }

    #[test]
    fn bad_names_and_a_dependency_on_itself_are_refused() {
        assert!(add(BASE, "app.toml", "Not A Name", None).is_err());
        assert!(add(BASE, "app.toml", "billing", Some("Prod!")).is_err());
        assert!(
            add(BASE, "app.toml", "web", None).is_err(),
            "the manifest check refuses it"
        );
    }
}
