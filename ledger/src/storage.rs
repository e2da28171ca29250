//! The storage seam: what a ledger backend keeps and answers, in terms already checked against
//! the configuration by [`crate::Ledger`]. SQLite ([`crate::sqlite`]) implements it; a backend
//! passes the same behaviour suite (`ledger/tests/behaviour.rs`).

use std::collections::BTreeMap;

use crate::error::Result;
use crate::model::{Attributes, Event, EventPage, LockMode, Micros, State, Totals, Written};

/// An event checked and made canonical: JSON texts with sorted keys, the hash of its content.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub kind: String,
    /// The key attributes as canonical JSON.
    pub key: String,
    /// The auxiliary attributes as canonical JSON.
    pub aux: String,
    pub amount: i64,
    pub effective_at: Micros,
    pub idempotency_key: String,
    pub info: String,
    /// SHA-256 of everything above but the key: what "the same content" means.
    pub hash: Vec<u8>,
}

/// A write that needs a lock held by `holder`.
#[derive(Debug, Clone)]
pub struct LockCheck {
    pub kind: String,
    pub key: String,
    pub holder: String,
}

/// An account's groupings per type: for each, the lists of auxiliary attributes aggregates are
/// kept by (the empty list, no grouping, first).
pub type Groupings = BTreeMap<String, Vec<Vec<String>>>;

/// Which events a query reads.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub kind: String,
    /// Key attributes that must match (a subset).
    pub key: Attributes,
    /// Auxiliary attributes that must match.
    pub aux: Attributes,
    pub from: Micros,
    pub to: Micros,
    /// Only events with an id above this (the cursor).
    pub after: i64,
    pub limit: usize,
}

#[async_trait::async_trait]
pub trait Storage: Send + Sync {
    /// Writes a batch atomically: every event, or (on a conflict or a missing lock) none.
    async fn write(
        &self,
        batch: &[Prepared],
        lock: Option<&LockCheck>,
        now: Micros,
    ) -> Result<Vec<Written>>;

    /// One round of the sequencer: when `holder` holds (or takes) the sequencer's lease, stamps
    /// up to `max` committed, unstamped events with the next sequence numbers in commit order.
    /// None when another holder's lease is in force.
    async fn sequence(
        &self,
        holder: &str,
        lease_us: i64,
        max: usize,
        now: Micros,
    ) -> Result<Option<usize>>;

    /// One round of aggregation: folds up to `max` sequenced events past the watermark into
    /// the snapshots of every grouping, and moves the watermark. Returns how many it folded.
    async fn aggregate(&self, groupings: &Groupings, interval: i64, max: usize) -> Result<usize>;

    /// Debit and credit of an account's events effective before `at`, per value of
    /// `grouping` (auxiliary attributes, an allowed grouping or none), from the snapshots, the
    /// events after them and the events not yet aggregated.
    async fn totals(
        &self,
        kind: &str,
        key: &str,
        grouping: &[String],
        at: Micros,
    ) -> Result<Vec<(Attributes, Totals)>>;

    /// The same from the raw events alone (the reference the snapshots are held to).
    async fn raw_totals(
        &self,
        kind: &str,
        key: &str,
        grouping: &[String],
        at: Micros,
    ) -> Result<Vec<(Attributes, Totals)>>;

    /// Events effective in a period, in id order, a page at a time. `account_key` is the
    /// canonical key when the filter names every key attribute (one account: one shard).
    async fn events(&self, filter: &EventFilter, account_key: Option<&str>) -> Result<EventPage>;

    /// How many shards stamp their own sequence (1 unless sharded).
    fn shards(&self) -> usize {
        1
    }

    /// Sequenced events of `shard` after `after`, in sequence order.
    async fn export(&self, shard: usize, after: u64, limit: usize) -> Result<Vec<Event>>;

    /// Housekeeping the background task runs now and then (PostgreSQL: the coming months'
    /// partitions, transactions left in doubt by a crash).
    async fn maintain(&self, _now: Micros) -> Result<()> {
        Ok(())
    }

    async fn lock(
        &self,
        kind: &str,
        key: &str,
        holder: &str,
        mode: LockMode,
        lease_us: i64,
        now: Micros,
    ) -> Result<()>;

    /// Releases the holder's lock; false when it held none.
    async fn unlock(&self, kind: &str, key: &str, holder: &str) -> Result<bool>;

    async fn state(&self, kind: &str, key: &str) -> Result<State>;

    /// Writes a state if its version is still `expected`; returns the new version.
    async fn put_state(
        &self,
        kind: &str,
        key: &str,
        expected: u64,
        value: &serde_json::Value,
    ) -> Result<u64>;
}

/// Attributes from their canonical JSON (empty when it is not).
pub fn attributes(text: &str) -> Attributes {
    serde_json::from_str(text).unwrap_or_default()
}

/// Adds an amount to totals (a debit or a credit by its sign), refusing an overflow.
pub fn add(totals: &mut Totals, amount: i64) -> Result<()> {
    *totals = checked_sum(*totals, Totals::of(amount))?;
    Ok(())
}

/// Sums event rows (amount, auxiliary JSON) into the groups of `grouping`.
pub fn group_rows(
    rows: impl Iterator<Item = (i64, String)>,
    grouping: &[String],
    groups: &mut BTreeMap<Attributes, Totals>,
) -> Result<()> {
    for (amount, aux) in rows {
        let g = if grouping.is_empty() {
            Attributes::new()
        } else {
            project(&attributes(&aux), grouping)
        };
        add(groups.entry(g).or_default(), amount)?;
    }
    Ok(())
}

