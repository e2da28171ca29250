//! Telling tenants what is due: when an invoice closes, an e-mail through the SMTP relay of
//! the platform's config (lettre), and a webhook signed with HMAC-SHA256 when one is set. A
//! send that fails is retried with backoff (1 s, 2 s, 4 s … up to 10 attempts) and every
//! attempt is recorded; billing never waits for it.

use std::time::Duration;

use hmac::{Hmac, Mac};
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sha2::Sha256;

use crate::Platform;
use crate::store::{InvoiceRow, NotificationRow};

/// Attempts before a notification is given up.
pub const MAX_ATTEMPTS: u32 = 10;
/// The wait after the first failed attempt; it doubles with each.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);

/// Where notifications go: from the platform's config.
#[derive(Debug, Clone, Default)]
pub struct NotifyConfig {
    /// `HOST:PORT` of an SMTP relay (no authentication, as a local relay takes it).
    pub smtp_relay: Option<String>,
    pub smtp_from: String,
    pub webhook_url: Option<String>,
    /// The key the webhook's body is signed with (`X-Faas-Signature: sha256=<hex>`).
    pub webhook_secret: Option<String>,
}

/// The invoice as a tenant reads it.
pub fn invoice_text(i: &InvoiceRow) -> (String, String) {
    let amount = faas_spec::money::format_amount(i.total_nanos, &i.currency);
    let subject = format!(
        "faas invoice {} for {}: {amount} {} due",
        i.id, i.month, i.currency
    );
    let mut body = format!("Invoice {} for {}, {}.\n\n", i.id, i.tenant, i.month);
    let lines: std::collections::BTreeMap<String, i64> =
        serde_json::from_str(&i.lines).unwrap_or_default();
    for (resource, nanos) in &lines {
        body.push_str(&format!(
            "  {resource:<10} {} {}\n",
            faas_spec::money::format_nanos(*nanos),
            i.currency
        ));
    }
    if i.adjustment_nanos != 0 {
        body.push_str(&format!(
            "  adjustment {} {} (usage of earlier months that arrived after their invoices closed)\n",
            faas_spec::money::format_nanos(i.adjustment_nanos),
            i.currency
        ));
    }
    body.push_str(&format!(
        "\nAmount due: {amount} {}\n(the exact {} rounded once)\n\n`faas billing invoices` lists your invoices.\n",
        i.currency,
        faas_spec::money::format_nanos(i.total_nanos)
    ));
    (subject, body)
}

/// The webhook's signature of `body`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length: this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn send_email(config: &NotifyConfig, to: &str, invoice: &InvoiceRow) -> Result<(), String> {
    let (subject, body) = invoice_text(invoice);
    mail(config, to, subject, body).await
}

/// One plain-text mail through the platform's SMTP relay.
pub async fn mail(
    config: &NotifyConfig,
    to: &str,
    subject: String,
    body: String,
) -> Result<(), String> {
    let relay = config.smtp_relay.as_deref().ok_or("no SMTP relay is set")?;
    let (host, port) = relay
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        .ok_or_else(|| format!("the SMTP relay `{relay}` is not HOST:PORT"))?;
    let message = Message::builder()
        .from(config.smtp_from.parse().map_err(|e| format!("from: {e}"))?)
        .to(to.parse().map_err(|e| format!("to: {e}"))?)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| e.to_string())?;
    let mailer = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(port)
        .timeout(Some(Duration::from_secs(10)))
        .build();
    mailer
        .send(message)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

async fn send_webhook(
    config: &NotifyConfig,
    url: &str,
    n: &NotificationRow,
    invoice: &InvoiceRow,
) -> Result<(), String> {
    let body = serde_json::to_vec(&serde_json::json!({
        "event": "invoice.closed",
        "invoice": crate::api::invoices::answer(invoice.clone()),
    }))
    .map_err(|e| e.to_string())?;
    let mut request = reqwest::Client::new()
        .post(url)
        .timeout(Duration::from_secs(10))
        .header("content-type", "application/json")
        .header("x-faas-delivery", n.id.to_string());
    if let Some(secret) = &config.webhook_secret {
        request = request.header("x-faas-signature", signature(secret, &body));
    }
    let answer = request.body(body).send().await.map_err(|e| e.to_string())?;
    if answer.status().is_success() {
        Ok(())
    } else {
        Err(format!("the webhook answered {}", answer.status()))
    }
}

/// Sends what is due now; returns how many were sent.
pub async fn send_due(p: &Platform, now_us: i64) -> usize {
    let Ok(due) = p.store.due_notifications(now_us, 20) else {
        return 0;
    };
    let mut sent = 0;
    for n in due {
        let Ok(Some(invoice)) = p.store.invoice(&n.invoice) else {
            continue;
        };
        let outcome = match n.channel.as_str() {
            "email" => send_email(&p.config.notify, &n.target, &invoice).await,
            "webhook" => send_webhook(&p.config.notify, &n.target, &n, &invoice).await,
            other => Err(format!("no channel `{other}`")),
        };
        let recorded = match &outcome {
            Ok(()) => {
                sent += 1;
                p.store.notification_attempt(n.id, Ok(()))
            }
            Err(e) => {
                let attempt = n.attempts + 1;
                let next = (attempt < MAX_ATTEMPTS).then(|| {
                    let wait = FIRST_RETRY.as_micros() as i64 * (1i64 << (attempt - 1).min(20));
                    now_us + wait
                });
                tracing::warn!(
                    invoice = %n.invoice, channel = %n.channel,
                    "notification attempt {attempt} failed: {e}{}",
                    if next.is_some() { "; it will be retried" } else { "; given up" }
                );
                p.store.notification_attempt(n.id, Err((e, next)))
            }
        };
        if let Err(e) = recorded {
            tracing::warn!("cannot record a notification attempt: {e}");
        }
    }
    sent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_webhook_signature_is_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
