//! Invoices closed from the ledger on the real daemon: idempotent, late usage landing on the
//! next invoice as an adjustment, the total posted to the receivable account; the SMTP sink of
//! the test setup receives the mail with the amount due, a refused send is retried, and a
//! webhook is signed with HMAC-SHA256. Members see their own invoices; closing is admin only.
//! The case runs with the ledger on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Daemon, PgDatabase, wait_until};
use serde_json::{Value, json};

/// The SMTP sink scripts/setup-test-env.sh starts.
const SMTP: &str = "127.0.0.1:2525";
const MAIL_DIR: &str = "/var/lib/faas-test/mail";
const SECRET: &str = "whsec-test";

fn tenant(prefix: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{n}@example.com")
}

fn charge(d: &Daemon, tenant: &str, day: &str, cost: i64, key: &str) {
    let aux = json!({ "service": "api", "env": "prod", "release": "r1", "resource": "vcpu", "day": day, "version": "standard v1" });
    let at = format!("{day}T12:00:00Z");
    let (status, body) = d.post(
        "/v1/ledger/batches",
        json!({ "events": [
            { "account": { "type": "usage", "key": { "tenant": tenant, "currency": "EUR" } }, "aux": aux,
              "amount": cost, "effective_at": at, "idempotency_key": key },
            { "account": { "type": "metered", "key": { "tenant": tenant } }, "aux": aux,
              "amount": cost * 10, "effective_at": at, "idempotency_key": key },
        ] }),
    );
    assert_eq!(status, 200, "{body}");
}

fn close(d: &Daemon, month: &str, tenant: &str) -> Value {
    let (status, body) = d.post(
        "/v1/invoices/close",
        json!({ "month": month, "tenant": tenant }),
    );
    assert_eq!(status, 200, "{body}");
    body
}

/// What the webhook received: each delivery's signature header and body.
type Deliveries = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A webhook receiver on loopback: answers 500 to the first delivery, 200 after; keeps what
/// it received with its signature.
fn webhook() -> (String, Deliveries) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got: Deliveries = Arc::default();
    let seen = got.clone();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut s) = stream else { continue };
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Headers, then the body of the length they say.
            let (head, mut body) = loop {
                let k = s.read(&mut chunk).unwrap_or(0);
                if k == 0 {
                    break (String::new(), Vec::new());
                }
                buf.extend_from_slice(&chunk[..k]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break (
                        String::from_utf8_lossy(&buf[..i]).to_string(),
                        buf[i + 4..].to_vec(),
                    );
                }
            };
            let header = |name: &str| {
                head.lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                    })
                    .unwrap_or_default()
            };
            let len: usize = header("content-length").parse().unwrap_or(0);
            while body.len() < len {
                let k = s.read(&mut chunk).unwrap_or(0);
                if k == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..k]);
            }
            let status = if n == 0 {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            seen.lock()
                .unwrap()
                .push((header("x-faas-signature"), body));
            let _ = s.write_all(
                format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .as_bytes(),
            );
        }
    });
    (url, got)
}

fn mails_to(address: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(MAIL_DIR).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.starts_with('.') && name.ends_with(&format!("-{address}.eml")) {
            out.push(std::fs::read_to_string(e.path()).unwrap());
        }
    }
    out
}

#[test]
fn invoices_close_once_carry_late_usage_and_are_sent() {
    invoices(None);
}

#[test]
fn invoices_close_once_carry_late_usage_and_are_sent_with_the_ledger_on_postgresql() {
    invoices(Some(PgDatabase::create()));
}

