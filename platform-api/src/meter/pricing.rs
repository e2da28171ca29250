//! Pricing: every usage record, at the tariff of its tenant, split over the tariff's versions
//! by the time each was in force over it, posted to the ledger as two events per piece: the
//! cost on the tenant's `usage` account and the quantity on its `metered` account, with the
//! service, env, release, resource, day and tariff version as auxiliary attributes. Keys are
//! derived from the record, the pricing round and the version, so posting again is "already
//! written". A version that takes effect back in time prices the records it covers again: the
//! old pieces are reversed and the new ones posted, by new events; no event is ever changed.

use std::collections::HashMap;
use std::sync::Arc;

use faas_ledger::{AccountId, Attributes, LedgerError, NewEvent};

use super::usage::{self, Resource};
use crate::Platform;
use crate::store::{Piece, Priced, TariffRow, UsageRecord};

/// Records priced per ledger batch.
pub const BATCH: usize = 10_000;

/// The ledger's account types billing posts to.
pub const COST_ACCOUNT: &str = "usage";
pub const QUANTITY_ACCOUNT: &str = "metered";

/// The version label events carry: `<tariff> v<N>`.
pub fn version_label(tariff: &str, version: u32) -> String {
    format!("{tariff} v{version}")
}

/// `YYYY-MM-DD` (UTC) of an instant.
pub fn day_of(us: i64) -> String {
    crate::api::ledger::rfc3339(us)[..10].to_owned()
}

/// The pieces of a record at a tariff: one per version in force over its interval, each its
/// share of the quantity by time (the last takes what division leaves). Usage before a
/// tariff's first version is priced at the first.
pub fn pieces(record: &UsageRecord, tariff: &TariffRow) -> Vec<Piece> {
    let Some(resource) = Resource::parse(&record.resource) else {
        return Vec::new();
    };
    let versions = &tariff.versions;
    let Some(first) = versions.first() else {
        return Vec::new();
    };
    let (from, to) = (record.from_us, record.to_us.max(record.from_us + 1));
    let whole = (to - from) as u128;
    let quantity = u128::try_from(record.quantity.max(0)).unwrap_or(0);
    let mut current = versions
        .iter()
        .rev()
        .find(|v| v.effective_from <= from)
        .unwrap_or(first);
    let mut out = Vec::new();
    let mut start = from;
    let mut left = quantity;
    let changes = versions
        .iter()
        .filter(|v| v.effective_from > from && v.effective_from < to);
    let mut segments = Vec::new();
    for v in changes {
        segments.push((current, start, v.effective_from));
        current = v;
        start = v.effective_from;
    }
    segments.push((current, start, to));
    let last = segments.len() - 1;
    for (i, (v, a, b)) in segments.into_iter().enumerate() {
        let share = if i == last {
            left
        } else {
            quantity * (b - a) as u128 / whole
        };
        left -= share;
        out.push(Piece {
            version: v.version,
            from_us: a,
            quantity_micros: resource.micros(share),
            cost: usage::cost(share, resource.price(&v.prices), resource.base_per_price()),
        });
    }
    out
}

/// A record's reference in charges' keys: its start (µs, 16 digits) and its key in 128 bits
/// (hex). Short, so that the ledger's key index stays small (the whole key is in the cost event's
/// `info`), and in time order, so that a batch's keys land together in that index instead of
/// all over it.
pub fn record_ref(record: &UsageRecord) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(record.key.as_bytes());
    format!(
        "{:016}:{}",
        record.from_us.max(0),
        hex::encode(&digest[..16])
    )
}