/// The value of each grouping attribute in an event's auxiliary attributes ("" when absent).
pub fn project(aux: &Attributes, grouping: &[String]) -> Attributes {
    grouping
        .iter()
        .map(|a| (a.clone(), aux.get(a).cloned().unwrap_or_default()))
        .collect()
}

/// The start of the interval after the one `t` falls in: the boundary whose snapshot first
/// includes an event effective at `t`.
pub fn boundary_after(t: Micros, interval_s: i64) -> Micros {
    let step = interval_s * 1_000_000;
    t.div_euclid(step) * step + step
}

/// The start of the UTC day `t` falls in. Every allowed interval divides a day, so no
/// aggregated event effective before `t` whose group has no snapshot at or before `t` lies
/// earlier than this (each aggregated event has a snapshot at its own boundary).
pub fn day_floor(t: Micros) -> Micros {
    let day = 86_400 * 1_000_000i64;
    t.div_euclid(day) * day
}

/// What one snapshot series is kept by: an account, a grouping and the grouping's values.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesKey {
    pub account: i64,
    /// The grouping's attributes joined by `,` ("" for none).
    pub grouping: String,
    /// The grouping's values as canonical JSON.
    pub vals: String,
}

/// A round of aggregation's sums: per series, per boundary.
pub type Deltas = BTreeMap<SeriesKey, BTreeMap<Micros, Totals>>;

/// The snapshots of one series after a round: every existing one at or after the round's first
/// boundary gains the round's amounts effective before it, and each boundary the round touched
/// gets one (the nearest earlier snapshot, plus the round's amounts up to it).
///
/// `base` is the latest snapshot before the round's first boundary; `existing`, the series'
/// snapshots from that boundary on. A snapshot is cumulative, so where none exists between
/// two boundaries no aggregated event fell between them.
pub fn fold_round(
    base: Option<Totals>,
    existing: &BTreeMap<Micros, Totals>,
    deltas: &BTreeMap<Micros, Totals>,
) -> Result<Vec<(Micros, Totals)>> {
    let mut boundaries: Vec<Micros> = existing.keys().chain(deltas.keys()).copied().collect();
    boundaries.sort_unstable();
    boundaries.dedup();
    let mut before = base.unwrap_or_default();
    let mut round = Totals::default();
    let mut out = Vec::with_capacity(boundaries.len());
    for b in boundaries {
        if let Some(e) = existing.get(&b) {
            before = *e;
        }
        if let Some(d) = deltas.get(&b) {
            round = checked_sum(round, *d)?;
        }
        out.push((b, checked_sum(before, round)?));
    }
    Ok(out)
}

fn checked_sum(a: Totals, b: Totals) -> Result<Totals> {
    Ok(Totals {
        debit: a
            .debit
            .checked_add(b.debit)
            .ok_or(crate::LedgerError::Overflow)?,
        credit: a
            .credit
            .checked_add(b.credit)
            .ok_or(crate::LedgerError::Overflow)?,
    })
}

/// Sums a round's events into deltas per series and boundary: one entry per grouping of the
/// event's type. `rows` are (account, type, auxiliary attributes' handle, amount, effective
/// time); `aux_of` reads a handle's attributes (its JSON, or an interned id's). The events are
/// summed per account, handle and boundary first, so each distinct combination is projected
/// onto the groupings once, however many events share it.
pub fn round_deltas<'a, A: std::hash::Hash + Eq>(
    rows: impl Iterator<Item = (i64, &'a str, A, i64, Micros)>,
    groupings: &Groupings,
    interval_s: i64,
    mut aux_of: impl FnMut(&A) -> Result<Attributes>,
) -> Result<Deltas> {
    let none: Vec<Vec<String>> = vec![Vec::new()];
    let mut sums: std::collections::HashMap<(i64, &'a str, A, Micros), Totals> =
        std::collections::HashMap::new();
    for (account, kind, aux, amount, effective_at) in rows {
        let boundary = boundary_after(effective_at, interval_s);
        let d = sums.entry((account, kind, aux, boundary)).or_default();
        *d = checked_sum(*d, Totals::of(amount))?;
    }
    let mut deltas = Deltas::new();
    for ((account, kind, aux, boundary), sum) in sums {
        let aux = aux_of(&aux)?;
        for grouping in groupings.get(kind).unwrap_or(&none) {
            let key = SeriesKey {
                account,
                grouping: grouping.join(","),
                vals: serde_json::to_string(&project(&aux, grouping)).unwrap_or_default(),
            };
            let d = deltas.entry(key).or_default().entry(boundary).or_default();
            *d = checked_sum(*d, sum)?;
        }
    }
    Ok(deltas)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(debit: i64) -> Totals {
        Totals { debit, credit: 0 }
    }

    #[test]
    fn a_round_adds_itself_to_later_snapshots_and_makes_its_own() {
        // Snapshots at 10 (5) and 30 (8); the round adds 1 at 20 and 2 at 30 and 4 at 40.
        let existing = BTreeMap::from([(30, t(8))]);
        let deltas = BTreeMap::from([(20, t(1)), (30, t(2)), (40, t(4))]);
        let out = fold_round(Some(t(5)), &existing, &deltas).unwrap();
        assert_eq!(out, vec![(20, t(6)), (30, t(11)), (40, t(15))]);
        // A first round: from nothing.
        let out = fold_round(None, &BTreeMap::new(), &BTreeMap::from([(10, t(3))])).unwrap();
        assert_eq!(out, vec![(10, t(3))]);
    }
}
