//! Rules that span several keys: a canary or blue-green deploy needs a health check, `image`
//! excludes `dockerfile`, canary steps climb to 100, names are unique. Each rule runs on the base
//! manifest and on every environment as it overrides it, and points at the key that decides.

use std::ops::Range;

use toml_edit::{Item, Table, TableLike, Value};

use crate::diagnostic::Diagnostic;

/// The base manifest seen through one environment's overrides.
pub(crate) struct Layered<'a> {
    pub base: &'a Table,
    pub env: Option<(&'a str, &'a dyn TableLike)>,
}

fn lookup<'a>(table: &'a dyn TableLike, path: &[&str]) -> Option<&'a Item> {
    let (first, rest) = path.split_first()?;
    let item = table.get(first)?;
    if rest.is_empty() {
        Some(item)
    } else {
        lookup(item.as_table_like()?, rest)
    }
}

impl<'a> Layered<'a> {
    fn get(&self, path: &[&str]) -> Option<&'a Item> {
        if let Some((_, env)) = self.env
            && let Some(item) = lookup(env, path)
        {
            return Some(item);
        }
        lookup(self.base, path)
    }

    /// Whether the environment itself sets `path` (so the base's check already covers it otherwise).
    fn env_sets(&self, path: &[&str]) -> bool {
        self.env.is_some_and(|(_, env)| lookup(env, path).is_some())
    }

    fn str_at(&self, path: &[&str]) -> Option<(&'a str, Range<usize>)> {
        let item = self.get(path)?;
        Some((item.as_str()?, item.span().unwrap_or(0..0)))
    }

    fn in_env(&self) -> String {
        self.env
            .map(|(name, _)| format!(" in environment `{name}`"))
            .unwrap_or_default()
    }
}

pub(crate) fn run(layer: &Layered<'_>, service_name: Option<&str>, out: &mut Vec<Diagnostic>) {
    strategy_needs_health(layer, out);
    build_image_or_dockerfile(layer, out);
    canary_steps(layer, out);
    canary_wait(layer, out);
    paths_are_absolute(layer, out);
    env_var_names(layer, &["run", "env"], "environment variable", out);
    env_var_names(layer, &["build", "args"], "build argument", out);
    unique_cron_names(layer, out);
    dependencies(layer, service_name, out);
}

fn strategy_needs_health(layer: &Layered<'_>, out: &mut Vec<Diagnostic>) {
    let Some((strategy, span)) = layer.str_at(&["deploy", "strategy"]) else {
        return;
    };
    if !matches!(strategy, "canary" | "bluegreen") {
        return;
    }
    if layer.env.is_some()
        && !layer.env_sets(&["deploy", "strategy"])
        && !layer.env_sets(&["health"])
    {
        return;
    }
    if layer.get(&["health", "path"]).is_some() {
        return;
    }
    let why = if strategy == "canary" {
        "a canary's new instances must answer a health check before they get traffic, and the router judges them by it"
    } else {
        "the switch to the new set waits until every new instance answers its health check"
    };
    out.push(
        Diagnostic::new(
            "needs-health-check",
            span,
            format!("`strategy = \"{strategy}\"`{} needs a health check", layer.in_env()),
        )
        .label("this strategy needs `health.path`")
        .expected(format!("a `[health]` table with a `path`: {why}"))
        .help("add `[health]` with `path = \"/_info\"` (a path that answers 200 when the service is ready)"),
    );
}

fn build_image_or_dockerfile(layer: &Layered<'_>, out: &mut Vec<Diagnostic>) {
    let (Some(image), Some(_)) = (
        layer.get(&["build", "image"]),
        layer.get(&["build", "dockerfile"]),
    ) else {
        return;
    };
    if layer.env.is_some() && !layer.env_sets(&["build"]) {
        return;
    }
    out.push(
        Diagnostic::new(
            "build-conflict",
            image.span().unwrap_or(0..0),
            format!("`build.image` and `build.dockerfile` exclude each other{}", layer.in_env()),
        )
        .label("a prebuilt image is not built from a Dockerfile")
        .help("remove `dockerfile` to deploy the prebuilt image, or `image` to build from the Dockerfile"),
    );
}

fn canary_steps(layer: &Layered<'_>, out: &mut Vec<Diagnostic>) {
    if layer.env.is_some() && !layer.env_sets(&["deploy", "canary", "steps"]) {
        return;
    }
    let Some(item) = layer.get(&["deploy", "canary", "steps"]) else {
        return;
    };
    let Some(array) = item.as_array() else { return };
    let span = item.span().unwrap_or(0..0);
    let steps: Vec<i64> = array.iter().filter_map(Value::as_integer).collect();
    if steps.len() != array.len() || steps.is_empty() {
        return;
    }
    let problem = if let Some(bad) = steps.iter().find(|s| !(1..=100).contains(*s)) {
        Some(format!("step {bad} is not a percentage from 1 to 100"))
    } else if steps.windows(2).any(|w| w[0] >= w[1]) {
        Some("steps must increase".to_owned())
    } else if steps.last() != Some(&100) {
        Some("the last step must be 100, or the canary never takes all the traffic".to_owned())
    } else {
        None
    };
    if let Some(problem) = problem {
        out.push(
            Diagnostic::new(
                "invalid-steps",
                span,
                format!("`deploy.canary.steps`: {problem}"),
            )
            .label("invalid canary steps")
            .expected("increasing percentages of traffic from 1 to 100, ending at 100")
            .help("for example `steps = [10, 50, 100]`"),
        );
    }
}

