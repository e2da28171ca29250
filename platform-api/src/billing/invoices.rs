//! Invoices: at the end of each month (and on demand), one immutable invoice per tenant and
//! currency, closed from the ledger. Its total is the month's charges plus an adjustment: what
//! reached the ledger for earlier months after their invoices closed (the balance before the
//! month less everything invoiced before), so late usage lands on the next invoice, visibly,
//! and is never lost or billed twice. Each close posts the total to the tenant's `receivable`
//! account and queues its notifications.

use std::collections::BTreeMap;

use faas_ledger::{AccountId, BalanceQuery, NewEvent};
use sha2::{Digest, Sha256};

use super::period::{Asked, Period};
use crate::Platform;
use crate::meter::pricing::COST_ACCOUNT;
use crate::store::InvoiceRow;

/// Why a month cannot be closed now.
#[derive(Debug, thiserror::Error)]
pub enum CloseError {
    #[error("{0}")]
    Month(String),
    #[error("{month} is not over yet (it ends {ends}); an invoice closes a whole month")]
    NotOver { month: String, ends: String },
    #[error(
        "{pending} usage records of {month} are not priced yet; the close waits for them (retry in a moment)"
    )]
    PricingBehind { month: String, pending: u64 },
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// The invoice id: derived from what it is of, so that closing again names the same one.
pub fn invoice_id(tenant: &str, currency: &str, month: &str) -> String {
    let digest = Sha256::digest(format!("{tenant}/{currency}").as_bytes());
    format!("inv-{month}-{}", &hex::encode(digest)[..10])
}

fn month_period(month: &str) -> Result<Period, CloseError> {
    Period::resolve(
        &Asked {
            month: Some(month),
            ..Default::default()
        },
        0,
    )
    .map_err(|e| CloseError::Month(format!("{} ({})", e.message, e.hint)))
}

/// The month before the one `now_us` is in (UTC), `YYYY-MM`.
pub fn previous_month(now_us: i64) -> String {
    let Ok(t) = jiff::Timestamp::from_microsecond(now_us) else {
        return "1970-01".into();
    };
    let first = t
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date()
        .first_of_month();
    let prev = first.yesterday().unwrap_or(first);
    format!("{:04}-{:02}", prev.year(), prev.month())
}

