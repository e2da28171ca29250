//! `faas billing invoice close`, `faas billing invoices`, `faas billing notifications`: the
//! monthly invoices closed from the ledger, and what was sent of them.

use faas_spec::api::invoices::*;

use crate::client::Client;
use crate::error::CliResult;
use crate::printer::Printer;

fn tenant_query(tenant: Option<&str>) -> String {
    tenant.map_or_else(String::new, |t| {
        format!("?tenant={}", crate::client::encode(t))
    })
}

fn show(printer: &Printer, i: &Invoice) {
    let adjustment = if i.adjustment_nanos == 0 {
        String::new()
    } else {
        format!(
            " (of which {} {} is an adjustment: earlier usage that arrived late)",
            i.adjustment, i.currency
        )
    };
    printer.result(format!(
        "{}  {}  {:<28} {:>12} {}  due{adjustment}",
        i.id, i.month, i.tenant, i.amount_due, i.currency
    ));
}

pub fn close(
    printer: &Printer,
    client: &Client,
    month: String,
    tenant: Option<String>,
    json: bool,
) -> CliResult {
    let closed: ClosedInvoices =
        client.post("/v1/invoices/close", &CloseInvoices { month, tenant })?;
    if json {
        printer.json(&closed);
        return Ok(());
    }
    printer.status(
        "Closed",
        format!(
            "{} invoices of {} ({} closed before, unchanged)",
            closed.closed_now,
            closed.month,
            closed.invoices.len() as u32 - closed.closed_now
        ),
    );
    for i in &closed.invoices {
        show(printer, i);
    }
    Ok(())
}

pub fn list(printer: &Printer, client: &Client, tenant: Option<&str>, json: bool) -> CliResult {
    let invoices: Vec<Invoice> = client.get(&format!("/v1/invoices{}", tenant_query(tenant)))?;
    if json {
        printer.json(&invoices);
        return Ok(());
    }
    if invoices.is_empty() {
        printer.info("no invoice has closed yet: a month's invoice closes after the month ends");
    }
    for i in &invoices {
        show(printer, i);
    }
    Ok(())
}

pub fn notifications(
    printer: &Printer,
    client: &Client,
    tenant: Option<&str>,
    json: bool,
) -> CliResult {
    let sent: Vec<Notification> =
        client.get(&format!("/v1/notifications{}", tenant_query(tenant)))?;
    if json {
        printer.json(&sent);
        return Ok(());
    }
    if sent.is_empty() {
        printer.info("nothing was sent yet");
    }
    for n in &sent {
        let when = match n.state.as_str() {
            "sent" => format!("sent {}", n.sent_at.as_deref().unwrap_or("")),
            "pending" => format!(
                "next attempt {}",
                n.next_attempt_at.as_deref().unwrap_or("")
            ),
            _ => "given up".to_owned(),
        };
        let error = n
            .last_error
            .as_deref()
            .map_or_else(String::new, |e| format!("  last error: {e}"));
        printer.result(format!(
            "{}  {:<7} {:<30} {:<7} {} attempt(s), {when}{error}",
            n.invoice, n.channel, n.target, n.state, n.attempts
        ));
    }
    Ok(())
}