/// `deploy.canary.max_wait` is the whole wait of a step, so it cannot be shorter than the
/// step's own `interval`.
fn canary_wait(layer: &Layered<'_>, out: &mut Vec<Diagnostic>) {
    let wait_path = ["deploy", "canary", "max_wait"];
    let interval_path = ["deploy", "canary", "interval"];
    if layer.env.is_some() && !layer.env_sets(&wait_path) && !layer.env_sets(&interval_path) {
        return;
    }
    let Some((wait, span)) = layer.str_at(&wait_path) else {
        return;
    };
    let defaults = crate::manifest::Canary::default();
    let Ok(wait) = wait.parse::<crate::units::Duration>() else {
        return;
    };
    let interval = match layer.str_at(&interval_path) {
        Some((text, _)) => match text.parse::<crate::units::Duration>() {
            Ok(d) => d,
            Err(_) => return,
        },
        None => defaults.interval,
    };
    if wait.as_std() < interval.as_std() {
        out.push(
            Diagnostic::new(
                "invalid-max-wait",
                span,
                format!(
                    "`deploy.canary.max_wait = \"{wait}\"` is shorter than the step's `interval` ({interval}){}",
                    layer.in_env()
                ),
            )
            .label("shorter than one interval")
            .expected("a duration at least as long as `deploy.canary.interval`: the whole time a step may wait for `min_requests`")
            .help(format!("for example `max_wait = \"{}\"` (ten intervals)", crate::units::Duration::from_secs(interval.as_std().as_secs().max(1) * 10))),
        );
    }
}

fn paths_are_absolute(layer: &Layered<'_>, out: &mut Vec<Diagnostic>) {
    for path in [
        ["health", "path"].as_slice(),
        ["deploy", "bluegreen", "smoke"].as_slice(),
        ["metrics", "path"].as_slice(),
    ] {
        if layer.env.is_some() && !layer.env_sets(path) {
            continue;
        }
        if let Some((value, span)) = layer.str_at(path)
            && !value.starts_with('/')
        {
            out.push(
                Diagnostic::new(
                    "invalid-path",
                    span,
                    format!(
                        "`{}` must be an HTTP path starting with `/`",
                        path.join(".")
                    ),
                )
                .label("not an absolute path")
                .help(format!("write `\"/{}\"`", value.trim_start_matches('/'))),
            );
        }
    }
}

fn env_var_names(layer: &Layered<'_>, path: &[&str], what: &str, out: &mut Vec<Diagnostic>) {
    if layer.env.is_some() && !layer.env_sets(path) {
        return;
    }
    let Some(table) = layer.get(path).and_then(Item::as_table_like) else {
        return;
    };
    for (key, _) in table.iter() {
        let valid = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            let span = table
                .get_key_value(key)
                .and_then(|(k, _)| k.span())
                .unwrap_or(0..0);
            out.push(
                Diagnostic::new(
                    "invalid-name",
                    span,
                    format!(
                        "`{key}` is not a valid {what} name in `[{}]`",
                        path.join(".")
                    ),
                )
                .label("invalid name")
                .expected("letters, digits and `_`, not starting with a digit")
                .help(format!(
                    "rename it `{}`",
                    key.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
                )),
            );
        }
    }
}

fn names_of<'a>(layer: &Layered<'a>, key: &str, field: &str) -> Vec<(&'a str, Range<usize>)> {
    let mut names = Vec::new();
    match layer.get(&[key]) {
        Some(Item::ArrayOfTables(tables)) => {
            for t in tables.iter() {
                if let Some(item) = t.get(field)
                    && let Some(s) = item.as_str()
                {
                    names.push((s, item.span().unwrap_or(0..0)));
                }
            }
        }
        Some(Item::Value(Value::Array(array))) => {
            for v in array.iter() {
                if let Some(item) = v.as_inline_table().and_then(|t| t.get(field))
                    && let Some(s) = item.as_str()
                {
                    names.push((s, item.span().unwrap_or(0..0)));
                }
            }
        }
        _ => {}
    }
    names
}

fn unique_cron_names(layer: &Layered<'_>, out: &mut Vec<Diagnostic>) {
    if layer.env.is_some() && !layer.env_sets(&["cron"]) {
        return;
    }
    let names = names_of(layer, "cron", "name");
    for (i, (name, span)) in names.iter().enumerate() {
        if names[..i].iter().any(|(n, _)| n == name) {
            out.push(
                Diagnostic::new(
                    "duplicate-name",
                    span.clone(),
                    format!("two cron jobs are named `{name}`"),
                )
                .label("used before")
                .help("give each `[[cron]]` job its own name"),
            );
        }
    }
}

fn dependencies(layer: &Layered<'_>, service_name: Option<&str>, out: &mut Vec<Diagnostic>) {
    if layer.env.is_some() && !layer.env_sets(&["dependencies"]) {
        return;
    }
    let names = names_of(layer, "dependencies", "service");
    for (i, (name, span)) in names.iter().enumerate() {
        if Some(*name) == service_name {
            out.push(
                Diagnostic::new(
                    "self-dependency",
                    span.clone(),
                    format!("`{name}` depends on itself"),
                )
                .label("this is the service's own name")
                .help("remove this `[[dependencies]]` entry"),
            );
        } else if names[..i].iter().any(|(n, _)| n == name) {
            out.push(
                Diagnostic::new(
                    "duplicate-name",
                    span.clone(),
                    format!("`{name}` is listed twice in `dependencies`"),
                )
                .label("listed before")
                .help("remove one of the two entries"),
            );
        }
    }
}