async fn turnovers_by_resource(
    p: &Platform,
    tenant: &str,
    currency: &str,
    period: &Period,
) -> anyhow::Result<(i64, BTreeMap<String, i64>)> {
    let q = BalanceQuery {
        account: AccountId {
            kind: COST_ACCOUNT.into(),
            key: [("tenant", tenant), ("currency", currency)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        },
        group_by: vec!["resource".into()],
    };
    let mut opening = 0;
    let mut lines = BTreeMap::new();
    for t in p.ledger.turnovers(&q, period.from_us, period.to_us).await? {
        opening += t.opening;
        let moved = t.debit - t.credit;
        if moved != 0 {
            lines.insert(t.group.get("resource").cloned().unwrap_or_default(), moved);
        }
    }
    Ok((opening, lines))
}

/// Closes `month` for one tenant or every tenant with usage. Returns each invoice and whether
/// this call closed it (false: closed before, and unchanged).
pub async fn close_month(
    p: &Platform,
    month: &str,
    tenant: Option<&str>,
    now_us: i64,
) -> Result<Vec<(InvoiceRow, bool)>, CloseError> {
    let period = month_period(month)?;
    if period.to_us > now_us {
        return Err(CloseError::NotOver {
            month: month.to_owned(),
            ends: period.show(period.to_us),
        });
    }
    let pending = p
        .store
        .unpriced_before(period.to_us)
        .map_err(anyhow::Error::from)?;
    if pending > 0 {
        return Err(CloseError::PricingBehind {
            month: month.to_owned(),
            pending,
        });
    }
    let tenants = match tenant {
        Some(t) => vec![t.to_owned()],
        None => p.store.billed_tenants().map_err(anyhow::Error::from)?,
    };
    let mut currencies: Vec<String> = p
        .store
        .tariffs()
        .map_err(anyhow::Error::from)?
        .into_iter()
        .map(|t| t.currency)
        .collect();
    currencies.sort();
    currencies.dedup();
    let mut out = Vec::new();
    for tenant in &tenants {
        for currency in &currencies {
            if let Some(closed) = close_one(p, tenant, currency, month, &period, now_us).await? {
                out.push(closed);
            }
        }
    }
    Ok(out)
}

async fn close_one(
    p: &Platform,
    tenant: &str,
    currency: &str,
    month: &str,
    period: &Period,
    now_us: i64,
) -> anyhow::Result<Option<(InvoiceRow, bool)>> {
    if let Some(existing) = p.store.invoice_of(tenant, currency, month)? {
        post_receivable(p, &existing).await?;
        return Ok(Some((existing, false)));
    }
    if let Some(later) = p.store.latest_invoice_month(tenant, currency)?
        && later.as_str() > month
    {
        // A later invoice carried what this month had as its adjustment.
        return Ok(None);
    }
    let (opening, lines) = turnovers_by_resource(p, tenant, currency, period).await?;
    let charges: i64 = lines.values().sum();
    let adjustment = opening - p.store.invoiced_before(tenant, currency, month)?;
    if charges == 0 && adjustment == 0 {
        return Ok(None);
    }
    let invoice = InvoiceRow {
        id: invoice_id(tenant, currency, month),
        tenant: tenant.to_owned(),
        currency: currency.to_owned(),
        month: month.to_owned(),
        from_us: period.from_us,
        to_us: period.to_us,
        charges_nanos: charges,
        adjustment_nanos: adjustment,
        total_nanos: charges + adjustment,
        lines: serde_json::to_string(&lines)?,
        closed_at: crate::api::ledger::rfc3339(now_us),
    };
    let mut notify: Vec<(&str, &str)> = Vec::new();
    if p.config.notify.smtp_relay.is_some() {
        notify.push(("email", tenant));
    }
    if let Some(url) = p.config.notify.webhook_url.as_deref() {
        notify.push(("webhook", url));
    }
    let (row, new) = p.store.close_invoice(&invoice, &notify, now_us)?;
    post_receivable(p, &row).await?;
    if new {
        tracing::info!(invoice = %row.id, tenant, "closed the invoice of {month}");
    }
    Ok(Some((row, new)))
}

/// What the tenant owes for the invoice, on its `receivable` account (once: keyed by it).
async fn post_receivable(p: &Platform, invoice: &InvoiceRow) -> anyhow::Result<()> {
    let event = NewEvent {
        account: AccountId {
            kind: "receivable".into(),
            key: [
                ("tenant".to_owned(), invoice.tenant.clone()),
                ("currency".to_owned(), invoice.currency.clone()),
            ]
            .into_iter()
            .collect(),
        },
        aux: [("invoice".to_owned(), invoice.id.clone())]
            .into_iter()
            .collect(),
        amount: invoice.total_nanos,
        effective_at: invoice.to_us,
        idempotency_key: format!("invoice:{}", invoice.id),
        info: serde_json::json!({ "month": invoice.month }),
    };
    p.ledger.write(&[event]).await?;
    Ok(())
}

/// The last month's invoices, once it is over and its usage priced: called by the meter's
/// loop; closing is idempotent, so a check that comes again changes nothing.
pub async fn close_last_month(p: &Platform, now_us: i64) {
    let month = previous_month(now_us);
    if p.store.meta(CLOSED).ok().flatten().as_deref() == Some(month.as_str()) {
        return;
    }
    match close_month(p, &month, None, now_us).await {
        Ok(closed) => {
            let _ = p.store.set_meta(CLOSED, &month);
            let new = closed.iter().filter(|(_, n)| *n).count();
            if new > 0 {
                tracing::info!("closed {new} invoices of {month}");
            }
        }
        Err(CloseError::PricingBehind { .. }) => {}
        Err(e) => tracing::warn!("cannot close the invoices of {month}: {e}"),
    }
}

const CLOSED: &str = "invoices_closed_through";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_months_are_derived() {
        assert_eq!(
            invoice_id("ada@example.com", "EUR", "2026-11"),
            invoice_id("ada@example.com", "EUR", "2026-11")
        );
        assert_ne!(
            invoice_id("ada@example.com", "EUR", "2026-11"),
            invoice_id("ada@example.com", "USD", "2026-11")
        );
        // 2026-12-02T06:10:00Z: the month before is November; on 1 January, December.
        assert_eq!(previous_month(1_796_191_800_000_000), "2026-11");
        assert_eq!(previous_month(1_798_761_600_000_000), "2026-12");
    }
}
