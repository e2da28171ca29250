//! `faas billing show`: what a tenant used over a period and what it costs, accrued from the
//! platform's ledger: a table by cost with subtotals and a total rounded once, or JSON, or CSV.

use std::collections::BTreeMap;

use clap::Subcommand;
use faas_spec::api::WhoAmI;
use faas_spec::api::billing::*;

use crate::client::encode;
use crate::error::{CliError, CliResult};
use crate::printer::Printer;
use crate::session;

#[derive(Debug, Subcommand)]
pub enum BillingCommand {
    /// A tenant's usage and its cost over a month or a period (accrued, not forecast)
    Show {
        /// The tenant (an e-mail address) [default: the token's own]
        #[arg(long, value_name = "EMAIL")]
        tenant: Option<String>,
        /// A calendar month, YYYY-MM [default: the current month]
        #[arg(long, value_name = "YYYY-MM", conflicts_with_all = ["from", "to"])]
        month: Option<String>,
        /// The period's start: YYYY-MM-DD (midnight) or an RFC 3339 instant
        #[arg(long, value_name = "TIME", requires = "to")]
        from: Option<String>,
        /// The period's end, not included
        #[arg(long, value_name = "TIME", requires = "from")]
        to: Option<String>,
        /// Group by service, env, resource, release or day (repeatable, or comma-separated)
        #[arg(long, value_name = "DIMENSION", value_delimiter = ',')]
        by: Vec<String>,
        /// The IANA time zone months and days are cut in, e.g. Europe/Paris [default: UTC]
        #[arg(long, value_name = "ZONE")]
        tz: Option<String>,
        /// Also show the rows with no usage in the period
        #[arg(long)]
        all: bool,
        /// Print JSON (stable, with a schema_version)
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// Print CSV: one row per group and resource, with exact quantities and nano-units
        #[arg(long)]
        csv: bool,
    },
    /// Close a month's invoices (admin)
    #[command(subcommand)]
    Invoice(InvoiceCommand),
    /// The closed invoices, oldest month first (a member sees its own)
    Invoices {
        /// One tenant (admin) [default: every tenant for an admin, its own for a member]
        #[arg(long, value_name = "EMAIL")]
        tenant: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// What was sent of the invoices (e-mail, webhook), and what failed
    Notifications {
        /// One tenant (admin) [default: every tenant for an admin, its own for a member]
        #[arg(long, value_name = "EMAIL")]
        tenant: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum InvoiceCommand {
    /// Close the invoices of a month that is over, one per tenant and currency; closing again
    /// changes nothing (usage that arrives later lands on the next month's invoice)
    Close {
        /// The month, YYYY-MM (UTC)
        #[arg(long, value_name = "YYYY-MM")]
        month: String,
        /// One tenant [default: every tenant with usage]
        #[arg(long, value_name = "EMAIL")]
        tenant: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

pub fn run(printer: &Printer, context: Option<&str>, cmd: BillingCommand) -> CliResult {
    let (tenant, month, from, to, by, tz, all, json, csv) = match cmd {
        BillingCommand::Show {
            tenant,
            month,
            from,
            to,
            by,
            tz,
            all,
            json,
            csv,
        } => (tenant, month, from, to, by, tz, all, json, csv),
        BillingCommand::Invoice(InvoiceCommand::Close {
            month,
            tenant,
            json,
        }) => {
            let client = session::connect(printer, context)?;
            return super::invoices::close(printer, &client, month, tenant, json);
        }
        BillingCommand::Invoices { tenant, json } => {
            let client = session::connect(printer, context)?;
            return super::invoices::list(printer, &client, tenant.as_deref(), json);
        }
        BillingCommand::Notifications { tenant, json } => {
            let client = session::connect(printer, context)?;
            return super::invoices::notifications(printer, &client, tenant.as_deref(), json);
        }
    };
    for d in &by {
        if !BILLING_DIMENSIONS.contains(&d.as_str()) {
            return Err(CliError::usage(
                format!("`--by {d}` is not something a bill can be grouped by"),
                format!("give any of {}", BILLING_DIMENSIONS.join(", ")),
            ));
        }
    }
    let client = session::connect(printer, context)?;
    let tenant = match tenant {
        Some(t) => t,
        None => client.get::<WhoAmI>("/v1/whoami")?.tenant,
    };
    let mut query = Vec::new();
    for (k, v) in [("month", month), ("from", from), ("to", to), ("tz", tz)] {
        if let Some(v) = v {
            query.push((k, v));
        }
    }
    if !by.is_empty() {
        query.push(("by", by.join(",")));
    }
    if all {
        query.push(("all", "true".into()));
    }
    let path = format!("/v1/billing/{}?{}", encode(&tenant), form(&query));
    let bill: BillingReport = client.get(&path)?;
    if json {
        printer.json(&bill);
    } else if csv {
        printer.result(to_csv(&bill).trim_end());
    } else {
        printer.result(to_table(&bill).trim_end());
    }
    Ok(())
}

fn form(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn cell(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// One CSV row per group, resource and tariff version.
pub fn to_csv(bill: &BillingReport) -> String {
    let mut head: Vec<String> = bill.group_by.clone();
    head.extend(
        [
            "resource",
            "tariff",
            "version",
            "quantity",
            "unit",
            "unit_price",
            "price_unit",
            "currency",
            "cost",
            "cost_nanos",
        ]
        .map(String::from),
    );
    let mut out = head.join(",") + "\n";
    for r in &bill.rows {
        let mut line: Vec<String> = bill
            .group_by
            .iter()
            .map(|d| cell(r.group.get(d).map_or("", String::as_str)))
            .collect();
        line.extend([
            cell(&r.resource),
            cell(&r.tariff),
            r.version.to_string(),
            r.quantity.clone(),
            cell(&r.unit),
            r.unit_price.clone(),
            cell(&r.price_unit),
            r.currency.clone(),
            r.cost.clone(),
            r.cost_nanos.to_string(),
        ]);
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

fn header(bill: &BillingReport) -> Vec<String> {
    let mut lines = vec![
        format!("Billing for {}", bill.tenant),
        format!(
            "Period: {} to {} (half-open, {})",
            bill.period.from, bill.period.to, bill.period.tz
        ),
    ];
    if !bill.tariff_versions.is_empty() {
        let versions: Vec<String> = bill
            .tariff_versions
            .iter()
            .map(|v| {
                let to = v
                    .effective_to
                    .as_deref()
                    .map_or_else(String::new, |t| format!(" to {t}"));
                format!(
                    "{} v{} ({}, from {}{to})",
                    v.tariff, v.version, v.currency, v.effective_from
                )
            })
            .collect();
        lines.push(format!("Tariff: {}", versions.join("; ")));
    }
    lines.push(match &bill.usage_through {
        Some(t) => format!("Usage through {t}: accrued, not forecast."),
        None => "No usage measured yet.".into(),
    });
    if bill.unpriced_records > 0 {
        lines.push(format!(
            "{} usage records are not priced yet (no tariff, or pricing is behind).",
            bill.unpriced_records
        ));
    }
    lines
}

/// The table: group columns, resource, quantity, unit, unit price and cost, by cost, with
/// subtotals per group and a total per currency rounded once.
pub fn to_table(bill: &BillingReport) -> String {
    let mut out = header(bill).join("\n") + "\n\n";
    let mut head: Vec<String> = bill.group_by.iter().map(|d| d.to_uppercase()).collect();
    head.extend(["RESOURCE", "QUANTITY", "UNIT", "UNIT PRICE", "COST"].map(String::from));
    let row_cells = |r: &BillingRow| -> Vec<String> {
        let mut cells: Vec<String> = bill
            .group_by
            .iter()
            .map(|d| r.group.get(d).cloned().unwrap_or_default())
            .collect();
        let resource = if bill.tariff_versions.len() > 1 {
            format!("{} (v{})", r.resource, r.version)
        } else {
            r.resource.clone()
        };
        cells.extend([
            resource,
            r.quantity.clone(),
            r.unit.clone(),
            format!("{} {} / {}", r.unit_price, r.currency, r.price_unit),
            format!("{} {}", r.cost, r.currency),
        ]);
        cells
    };
    // Rows in the order of their group's subtotal, then their own cost.
    let rank: BTreeMap<(&BTreeMap<String, String>, &str), usize> = bill
        .subtotals
        .iter()
        .enumerate()
        .map(|(i, s)| ((&s.group, s.currency.as_str()), i))
        .collect();
    let mut rows: Vec<&BillingRow> = bill.rows.iter().collect();
    rows.sort_by_key(|r| {
        rank.get(&(&r.group, r.currency.as_str()))
            .copied()
            .unwrap_or(0)
    });
    let mut lines: Vec<Vec<String>> = vec![head];
    let mut last_group: Option<usize> = None;
    for r in &rows {
        let g = rank.get(&(&r.group, r.currency.as_str())).copied();
        if let (Some(prev), true) = (last_group, g != last_group) {
            lines.push(subtotal_cells(bill, &bill.subtotals[prev]));
        }
        last_group = g;
        lines.push(row_cells(r));
    }
    if let Some(prev) = last_group {
        lines.push(subtotal_cells(bill, &bill.subtotals[prev]));
    }
    let widths: Vec<usize> = (0..lines[0].len())
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for l in &lines {
        let text: Vec<String> = l
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(text.join("  ").trim_end());
        out.push('\n');
    }
    if bill.rows.is_empty() {
        out.push_str("(no usage in this period)\n");
    }
    for t in &bill.totals {
        out.push_str(&format!(
            "\nTotal: {} {} (the exact {} rounded once; rounding {} nano-units)\n",
            t.amount, t.currency, t.cost, t.rounding_nanos
        ));
    }
    if bill.hidden_rows > 0 {
        let rows = if bill.hidden_rows == 1 { "row" } else { "rows" };
        out.push_str(&format!(
            "{} {rows} with no usage in this period hidden (--all shows them)\n",
            bill.hidden_rows
        ));
    }
    out
}

fn subtotal_cells(bill: &BillingReport, s: &BillingSubtotal) -> Vec<String> {
    let mut cells: Vec<String> = vec![String::new(); bill.group_by.len() + 4];
    let name: Vec<String> = bill
        .group_by
        .iter()
        .map(|d| s.group.get(d).cloned().unwrap_or_default())
        .collect();
    cells[0] = format!("subtotal {}", name.join(" "));
    cells.push(format!("{} {}", s.cost, s.currency));
    cells
}
