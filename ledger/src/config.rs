//! The ledger's types, from configuration rather than code: account types (key attributes,
//! auxiliary attributes, the subsets a query may group by), lock types and state types, and the
//! aggregation interval. The platform's defaults are embedded; an override file adds types and
//! replaces them by name. A bad file is reported like a bad app.toml: every problem at once,
//! with file:line:column, what was expected and a hint.

use std::collections::BTreeMap;
use std::ops::Range;

use faas_spec::{Diagnostic, Report};
use toml_edit::{Item, TableLike};

/// The embedded defaults (ledger/src/defaults.toml).
pub const DEFAULTS: &str = include_str!("defaults.toml");

/// An account type: what identifies an account, and how its events may be dimensioned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountType {
    /// Attributes every account of this type is identified by (e.g. tenant, currency).
    pub key: Vec<String>,
    /// Attributes an event may carry beside them (e.g. service, env, resource, day).
    pub aux: Vec<String>,
    /// The subsets of `aux` a query may group by, each in `aux` order.
    pub group_by: Vec<Vec<String>>,
}

impl AccountType {
    /// The allowed grouping equal to `attributes` as a set, in `aux` order.
    pub fn grouping(&self, attributes: &[String]) -> Option<&[String]> {
        if attributes.is_empty() {
            return Some(&[]);
        }
        self.group_by
            .iter()
            .find(|g| g.len() == attributes.len() && attributes.iter().all(|a| g.contains(a)))
            .map(Vec::as_slice)
    }
}

/// A lock or state type: the attributes that identify one entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityType {
    pub key: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerConfig {
    pub accounts: BTreeMap<String, AccountType>,
    pub locks: BTreeMap<String, EntityType>,
    pub states: BTreeMap<String, EntityType>,
    /// Seconds between balance snapshots; divides a day, so boundaries fall on UTC midnights.
    pub interval_s: i64,
    /// PostgreSQL shards and the placement hashes each owns; empty: the embedded SQLite file.
    pub shards: Vec<crate::placement::ShardSpec>,
}

impl LedgerConfig {
    /// The embedded defaults alone.
    pub fn defaults() -> Self {
        match Self::parse("defaults.toml", DEFAULTS, None) {
            Ok(c) => c,
            // The defaults are checked by a test; an invalid one is a bug of this build.
            Err(report) => panic!("the embedded ledger defaults are invalid:\n{report}"),
        }
    }

    /// The defaults with `text` (the override file `file_name`) over them.
    pub fn with_overrides(file_name: &str, text: &str) -> Result<Self, Report> {
        Self::parse(file_name, text, Some(Self::defaults()))
    }

    fn parse(file_name: &str, text: &str, base: Option<Self>) -> Result<Self, Report> {
        let report = |diagnostics| Report {
            file_name: file_name.to_owned(),
            source: text.to_owned(),
            diagnostics,
        };
        // `Document` keeps every item's span (a `DocumentMut` would drop them).
        let doc = toml_edit::Document::parse(text).map_err(|e| {
            report(vec![
                Diagnostic::new(
                    "toml-syntax",
                    e.span().unwrap_or(0..0),
                    format!("{file_name} is not valid TOML"),
                )
                .label(e.message().lines().next().unwrap_or("here").to_owned())
                .help("see https://toml.io for the syntax"),
            ])
        })?;
        let mut out = Vec::new();
        let mut config = base.unwrap_or(LedgerConfig {
            accounts: BTreeMap::new(),
            locks: BTreeMap::new(),
            states: BTreeMap::new(),
            interval_s: 86_400,
            shards: Vec::new(),
        });
        let root = doc.as_table();
        for (key, item) in root.iter() {
            let span = key_span(root, key, item);
            match key {
                "accounts" => each_type(item, "accounts", &mut out, |name, t, span, out| {
                    if let Some(a) = account_type(name, t, span, out) {
                        config.accounts.insert(name.to_owned(), a);
                    }
                }),
                "locks" | "states" => {
                    let section = key.to_owned();
                    each_type(item, key, &mut out, |name, t, span, out| {
                        if let Some(e) = entity_type(&section, name, t, span, out) {
                            if section == "locks" {
                                config.locks.insert(name.to_owned(), e);
                            } else {
                                config.states.insert(name.to_owned(), e);
                            }
                        }
                    })
                }
                "aggregation" => {
                    if let Some(s) = aggregation(item, span, &mut out) {
                        config.interval_s = s;
                    }
                }
                "storage" => {
                    let shards = crate::placement::parse(item, span, &mut out);
                    if !shards.is_empty() {
                        config.shards = shards;
                    }
                }
                other => out.push(unknown(
                    other,
                    span,
                    "the ledger's configuration",
                    &["accounts", "locks", "states", "aggregation", "storage"],
                )),
            }
        }
        if out.is_empty() {
            Ok(config)
        } else {
            Err(report(out))
        }
    }
}

