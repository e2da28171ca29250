//! Where an account, a lock or a state lives when the ledger is sharded: the SHA-1 of its type
//! and canonical key attributes, read as a number, falls in the hash range one shard owns. The
//! `[[storage.shards]]` tables of the ledger's configuration list each shard's connection URL
//! and the range it owns; together the ranges cover the whole hash space, without a gap or an
//! overlap.

use std::ops::Range;

use faas_spec::Diagnostic;
use sha1::{Digest, Sha1};
use toml_edit::{Item, TableLike};

/// One shard: its connection URL and the half-open range of placement hashes it owns
/// (`to` None: to the end of the space).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSpec {
    pub url: String,
    pub from: u64,
    pub to: Option<u64>,
}

impl ShardSpec {
    /// The one shard of a ledger given by a single URL: the whole space.
    pub fn whole(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            from: 0,
            to: None,
        }
    }

    pub fn owns(&self, hash: u64) -> bool {
        hash >= self.from && self.to.is_none_or(|to| hash < to)
    }
}

/// The placement hash of an entity: the first 8 bytes of SHA-1(type NUL canonical key).
pub fn hash(kind: &str, key: &str) -> u64 {
    let mut h = Sha1::new();
    h.update(kind.as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    u64::from_be_bytes(first)
}

/// A hash bound written as hex digits, the most significant first (`"8"` and `"80"` are both
/// half of the space).
fn bound(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 16 || !text.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let padded = format!("{text:0<16}");
    u64::from_str_radix(&padded, 16).ok()
}

fn span_of(t: &dyn TableLike, key: &str, fallback: &Range<usize>) -> Range<usize> {
    t.get(key)
        .and_then(Item::span)
        .unwrap_or_else(|| fallback.clone())
}

/// Reads `[storage]`: `shards`, each `{ url, from, to }`, ranges covering the space.
pub(crate) fn parse(item: &Item, span: Range<usize>, out: &mut Vec<Diagnostic>) -> Vec<ShardSpec> {
    let Some(storage) = item.as_table_like() else {
        out.push(
            Diagnostic::new("invalid-type", span, "`storage` must be a table")
                .label("not a table")
                .help("write each shard as `[[storage.shards]]` with `url`, `from` and `to`"),
        );
        return Vec::new();
    };
    let mut specs = Vec::new();
    let mut broken = false;
    for (k, v) in storage.iter() {
        let kspan = span_of(storage, k, &span);
        if k != "shards" {
            out.push(crate::config::unknown(k, kspan, "`storage`", &["shards"]));
            continue;
        }
        let tables: Vec<(&dyn TableLike, Range<usize>)> =
            match (v.as_array_of_tables(), v.as_array()) {
                (Some(a), _) => a
                    .iter()
                    .map(|t| (t as &dyn TableLike, t.span().unwrap_or(kspan.clone())))
                    .collect(),
                (None, Some(a)) => a
                    .iter()
                    .filter_map(|v| {
                        v.as_inline_table()
                            .map(|t| (t as &dyn TableLike, v.span().unwrap_or(kspan.clone())))
                    })
                    .collect(),
                _ => {
                    out.push(
                        Diagnostic::new(
                            "invalid-type",
                            kspan,
                            "`storage.shards` must be a list of shards",
                        )
                        .label("not a list")
                        .help(
                            "write each shard as `[[storage.shards]]` with `url`, `from` and `to`",
                        ),
                    );
                    continue;
                }
            };
        for (t, tspan) in tables {
            match shard(t, &tspan, out) {
                Some(s) => specs.push((s, tspan)),
                None => broken = true,
            }
        }
    }
    // The coverage of a list with a broken shard would only repeat that shard's problem.
    if !broken {
        check_coverage(&mut specs, out);
    }
    specs.into_iter().map(|(s, _)| s).collect()
}

fn shard(t: &dyn TableLike, span: &Range<usize>, out: &mut Vec<Diagnostic>) -> Option<ShardSpec> {
    let before = out.len();
    for (k, v) in t.iter() {
        if !["url", "from", "to"].contains(&k) {
            out.push(crate::config::unknown(
                k,
                v.span().unwrap_or(span.clone()),
                "a shard",
                &["url", "from", "to"],
            ));
        }
    }
    let url = match t.get("url").and_then(Item::as_str) {
        Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => u.to_owned(),
        Some(_) => {
            out.push(
                Diagnostic::new(
                    "invalid-url",
                    span_of(t, "url", span),
                    "a shard's `url` must be a PostgreSQL connection URL",
                )
                .label("not postgres://")
                .expected("`postgres://USER@HOST:PORT/DATABASE`"),
            );
            String::new()
        }
        None => {
            out.push(
                Diagnostic::new("missing-key", span.clone(), "this shard has no `url`")
                    .label("this shard")
                    .help("add `url = \"postgres://USER@HOST:PORT/DATABASE\"`"),
            );
            String::new()
        }
    };
    let mut read = |key: &str, required: bool| -> Option<u64> {
        match t.get(key) {
            None if required => {
                out.push(
                    Diagnostic::new("missing-key", span.clone(), format!("this shard has no `{key}`"))
                        .label("this shard")
                        .help(format!("add `{key} = \"00\"`: the first hex digits of the SHA-1 placement hash it owns from")),
                );
                None
            }
            None => None,
            Some(v) => match v.as_str().and_then(bound) {
                Some(b) => Some(b),
                None => {
                    out.push(
                        Diagnostic::new("invalid-hash-bound", v.span().unwrap_or(span.clone()), format!("a shard's `{key}` must be hex digits of a SHA-1 hash"))
                            .label("not hex digits")
                            .expected("1 to 16 hex digits, the most significant first: `\"80\"` is half of the space"),
                    );
                    None
                }
            },
        }
    };
    let from = read("from", true);
    let to = read("to", false);
    if out.len() > before {
        return None;
    }
    let from = from?;
    if to.is_some_and(|to| to <= from) {
        out.push(
            Diagnostic::new(
                "invalid-hash-range",
                span_of(t, "to", span),
                "this shard's range ends before it starts",
            )
            .label("`to` is not above `from`")
            .help("`to` is the first hash the next shard owns"),
        );
        return None;
    }
    Some(ShardSpec { url, from, to })
}

/// The ranges, sorted, must start at 0, meet end to start and reach the end of the space.
fn check_coverage(specs: &mut [(ShardSpec, Range<usize>)], out: &mut Vec<Diagnostic>) {
    if specs.is_empty() {
        return;
    }
    specs.sort_by_key(|(s, _)| s.from);
    let mut expected = Some(0u64);
    for (s, span) in specs.iter() {
        match expected {
            None => {
                out.push(
                    Diagnostic::new(
                        "overlapping-shards",
                        span.clone(),
                        "this shard's range overlaps the shard that owns the end of the space",
                    )
                    .label("overlaps")
                    .help("each placement hash is owned by exactly one shard"),
                );
                return;
            }
            Some(e) if s.from != e => {
                let what = if s.from > e {
                    "leave a gap before"
                } else {
                    "overlap"
                };
                out.push(
                    Diagnostic::new(
                        if s.from > e { "gap-between-shards" } else { "overlapping-shards" },
                        span.clone(),
                        format!("the shard ranges {what} this shard (it starts at {:016x}, the previous range ends at {e:016x})", s.from),
                    )
                    .label(if s.from > e { "a gap before this shard" } else { "overlaps the previous shard" })
                    .help("each shard's `from` is the previous shard's `to`; the first starts at \"00\""),
                );
                return;
            }
            Some(_) => expected = s.to,
        }
    }
    if let (Some(e), Some((_, span))) = (expected, specs.last()) {
        out.push(
            Diagnostic::new(
                "gap-between-shards",
                span.clone(),
                format!("no shard owns the hashes from {e:016x} to the end of the space"),
            )
            .label("the last range ends here")
            .help("leave out `to` on the last shard: it owns the rest of the space"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_hex_prefixes() {
        assert_eq!(bound("8"), Some(1 << 63));
        assert_eq!(bound("80"), Some(1 << 63));
        assert_eq!(bound("00"), Some(0));
        assert_eq!(bound("g"), None);
        assert_eq!(bound(""), None);
    }

    #[test]
    fn placement_spreads_and_is_stable() {
        let a = hash("usage", r#"{"currency":"EUR","tenant":"a"}"#);
        assert_eq!(a, hash("usage", r#"{"currency":"EUR","tenant":"a"}"#));
        let upper = (0..100)
            .filter(|i| hash("usage", &format!(r#"{{"tenant":"t{i}"}}"#)) >= 1 << 63)
            .count();
        assert!(
            (25..75).contains(&upper),
            "{upper} of 100 in the upper half"
        );
    }
}
