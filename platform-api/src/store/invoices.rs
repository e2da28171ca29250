//! Invoices: one per tenant, currency and month, closed once from the ledger and never changed;
//! and the notifications each close sends (e-mail, webhook), with their attempts.

use rusqlite::{OptionalExtension, params};

use super::{Migration, Result, Store, now};

pub(super) const MIGRATIONS: &[Migration] = &[Migration {
    version: 7,
    sql: r#"
    CREATE TABLE invoices (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        currency TEXT NOT NULL,
        month TEXT NOT NULL,
        from_us INTEGER NOT NULL,
        to_us INTEGER NOT NULL,
        charges_nanos INTEGER NOT NULL,
        adjustment_nanos INTEGER NOT NULL,
        total_nanos INTEGER NOT NULL,
        lines TEXT NOT NULL,
        closed_at TEXT NOT NULL,
        UNIQUE (tenant, currency, month)
    );
    CREATE TABLE notifications (
        id INTEGER PRIMARY KEY,
        invoice TEXT NOT NULL REFERENCES invoices (id),
        channel TEXT NOT NULL,
        target TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at_us INTEGER NOT NULL,
        last_error TEXT,
        sent_at TEXT,
        UNIQUE (invoice, channel)
    );
    CREATE INDEX notifications_due ON notifications (next_at_us) WHERE state = 'pending';
    "#,
}];

/// A closed invoice. `total = charges + adjustment`: the month's charges and what reached the
/// ledger for earlier months after their invoices closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceRow {
    pub id: String,
    pub tenant: String,
    pub currency: String,
    pub month: String,
    pub from_us: i64,
    pub to_us: i64,
    pub charges_nanos: i64,
    pub adjustment_nanos: i64,
    pub total_nanos: i64,
    /// JSON: the month's charges per resource.
    pub lines: String,
    pub closed_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationRow {
    pub id: i64,
    pub invoice: String,
    /// `email` or `webhook`.
    pub channel: String,
    pub target: String,
    /// `pending`, `sent` or `failed` (given up).
    pub state: String,
    pub attempts: u32,
    pub next_at_us: i64,
    pub last_error: Option<String>,
    pub sent_at: Option<String>,
}

const INVOICE_COLUMNS: &str = "id, tenant, currency, month, from_us, to_us, charges_nanos, adjustment_nanos, total_nanos, lines, closed_at";

fn invoice_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<InvoiceRow> {
    Ok(InvoiceRow {
        id: r.get(0)?,
        tenant: r.get(1)?,
        currency: r.get(2)?,
        month: r.get(3)?,
        from_us: r.get(4)?,
        to_us: r.get(5)?,
        charges_nanos: r.get(6)?,
        adjustment_nanos: r.get(7)?,
        total_nanos: r.get(8)?,
        lines: r.get(9)?,
        closed_at: r.get(10)?,
    })
}

const NOTIFICATION_COLUMNS: &str =
    "id, invoice, channel, target, state, attempts, next_at_us, last_error, sent_at";

fn notification_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<NotificationRow> {
    Ok(NotificationRow {
        id: r.get(0)?,
        invoice: r.get(1)?,
        channel: r.get(2)?,
        target: r.get(3)?,
        state: r.get(4)?,
        attempts: r.get(5)?,
        next_at_us: r.get(6)?,
        last_error: r.get(7)?,
        sent_at: r.get(8)?,
    })
}

