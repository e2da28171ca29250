//! `faas ledger balance|turnovers|events|write` (admin): the platform's accounts ledger, the
//! one billing posts usage into. Amounts are integers in the account's minor unit.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use faas_spec::api::ledger::*;

use crate::cli::{LedgerAccountArgs, LedgerCommand};
use crate::error::{CliError, CliResult};
use crate::printer::Printer;
use crate::session;

pub fn run(printer: &Printer, context: Option<&str>, cmd: LedgerCommand) -> CliResult {
    match cmd {
        LedgerCommand::Balance { account, at, json } => {
            let query = LedgerBalanceQuery {
                account: account_of(&account)?,
                group_by: account.group_by.clone(),
                at,
            };
            let client = session::connect(printer, context)?;
            let answer: LedgerBalances = client.post("/v1/ledger/balances", &query)?;
            if json {
                printer.json(&answer);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = answer
                .balances
                .iter()
                .map(|b| row(&account.group_by, &b.group, &[b.balance]))
                .collect();
            table(
                printer,
                &account.group_by,
                &["balance"],
                rows,
                "no events before then",
            );
            printer.info(format!("at {}", answer.at));
            Ok(())
        }
        LedgerCommand::Turnovers {
            account,
            from,
            to,
            json,
        } => {
            let query = LedgerTurnoverQuery {
                account: account_of(&account)?,
                group_by: account.group_by.clone(),
                from,
                to,
            };
            let client = session::connect(printer, context)?;
            let answer: LedgerTurnovers = client.post("/v1/ledger/turnovers", &query)?;
            if json {
                printer.json(&answer);
                return Ok(());
            }
            let rows = answer
                .turnovers
                .iter()
                .map(|t| {
                    row(
                        &account.group_by,
                        &t.group,
                        &[t.opening, t.debit, t.credit, t.closing],
                    )
                })
                .collect();
            table(
                printer,
                &account.group_by,
                &["opening", "debit", "credit", "closing"],
                rows,
                "no events before the period's end",
            );
            printer.info(format!("from {} to {}", answer.from, answer.to));
            Ok(())
        }
        LedgerCommand::Events {
            kind,
            key,
            aux,
            from,
            to,
            limit,
            json,
        } => {
            let mut query = LedgerEventQuery {
                kind,
                key: pairs(&key, "--key")?,
                aux: pairs(&aux, "--aux")?,
                from,
                to,
                after: None,
                limit: None,
            };
            let client = session::connect(printer, context)?;
            let mut events: Vec<LedgerEvent> = Vec::new();
            // Page by page through the cursor, up to `limit`.
            while events.len() < limit {
                query.limit = Some((limit - events.len()).min(MAX_LEDGER_PAGE as usize) as u32);
                let page: LedgerEvents = client.post("/v1/ledger/events", &query)?;
                events.extend(page.events);
                match page.next {
                    Some(next) => query.after = Some(next),
                    None => break,
                }
            }
            if json {
                printer.json(&events);
                return Ok(());
            }
            if events.is_empty() {
                printer.info("no events in that period");
            }
            for e in &events {
                printer.result(format!(
                    "{:<28} {:>14} {:<40} {:<32} {}",
                    e.effective_at,
                    e.amount,
                    attributes(&e.account.key),
                    attributes(&e.aux),
                    e.idempotency_key
                ));
            }
            Ok(())
        }
        LedgerCommand::Write { file, json } => {
            let batch = LedgerBatch {
                events: read_events(&file)?,
            };
            let client = session::connect(printer, context)?;
            let written: Vec<LedgerWritten> = client.post("/v1/ledger/batches", &batch)?;
            if json {
                printer.json(&written);
                return Ok(());
            }
            let new = written.iter().filter(|w| w.status == "new").count();
            printer.status(
                "Wrote",
                format!(
                    "{new} new events, {} already written before",
                    written.len() - new
                ),
            );
            Ok(())
        }
    }
}

fn pairs(items: &[String], flag: &str) -> CliResult<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for item in items {
        let Some((name, value)) = item.split_once('=') else {
            return Err(CliError::usage(
                format!("`{flag} {item}` is not NAME=VALUE"),
                format!("write it as `{flag} tenant=ada@example.com`"),
            ));
        };
        if out.insert(name.to_owned(), value.to_owned()).is_some() {
            return Err(CliError::usage(
                format!("`{flag}` names `{name}` twice"),
                "give each attribute once",
            ));
        }
    }
    Ok(out)
}

fn account_of(a: &LedgerAccountArgs) -> CliResult<LedgerAccount> {
    Ok(LedgerAccount {
        kind: a.kind.clone(),
        key: pairs(&a.key, "--key")?,
    })
}

fn attributes(a: &BTreeMap<String, String>) -> String {
    a.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn row(group_by: &[String], group: &BTreeMap<String, String>, figures: &[i64]) -> Vec<String> {
    group_by
        .iter()
        .map(|g| group.get(g).cloned().unwrap_or_default())
        .chain(figures.iter().map(i64::to_string))
        .collect()
}

/// Group columns left-aligned, figures right-aligned, widths from the widest cell.
fn table(
    printer: &Printer,
    group_by: &[String],
    figures: &[&str],
    rows: Vec<Vec<String>>,
    empty: &str,
) {
    if rows.is_empty() {
        printer.info(empty);
        return;
    }
    let header: Vec<String> = group_by
        .iter()
        .cloned()
        .chain(figures.iter().map(|f| f.to_string()))
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i < group_by.len() {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    format!("{c:>w$}", w = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    printer.result(line(&header));
    for r in &rows {
        printer.result(line(r));
    }
}

/// A JSON array of events, or one event per line.
fn read_events(file: &Path) -> CliResult<Vec<LedgerNewEvent>> {
    let text = if file == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| CliError::failed(format!("cannot read stdin: {e}"), None))?;
        s
    } else {
        std::fs::read_to_string(file)
            .map_err(|e| CliError::failed(format!("cannot read {}: {e}", file.display()), None))?
    };
    let name = file.display();
    if text.trim_start().starts_with('[') {
        return serde_json::from_str(&text).map_err(|e| {
            CliError::usage(
                format!("{name}:{}:{}: {e}", e.line(), e.column()),
                "give a JSON array of events: account, aux, amount, effective_at, idempotency_key, info",
            )
        });
    }
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                CliError::usage(
                    format!("{name}:{}:{}: {e}", i + 1, e.column()),
                    "give one event per line: account, aux, amount, effective_at, idempotency_key, info",
                )
            })
        })
        .collect()
}