/// The ledger events of pieces of a record: `sign` 1 posts them, -1 reverses them.
fn events(
    record: &UsageRecord,
    tariff: &TariffRow,
    pieces: &[Piece],
    round: &str,
    sign: i64,
    out: &mut Vec<NewEvent>,
) {
    let reference = record_ref(record);
    for p in pieces {
        let aux: Attributes = [
            ("service", record.service.clone()),
            ("env", record.env.clone()),
            ("release", record.release.clone()),
            ("resource", record.resource.clone()),
            ("day", day_of(p.from_us)),
            ("version", version_label(&tariff.name, p.version)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let kind = if sign > 0 { "charge" } else { "reverse" };
        // Unique per account: the same key names the cost and the quantity of one piece.
        let key = format!("{kind}:{reference}:{round}v{}", p.version);
        // The record's whole key on the cost; the quantity is found by the same key.
        let info = serde_json::json!({ "record": record.key });
        let tenant = ("tenant".to_owned(), record.tenant.clone());
        for (kind, key_attrs, amount, info) in [
            (
                COST_ACCOUNT,
                vec![
                    tenant.clone(),
                    ("currency".to_owned(), tariff.currency.clone()),
                ],
                p.cost,
                info,
            ),
            (
                QUANTITY_ACCOUNT,
                vec![tenant.clone()],
                p.quantity_micros,
                serde_json::Value::Null,
            ),
        ] {
            if amount == 0 {
                continue;
            }
            out.push(NewEvent {
                account: AccountId {
                    kind: kind.to_owned(),
                    key: key_attrs.into_iter().collect(),
                },
                aux: aux.clone(),
                amount: sign * amount,
                effective_at: p.from_us,
                idempotency_key: key.clone(),
                info,
            });
        }
    }
}

/// The tariffs, read once per pricing run.
#[derive(Default)]
struct Tariffs {
    by_name: HashMap<String, Option<TariffRow>>,
    by_tenant: HashMap<String, Option<String>>,
}

impl Tariffs {
    fn named(&mut self, p: &Platform, name: &str) -> Option<TariffRow> {
        self.by_name
            .entry(name.to_owned())
            .or_insert_with(|| p.store.tariff(name).ok().flatten())
            .clone()
    }

    fn of_tenant(&mut self, p: &Platform, tenant: &str) -> Option<TariffRow> {
        let name = self
            .by_tenant
            .entry(tenant.to_owned())
            .or_insert_with(|| p.store.tenant_tariff(tenant).ok().flatten().map(|t| t.0))
            .clone()?;
        self.named(p, &name)
    }
}

const SEEN: &str = "pricing_versions_seen";

/// Prices again what back-dated versions cover, then every record not priced yet. Returns how
/// many records were priced (anew or for the first time).
///
/// Three stages overlap, each on its own thread: one batch is read and priced while the one
/// before has its charges written to the ledger and the one before that is marked priced. A
/// batch is marked only once its charges are written, so a crash in between leaves it
/// unpriced, and pricing it again finds its charges "already written".
pub async fn price_pending(p: &Arc<Platform>) -> anyhow::Result<usize> {
    let _one = p.meter.pricing.lock().await;
    let mut tariffs = Tariffs::default();
    let mut priced = 0;
    let seen: i64 = p
        .store
        .meta(SEEN)?
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let added = p.store.tariff_versions_after(seen)?;
    for (_, tariff, from) in &added {
        if let Some(t) = tariffs.named(p, tariff) {
            priced += reprice(p, &t, *from).await?;
        }
    }
    if let Some((rowid, _, _)) = added.last() {
        p.store.set_meta(SEEN, &rowid.to_string())?;
    }
    let mut after = 0;
    let mut stages = Stages::default();
    loop {
        let records = p.store.unpriced_usage(after, BATCH)?;
        let Some(last) = records.last() else { break };
        after = last.id;
        let mut batch = Vec::with_capacity(records.len() * 2);
        let mut done = Vec::with_capacity(records.len());
        for r in &records {
            let Some(t) = tariffs.of_tenant(p, &r.tenant) else {
                // No tariff at all yet: the record waits for one.
                continue;
            };
            let pieces = pieces(r, &t);
            events(r, &t, &pieces, "", 1, &mut batch);
            done.push((
                r.id,
                Priced {
                    tariff: t.name.clone(),
                    generation: 0,
                    pieces,
                },
            ));
        }
        if !done.is_empty() {
            priced += stages.next(p, batch, done).await?;
        }
    }
    priced += stages.finish(p).await?;
    Ok(priced)
}

type Done = Vec<(i64, Priced)>;

/// The ledger write and the marking in flight.
#[derive(Default)]
struct Stages {
    posting: Option<tokio::task::JoinHandle<anyhow::Result<Done>>>,
    marking: Option<tokio::task::JoinHandle<anyhow::Result<usize>>>,
}

impl Stages {
    /// Hands a priced batch on: waits for the previous write, starts its marking (after the
    /// marking before it) and this batch's write. Returns how many records were marked.
    async fn next(
        &mut self,
        p: &Arc<Platform>,
        batch: Vec<NewEvent>,
        done: Done,
    ) -> anyhow::Result<usize> {
        let marked = self.advance(p).await?;
        let q = p.clone();
        let rt = tokio::runtime::Handle::current();
        self.posting = Some(tokio::task::spawn_blocking(move || {
            rt.block_on(post(&q, &batch))?;
            Ok(done)
        }));
        Ok(marked)
    }

    /// Moves the written batch on to marking; returns how many records the marking before it
    /// marked.
    async fn advance(&mut self, p: &Arc<Platform>) -> anyhow::Result<usize> {
        let Some(posting) = self.posting.take() else {
            return Ok(0);
        };
        let done = posting.await??;
        let marked = match self.marking.take() {
            Some(m) => m.await??,
            None => 0,
        };
        let q = p.clone();
        self.marking = Some(tokio::task::spawn_blocking(move || {
            q.store.set_priced(&done)?;
            Ok(done.len())
        }));
        Ok(marked)
    }

    /// Waits for everything in flight.
    async fn finish(mut self, p: &Arc<Platform>) -> anyhow::Result<usize> {
        let marked = self.advance(p).await?;
        Ok(marked
            + match self.marking.take() {
                Some(m) => m.await??,
                None => 0,
            })
    }
}

/// Prices again the records of `tariff` that end after `from`, where their pieces changed.
async fn reprice(p: &Platform, tariff: &TariffRow, from: i64) -> anyhow::Result<usize> {
    let mut after = 0;
    let mut count = 0;
    loop {
        let records = p
            .store
            .priced_usage_since(&tariff.name, from, after, BATCH)?;
        let Some(last) = records.last() else {
            return Ok(count);
        };
        after = last.id;
        let mut batch = Vec::new();
        let mut done = Vec::new();
        for r in &records {
            let Some(old) = &r.priced else { continue };
            let new = pieces(r, tariff);
            if new == old.pieces {
                continue;
            }
            let generation = old.generation + 1;
            let round = format!("r{generation}:");
            events(r, tariff, &old.pieces, &round, -1, &mut batch);
            events(r, tariff, &new, &round, 1, &mut batch);
            done.push((
                r.id,
                Priced {
                    tariff: tariff.name.clone(),
                    generation,
                    pieces: new,
                },
            ));
        }
        if !done.is_empty() {
            post(p, &batch).await?;
            p.store.set_priced(&done)?;
            count += done.len();
        }
    }
}

async fn post(p: &Platform, batch: &[NewEvent]) -> anyhow::Result<()> {
    match p.ledger.write(batch).await {
        Ok(_) => Ok(()),
        Err(e @ LedgerError::IdempotencyConflict(_)) => Err(anyhow::anyhow!(
            "the ledger holds charges of these records that differ from their pricing now ({e}); they stay unpriced"
        )),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{PriceRow, TariffVersionRow};

    const S: i64 = 1_000_000;

    fn version(version: u32, from_s: i64, vcpu: i64) -> TariffVersionRow {
        TariffVersionRow {
            version,
            effective_from: from_s * S,
            prices: PriceRow {
                vcpu_second: vcpu,
                ..Default::default()
            },
            created_at: String::new(),
        }
    }

    fn tariff(versions: Vec<TariffVersionRow>) -> TariffRow {
        TariffRow {
            name: "standard".into(),
            currency: "EUR".into(),
            default: true,
            archived_at: None,
            tenants: vec![],
            versions,
        }
    }

    fn cpu_record(from_s: i64, to_s: i64, cpu_s: i64) -> UsageRecord {
        UsageRecord {
            id: 1,
            ..UsageRecord::example(
                "usage:k",
                "vcpu",
                from_s * S,
                to_s * S,
                cpu_s * 1_000_000_000,
            )
        }
    }

    #[test]
    fn a_price_change_inside_a_record_splits_it_at_the_instant() {
        // 10 vCPU-s over [100 s, 110 s); the price goes from 0.00002 to 0.00003 at 104 s.
        let t = tariff(vec![version(1, 0, 20_000), version(2, 104, 30_000)]);
        let got = pieces(&cpu_record(100, 110, 10), &t);
        assert_eq!(
            got,
            [
                Piece {
                    version: 1,
                    from_us: 100 * S,
                    quantity_micros: 4_000_000,
                    cost: 80_000
                },
                Piece {
                    version: 2,
                    from_us: 104 * S,
                    quantity_micros: 6_000_000,
                    cost: 180_000
                },
            ]
        );
        // Before the first version: priced at the first.
        assert_eq!(
            pieces(&cpu_record(0, 1, 1), &tariff(vec![version(1, 50, 7)]))[0].cost,
            7
        );
    }

    #[test]
    fn events_are_keyed_by_record_round_and_version() {
        let t = tariff(vec![version(1, 0, 20_000)]);
        let r = cpu_record(100, 110, 10);
        let mut out = Vec::new();
        events(&r, &t, &pieces(&r, &t), "", 1, &mut out);
        assert_eq!(out.len(), 2, "the cost and the quantity");
        let reference = record_ref(&r);
        assert_eq!(reference.len(), 16 + 1 + 32);
        assert!(reference.starts_with("0000000100000000:"), "{reference}");
        assert_eq!(out[0].idempotency_key, format!("charge:{reference}:v1"));
        assert_eq!(out[0].info["record"], "usage:k");
        assert_eq!(out[0].amount, 200_000);
        assert_eq!(out[1].amount, 10_000_000);
        assert_eq!(out[0].aux["day"], "1970-01-01");
        assert_eq!(out[0].aux["version"], "standard v1");
        let mut back = Vec::new();
        events(&r, &t, &pieces(&r, &t), "r1:", -1, &mut back);
        assert_eq!(
            back[0].idempotency_key,
            format!("reverse:{reference}:r1:v1")
        );
        assert_eq!(back[0].amount, -200_000);
    }
}