impl Store {
    /// Stores a closed invoice with its notifications, at once; an invoice of the same tenant,
    /// currency and month closed before wins, and is returned (`false`: not new).
    pub fn close_invoice(
        &self,
        invoice: &InvoiceRow,
        notify: &[(&str, &str)],
        now_us: i64,
    ) -> Result<(InvoiceRow, bool)> {
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            let existing = tx
                .query_row(
                    &format!(
                        "SELECT {INVOICE_COLUMNS} FROM invoices WHERE tenant = ?1 AND currency = ?2 AND month = ?3"
                    ),
                    params![invoice.tenant, invoice.currency, invoice.month],
                    invoice_from,
                )
                .optional()?;
            if let Some(e) = existing {
                return Ok((e, false));
            }
            tx.execute(
                &format!(
                    "INSERT INTO invoices ({INVOICE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
                ),
                params![
                    invoice.id,
                    invoice.tenant,
                    invoice.currency,
                    invoice.month,
                    invoice.from_us,
                    invoice.to_us,
                    invoice.charges_nanos,
                    invoice.adjustment_nanos,
                    invoice.total_nanos,
                    invoice.lines,
                    invoice.closed_at
                ],
            )?;
            for (channel, target) in notify {
                tx.execute(
                    "INSERT INTO notifications (invoice, channel, target, state, next_at_us)
                     VALUES (?1, ?2, ?3, 'pending', ?4)",
                    params![invoice.id, channel, target, now_us],
                )?;
            }
            tx.commit()?;
            Ok((invoice.clone(), true))
        })
    }

    pub fn invoices(&self, tenant: Option<&str>) -> Result<Vec<InvoiceRow>> {
        self.all(
            &format!(
                "SELECT {INVOICE_COLUMNS} FROM invoices WHERE ?1 IS NULL OR tenant = ?1
                 ORDER BY month, tenant, currency"
            ),
            [tenant],
            invoice_from,
        )
    }

    pub fn invoice(&self, id: &str) -> Result<Option<InvoiceRow>> {
        self.one(
            &format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE id = ?1"),
            [id],
            invoice_from,
        )
    }

    /// What the tenant's invoices in a currency, closed before `month`, came to (nano-units).
    pub fn invoiced_before(&self, tenant: &str, currency: &str, month: &str) -> Result<i64> {
        self.with(|c| {
            c.query_row(
                "SELECT coalesce(sum(total_nanos), 0) FROM invoices
                 WHERE tenant = ?1 AND currency = ?2 AND month < ?3",
                params![tenant, currency, month],
                |r| r.get(0),
            )
        })
    }

    pub fn invoice_of(
        &self,
        tenant: &str,
        currency: &str,
        month: &str,
    ) -> Result<Option<InvoiceRow>> {
        self.one(
            &format!(
                "SELECT {INVOICE_COLUMNS} FROM invoices WHERE tenant = ?1 AND currency = ?2 AND month = ?3"
            ),
            params![tenant, currency, month],
            invoice_from,
        )
    }

    /// The latest month invoiced to the tenant in the currency.
    pub fn latest_invoice_month(&self, tenant: &str, currency: &str) -> Result<Option<String>> {
        self.with(|c| {
            c.query_row(
                "SELECT max(month) FROM invoices WHERE tenant = ?1 AND currency = ?2",
                params![tenant, currency],
                |r| r.get(0),
            )
        })
    }

    /// Usage records of before `to_us` not priced yet: a month cannot close over them.
    pub fn unpriced_before(&self, to_us: i64) -> Result<u64> {
        self.with(|c| {
            c.query_row(
                "SELECT count(*) FROM usage_records WHERE priced IS NULL AND from_us < ?1",
                [to_us],
                |r| r.get::<_, i64>(0),
            )
        })
        .map(|n| n as u64)
    }

    /// Tenants that ever had usage measured or a service.
    pub fn billed_tenants(&self) -> Result<Vec<String>> {
        self.all(
            "SELECT DISTINCT tenant FROM usage_records UNION SELECT owner FROM services ORDER BY 1",
            [],
            |r| r.get(0),
        )
    }

    /// Notifications due at `now_us`, oldest first.
    pub fn due_notifications(&self, now_us: i64, limit: usize) -> Result<Vec<NotificationRow>> {
        self.all(
            &format!(
                "SELECT {NOTIFICATION_COLUMNS} FROM notifications
                 WHERE state = 'pending' AND next_at_us <= ?1 ORDER BY next_at_us, id LIMIT ?2"
            ),
            params![now_us, limit as i64],
            notification_from,
        )
    }

    /// Records an attempt: sent, or failed with its error and the time of the next attempt
    /// (None: given up).
    pub fn notification_attempt(
        &self,
        id: i64,
        outcome: std::result::Result<(), (&str, Option<i64>)>,
    ) -> Result<()> {
        self.with(|c| {
            match outcome {
                Ok(()) => c.execute(
                    "UPDATE notifications SET state = 'sent', attempts = attempts + 1,
                       sent_at = ?2, last_error = NULL WHERE id = ?1",
                    params![id, now()],
                )?,
                Err((error, Some(next))) => c.execute(
                    "UPDATE notifications SET attempts = attempts + 1, last_error = ?2,
                       next_at_us = ?3 WHERE id = ?1",
                    params![id, error, next],
                )?,
                Err((error, None)) => c.execute(
                    "UPDATE notifications SET state = 'failed', attempts = attempts + 1,
                       last_error = ?2 WHERE id = ?1",
                    params![id, error],
                )?,
            };
            Ok(())
        })
    }

    pub fn notifications(&self, tenant: Option<&str>) -> Result<Vec<NotificationRow>> {
        self.all(
            &format!(
                "SELECT n.{} FROM notifications n JOIN invoices i ON i.id = n.invoice
                 WHERE ?1 IS NULL OR i.tenant = ?1 ORDER BY n.id",
                NOTIFICATION_COLUMNS.replace(", ", ", n.")
            ),
            [tenant],
            notification_from,
        )
    }
}