/// The case, with the ledger on SQLite in the daemon's data directory, or on `pg`.
fn invoices(pg: Option<PgDatabase>) {
    let (hook, received) = webhook();
    let ledger = pg.as_ref().map(PgDatabase::url);
    let mut env = vec![
        ("FAAS_PLATFORM_METER_INTERVAL", "off"),
        ("FAAS_PLATFORM_SMTP_RELAY", SMTP),
        ("FAAS_PLATFORM_BILLING_WEBHOOK", &hook),
        ("FAAS_PLATFORM_BILLING_WEBHOOK_SECRET", SECRET),
    ];
    if let Some(url) = &ledger {
        env.push(("FAAS_PLATFORM_LEDGER", url));
    }
    let d = Daemon::start_with(&env);
    let (status, body) = d.post(
        "/v1/tariffs",
        json!({ "name": "standard", "currency": "EUR", "effective_from": "2026-01-01T00:00:00Z",
                "prices": { "vcpu_second": "0.00002" } }),
    );
    assert_eq!(status, 201, "{body}");
    // The first send to this tenant is refused by the sink (451): it must be retried.
    let ada = tenant("refuse-once");
    charge(&d, &ada, "2026-09-10", 1_234_567_890, "sep-1");
    charge(&d, &ada, "2026-09-20", 1_000_000_000, "sep-2");

    let first = close(&d, "2026-09", &ada);
    assert_eq!(first["closed_now"], 1, "{first}");
    let inv = &first["invoices"][0];
    assert_eq!(inv["charges_nanos"], 2_234_567_890i64);
    assert_eq!(inv["adjustment_nanos"], 0);
    assert_eq!(inv["amount_due"], "2.23");
    // Closing again: the same invoice, nothing new.
    let again = close(&d, "2026-09", &ada);
    assert_eq!(again["closed_now"], 0);
    assert_eq!(again["invoices"][0], *inv);

    // September usage that arrives after its close lands on October's invoice.
    charge(&d, &ada, "2026-09-29", 500_000_000, "sep-late");
    charge(&d, &ada, "2026-10-03", 2_000_000_000, "oct-1");
    let oct = close(&d, "2026-10", &ada);
    let oct = &oct["invoices"][0];
    assert_eq!(oct["charges_nanos"], 2_000_000_000i64, "{oct}");
    assert_eq!(oct["adjustment_nanos"], 500_000_000, "{oct}");
    assert_eq!(oct["amount_due"], "2.50");
    // August usage arriving now: August is not closed after later months; November carries it.
    charge(&d, &ada, "2026-08-15", 300_000_000, "aug-late");
    let aug = close(&d, "2026-08", &ada);
    assert_eq!(aug["invoices"], json!([]), "{aug}");
    let nov = close(&d, "2026-11", &ada);
    assert_eq!(nov["invoices"][0]["charges_nanos"], 0, "{nov}");
    assert_eq!(nov["invoices"][0]["adjustment_nanos"], 300_000_000, "{nov}");
    let (_, list) = d.get(&format!("/v1/invoices?tenant={ada}"));
    assert_eq!(list.as_array().unwrap().len(), 3, "{list}");

    // The totals are what the tenant owes, on its receivable account.
    let (status, owed) = d.post(
        "/v1/ledger/balances",
        json!({ "account": { "type": "receivable", "key": { "tenant": ada, "currency": "EUR" } } }),
    );
    assert_eq!(status, 200, "{owed}");
    assert_eq!(
        owed["balances"][0]["balance"],
        2_234_567_890i64 + 2_500_000_000 + 300_000_000
    );

    // The mail: refused once, retried, received with the amount due.
    wait_until("the three invoices mailed", Duration::from_secs(30), || {
        mails_to(&ada).len() == 3
    });
    let mails = mails_to(&ada).join("\n");
    assert!(mails.contains("Amount due: 2.23 EUR"), "{mails}");
    assert!(mails.contains("Amount due: 2.50 EUR"), "{mails}");
    assert!(mails.contains("adjustment 0.5 EUR"), "{mails}");
    wait_until(
        "the webhook retried and delivered",
        Duration::from_secs(30),
        || received.lock().unwrap().len() >= 4,
    );
    let (_, sent) = d.get(&format!("/v1/notifications?tenant={ada}"));
    let sent = sent.as_array().unwrap();
    assert!(sent.iter().all(|n| n["state"] == "sent"), "{sent:?}");
    let attempts: Vec<i64> = sent
        .iter()
        .filter(|n| n["channel"] == "email")
        .map(|n| n["attempts"].as_i64().unwrap())
        .collect();
    assert_eq!(
        attempts,
        [2, 1, 1],
        "the first refused once, then sent: {sent:?}"
    );
    for (signature, body) in received.lock().unwrap().iter() {
        assert_eq!(*signature, sign(SECRET, body));
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["event"], "invoice.closed");
    }

    // Members see their own invoices; closing is for admins; a month not over is refused.
    let (_, t) = d.post("/v1/tokens", json!({ "tenant": ada, "role": "member" }));
    let member = t["token"].as_str().unwrap();
    let (status, own) = d.get_as(member, "/v1/invoices");
    assert_eq!((status, own.as_array().map(Vec::len)), (200, Some(3)));
    let (status, _) = d.get_as(member, "/v1/invoices?tenant=bob@example.com");
    assert_eq!(status, 403);
    let (status, _) = d.post_as(member, "/v1/invoices/close", json!({ "month": "2026-10" }));
    assert_eq!(status, 403);
    let (status, p) = d.post("/v1/invoices/close", json!({ "month": "2999-01" }));
    assert_eq!(
        (status, p["code"].as_str()),
        (409, Some("month-not-over")),
        "{p}"
    );
    let (status, p) = d.post("/v1/invoices/close", json!({ "month": "2026-13" }));
    assert_eq!(
        (status, p["code"].as_str()),
        (400, Some("invalid-month")),
        "{p}"
    );
}

fn sign(secret: &str, body: &[u8]) -> String {
    faas_platform::billing::notify::signature(secret, body)
}