fn key_span(table: &dyn TableLike, key: &str, item: &Item) -> Range<usize> {
    table
        .get_key_value(key)
        .and_then(|(k, _)| k.span())
        .or_else(|| item.span())
        .unwrap_or(0..0)
}

pub(crate) fn unknown(key: &str, span: Range<usize>, in_what: &str, known: &[&str]) -> Diagnostic {
    let nearest = known
        .iter()
        .min_by_key(|k| strsim::damerau_levenshtein(key, k))
        .filter(|k| strsim::damerau_levenshtein(key, k) <= 2);
    Diagnostic::new(
        "unknown-key",
        span,
        format!("`{key}` is not a key of {in_what}"),
    )
    .label("unknown key")
    .expected(format!(
        "one of {}",
        known
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .help_opt(nearest.map(|n| format!("did you mean `{n}`?")))
}

fn is_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.len() <= 40
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

const NAME_RULE: &str =
    "1 to 40 characters: lowercase letters, digits and `_`, starting with a letter";

/// Calls `f` for each `[section.NAME]` table.
fn each_type(
    item: &Item,
    section: &str,
    out: &mut Vec<Diagnostic>,
    mut f: impl FnMut(&str, &dyn TableLike, Range<usize>, &mut Vec<Diagnostic>),
) {
    let Some(types) = item.as_table_like() else {
        out.push(
            Diagnostic::new(
                "invalid-type",
                item.span().unwrap_or(0..0),
                format!("`{section}` must be a table of types"),
            )
            .label("not a table")
            .help(format!("write each type as `[{section}.NAME]`")),
        );
        return;
    };
    for (name, t) in types.iter() {
        let span = key_span(types, name, t);
        if !is_name(name) {
            out.push(
                Diagnostic::new(
                    "invalid-name",
                    span.clone(),
                    format!("`{name}` is not a valid type name"),
                )
                .label("invalid name")
                .expected(NAME_RULE),
            );
            continue;
        }
        match t.as_table_like() {
            Some(table) => f(name, table, span, out),
            None => out.push(
                Diagnostic::new(
                    "invalid-type",
                    t.span().unwrap_or(span),
                    format!("`{section}.{name}` must be a table"),
                )
                .label("not a table")
                .help(format!(
                    "write it as `[{section}.{name}]` with its keys below"
                )),
            ),
        }
    }
}

/// A list of attribute names at `table[key]`; None (and a diagnostic) when it is not one.
fn names(
    table: &dyn TableLike,
    key: &str,
    what: &str,
    out: &mut Vec<Diagnostic>,
) -> Option<(Vec<String>, Range<usize>)> {
    let item = table.get(key)?;
    let span = item.span().unwrap_or(0..0);
    let Some(array) = item.as_array() else {
        out.push(
            Diagnostic::new(
                "invalid-type",
                span,
                format!("`{what}` must be a list of attribute names"),
            )
            .label("not a list")
            .help(format!("for example `{key} = [\"tenant\", \"currency\"]`")),
        );
        return None;
    };
    let mut list: Vec<String> = Vec::new();
    for value in array.iter() {
        let vspan = value.span().unwrap_or(span.clone());
        match value.as_str() {
            Some(n) if !is_name(n) => out.push(
                Diagnostic::new(
                    "invalid-name",
                    vspan,
                    format!("`{n}` is not a valid attribute name"),
                )
                .label("invalid name")
                .expected(NAME_RULE),
            ),
            Some(n) if list.iter().any(|l| l == n) => out.push(
                Diagnostic::new(
                    "duplicate-attribute",
                    vspan,
                    format!("`{n}` is listed twice in `{what}`"),
                )
                .label("again")
                .help("list each attribute once"),
            ),
            Some(n) => list.push(n.to_owned()),
            None => out.push(
                Diagnostic::new(
                    "invalid-type",
                    vspan,
                    format!("`{what}` holds attribute names, and this is not a string"),
                )
                .label("not a string"),
            ),
        }
    }
    Some((list, span))
}

fn account_type(
    name: &str,
    t: &dyn TableLike,
    span: Range<usize>,
    out: &mut Vec<Diagnostic>,
) -> Option<AccountType> {
    let before = out.len();
    for (k, item) in t.iter() {
        if !["key", "aux", "group_by"].contains(&k) {
            out.push(unknown(
                k,
                key_span(t, k, item),
                &format!("account type `{name}`"),
                &["key", "aux", "group_by"],
            ));
        }
    }
    let key = match names(t, "key", &format!("accounts.{name}.key"), out) {
        Some((key, kspan)) if key.is_empty() => {
            out.push(
                Diagnostic::new("missing-key", kspan, format!("account type `{name}` has no key attribute"))
                    .label("empty")
                    .help("an account is identified by its key attributes, e.g. `key = [\"tenant\", \"currency\"]`"),
            );
            Vec::new()
        }
        Some((key, _)) => key,
        None => {
            if t.get("key").is_none() {
                out.push(
                    Diagnostic::new("missing-key", span.clone(), format!("account type `{name}` has no `key`"))
                        .label("this type")
                        .help("add `key = [\"tenant\", \"currency\"]`: the attributes an account is identified by"),
                );
            }
            Vec::new()
        }
    };
    let aux = names(t, "aux", &format!("accounts.{name}.aux"), out)
        .map(|(aux, aspan)| {
            for a in aux.iter().filter(|a| key.contains(a)) {
                out.push(
                    Diagnostic::new("duplicate-attribute", aspan.clone(), format!("`{a}` is both a key and an auxiliary attribute of `{name}`"))
                        .label("in both lists")
                        .help("an attribute identifies the account (key) or dimensions its events (aux), not both"),
                );
            }
            aux
        })
        .unwrap_or_default();
    let mut group_by = Vec::new();
    if let Some(item) = t.get("group_by") {
        let gspan = item.span().unwrap_or(span.clone());
        match item.as_array() {
            None => out.push(
                Diagnostic::new(
                    "invalid-type",
                    gspan,
                    format!("`accounts.{name}.group_by` must be a list of lists"),
                )
                .label("not a list")
                .help("for example `group_by = [[\"service\"], [\"service\", \"env\"]]`"),
            ),
            Some(array) => {
                for subset in array.iter() {
                    let sspan = subset.span().unwrap_or(gspan.clone());
                    let Some(list) = subset.as_array() else {
                        out.push(
                            Diagnostic::new(
                                "invalid-type",
                                sspan,
                                "each grouping is a list of auxiliary attributes",
                            )
                            .label("not a list")
                            .help("write it as `[\"service\"]`"),
                        );
                        continue;
                    };
                    let mut g: Vec<String> = Vec::new();
                    for a in list.iter() {
                        match a.as_str() {
                            Some(a) if aux.iter().any(|x| x == a) => {
                                if !g.iter().any(|x| x == a) {
                                    g.push(a.to_owned());
                                }
                            }
                            Some(a) => out.push(
                                Diagnostic::new("unknown-attribute", a_span(a, list, &sspan), format!("`{a}` is not an auxiliary attribute of `{name}`"))
                                    .label("not in `aux`")
                                    .expected(format!("one of {}", aux.iter().map(|x| format!("`{x}`")).collect::<Vec<_>>().join(", ")))
                                    .help("a query groups by auxiliary attributes only; add it to `aux` first"),
                            ),
                            None => out.push(
                                Diagnostic::new("invalid-type", sspan.clone(), "a grouping holds attribute names")
                                    .label("not a string"),
                            ),
                        }
                    }
                    if g.is_empty() {
                        continue;
                    }
                    // In `aux` order, so that a grouping is one thing however it is written.
                    g.sort_by_key(|a| aux.iter().position(|x| x == a));
                    if !group_by.contains(&g) {
                        group_by.push(g);
                    }
                }
            }
        }
    }
    (out.len() == before).then_some(AccountType { key, aux, group_by })
}

fn a_span(a: &str, list: &toml_edit::Array, fallback: &Range<usize>) -> Range<usize> {
    list.iter()
        .find(|v| v.as_str() == Some(a))
        .and_then(|v| v.span())
        .unwrap_or_else(|| fallback.clone())
}

fn entity_type(
    section: &str,
    name: &str,
    t: &dyn TableLike,
    span: Range<usize>,
    out: &mut Vec<Diagnostic>,
) -> Option<EntityType> {
    let before = out.len();
    for (k, item) in t.iter() {
        if k != "key" {
            out.push(unknown(
                k,
                key_span(t, k, item),
                &format!("{section} type `{name}`"),
                &["key"],
            ));
        }
    }
    let key = match names(t, "key", &format!("{section}.{name}.key"), out) {
        Some((key, _)) if !key.is_empty() => key,
        Some((_, kspan)) => {
            out.push(
                Diagnostic::new(
                    "missing-key",
                    kspan,
                    format!("{section} type `{name}` has no key attribute"),
                )
                .label("empty")
                .help("add the attributes that identify one, e.g. `key = [\"tenant\"]`"),
            );
            Vec::new()
        }
        None => {
            if t.get("key").is_none() {
                out.push(
                    Diagnostic::new(
                        "missing-key",
                        span,
                        format!("{section} type `{name}` has no `key`"),
                    )
                    .label("this type")
                    .help("add `key = [\"tenant\"]`: the attributes that identify one"),
                );
            }
            Vec::new()
        }
    };
    (out.len() == before).then_some(EntityType { key })
}

fn aggregation(item: &Item, span: Range<usize>, out: &mut Vec<Diagnostic>) -> Option<i64> {
    let Some(t) = item.as_table_like() else {
        out.push(
            Diagnostic::new("invalid-type", span, "`aggregation` must be a table")
                .label("not a table")
                .help("write it as `[aggregation]` with `interval = \"1d\"`"),
        );
        return None;
    };
    let mut interval = None;
    for (k, v) in t.iter() {
        let kspan = key_span(t, k, v);
        if k != "interval" {
            out.push(unknown(k, kspan, "`aggregation`", &["interval"]));
            continue;
        }
        let vspan = v.span().unwrap_or(kspan);
        let parsed = v
            .as_str()
            .and_then(|s| s.parse::<faas_spec::units::Duration>().ok())
            .map(|d| d.as_std().as_secs() as i64);
        match parsed {
            Some(s) if s > 0 && 86_400 % s == 0 => interval = Some(s),
            _ => out.push(
                Diagnostic::new("invalid-interval", vspan, "`aggregation.interval` must be a duration that divides a day")
                    .label("not such a duration")
                    .expected("a duration such as `1d`, `1h` or `15m`, so that boundaries fall on UTC midnights")
                    .help("write `interval = \"1d\"`"),
            ),
        }
    }
    interval
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_defaults_are_valid() {
        let c = LedgerConfig::defaults();
        let usage = &c.accounts["usage"];
        assert_eq!(usage.key, ["tenant", "currency"]);
        assert!(usage.grouping(&["env".into(), "service".into()]).is_some());
        assert_eq!(
            usage.grouping(&["env".into(), "service".into()]).unwrap(),
            ["service", "env"],
            "a grouping is in aux order"
        );
        assert!(usage.grouping(&["env".into(), "day".into()]).is_none());
        assert_eq!(c.interval_s, 86_400);
    }

    #[test]
    fn an_override_adds_and_replaces_types() {
        let c = LedgerConfig::with_overrides(
            "ledger.toml",
            "[accounts.usage]\nkey = [\"tenant\"]\n[accounts.credits]\nkey = [\"tenant\"]\naux = [\"grant\"]\n",
        )
        .unwrap();
        assert_eq!(c.accounts["usage"].key, ["tenant"]);
        assert!(c.accounts.contains_key("credits"));
        assert!(c.accounts.contains_key("receivable"));
    }
}
