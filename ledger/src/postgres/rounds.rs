//! A shard's background rounds: the sequencer (under its lease) stamping committed events, and
//! the aggregator folding sequenced ones into the snapshots, set-wise, then vacuuming the
//! pending queue it empties.

use std::collections::{BTreeMap, HashMap};

use tokio_postgres::types::ToSql;

use super::{PgShard, VACUUM_PENDING_AFTER};
use crate::error::Result;
use crate::model::{Micros, Totals};
use crate::storage::{Groupings, SeriesKey, attributes, fold_round, round_deltas};

impl PgShard {
    pub async fn sequence(
        &self,
        holder: &str,
        lease_us: i64,
        max: usize,
        now: Micros,
    ) -> Result<Option<usize>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // The lease row stays locked until this round commits: a second sequencer waits for it,
        // then finds it renewed by this holder.
        let taken = tx
            .execute(
                "INSERT INTO leases (name, holder, expires_at) VALUES ('sequencer', $1, $2)
                 ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
                 WHERE leases.holder = EXCLUDED.holder OR leases.expires_at <= $3",
                &[&holder, &(now + lease_us), &now],
            )
            .await?;
        if taken == 0 {
            return Ok(None);
        }
        let last: i64 = tx
            .query_one(
                "SELECT value FROM progress WHERE name = 'sequenced' FOR UPDATE",
                &[],
            )
            .await?
            .get(0);
        let (ids, ats): (Vec<i64>, Vec<i64>) = tx
            .query(
                "SELECT id, effective_at FROM pending WHERE seq IS NULL ORDER BY id LIMIT $1",
                &[&(max as i64)],
            )
            .await?
            .iter()
            .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1)))
            .unzip();
        if !ids.is_empty() {
            let seqs: Vec<i64> = (0..ids.len() as i64).map(|i| last + 1 + i).collect();
            // By the whole primary key (id, effective_at): one index probe per event.
            tx.execute(
                "UPDATE events e SET seq = u.seq
                 FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS u(id, effective_at, seq)
                 WHERE e.id = u.id AND e.effective_at = u.effective_at AND e.seq IS NULL",
                &[&ids, &ats, &seqs],
            )
            .await?;
            tx.execute(
                "UPDATE pending p SET seq = u.seq FROM unnest($1::bigint[], $2::bigint[]) AS u(id, seq)
                 WHERE p.id = u.id",
                &[&ids, &seqs],
            )
            .await?;
            tx.execute(
                "UPDATE progress SET value = $1 WHERE name = 'sequenced'",
                &[&(last + ids.len() as i64)],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Some(ids.len()))
    }

    pub async fn aggregate(
        &self,
        groupings: &Groupings,
        interval: i64,
        max: usize,
    ) -> Result<usize> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // One aggregator at a time: the watermark row is locked until this round commits.
        let watermark: i64 = tx
            .query_one(
                "SELECT value FROM progress WHERE name = 'aggregated' FOR UPDATE",
                &[],
            )
            .await?
            .get(0);
        let rows = tx
            .query(
                "SELECT p.seq, e.account, a.kind, e.aux, e.amount, e.effective_at
                 FROM (SELECT id, effective_at, seq FROM pending WHERE seq > $1 ORDER BY seq LIMIT $2) p
                 CROSS JOIN LATERAL (SELECT account, aux, amount, effective_at FROM events
                                     WHERE id = p.id AND effective_at = p.effective_at) e
                 JOIN accounts a ON a.id = e.account
                 ORDER BY p.seq",
                &[&watermark, &(max as i64)],
            )
            .await?;
        let last = rows.last().map_or(watermark, |r| r.get(0));
        let deltas = round_deltas(
            rows.iter().map(|r| {
                (
                    r.get(1),
                    r.get::<_, &str>(2),
                    r.get::<_, &str>(3),
                    r.get(4),
                    r.get(5),
                )
            }),
            groupings,
            interval,
            |aux| Ok(attributes(aux)),
        )?;
        if !deltas.is_empty() {
            // Three statements a round, whatever its size: the series' snapshots from the
            // round's first boundary on, the one before each, and the new values of all.
            let mut acc = Vec::new();
            let mut grp = Vec::new();
            let mut vals = Vec::new();
            let mut first = Vec::new();
            for (k, d) in &deltas {
                acc.push(k.account);
                grp.push(k.grouping.as_str());
                vals.push(k.vals.as_str());
                first.push(*d.keys().next().unwrap_or(&0));
            }
            let params: [&(dyn ToSql + Sync); 4] = [&acc, &grp, &vals, &first];
            let mut existing: HashMap<SeriesKey, BTreeMap<Micros, Totals>> = HashMap::new();
            for r in tx
                .query(
                    "SELECT s.account, s.grouping, s.vals, s.boundary, s.debit, s.credit FROM snapshots s
                     JOIN unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[]) AS k(account, grouping, vals, first)
                       ON s.account = k.account AND s.grouping = k.grouping AND s.vals = k.vals AND s.boundary >= k.first",
                    &params,
                )
                .await?
            {
                existing
                    .entry(SeriesKey { account: r.get(0), grouping: r.get(1), vals: r.get(2) })
                    .or_default()
                    .insert(r.get(3), Totals { debit: r.get(4), credit: r.get(5) });
            }
            let mut base: HashMap<SeriesKey, Totals> = HashMap::new();
            for r in tx
                .query(
                    "SELECT k.account, k.grouping, k.vals, p.debit, p.credit
                     FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[]) AS k(account, grouping, vals, first)
                     JOIN LATERAL (SELECT debit, credit FROM snapshots s
                                   WHERE s.account = k.account AND s.grouping = k.grouping AND s.vals = k.vals
                                     AND s.boundary < k.first
                                   ORDER BY s.boundary DESC LIMIT 1) p ON true",
                    &params,
                )
                .await?
            {
                base.insert(
                    SeriesKey { account: r.get(0), grouping: r.get(1), vals: r.get(2) },
                    Totals { debit: r.get(3), credit: r.get(4) },
                );
            }
            let none = BTreeMap::new();
            let (mut a, mut g, mut v, mut b, mut debit, mut credit) = (
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
            );
            for (k, d) in &deltas {
                for (boundary, t) in
                    fold_round(base.get(k).copied(), existing.get(k).unwrap_or(&none), d)?
                {
                    a.push(k.account);
                    g.push(k.grouping.as_str());
                    v.push(k.vals.as_str());
                    b.push(boundary);
                    debit.push(t.debit);
                    credit.push(t.credit);
                }
            }
            tx.execute(
                "INSERT INTO snapshots (account, grouping, vals, boundary, debit, credit)
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[])
                 ON CONFLICT (account, grouping, vals, boundary)
                 DO UPDATE SET debit = EXCLUDED.debit, credit = EXCLUDED.credit",
                &[&a, &g, &v, &b, &debit, &credit],
            )
            .await?;
        }
        tx.execute(
            "UPDATE progress SET value = $1 WHERE name = 'aggregated'",
            &[&last],
        )
        .await?;
        let deleted = tx
            .execute("DELETE FROM pending WHERE seq <= $1", &[&last])
            .await?;
        tx.commit().await?;
        // `pending` is a queue: its dead rows would slow every balance until autovacuum came
        // by, so the aggregator vacuums it after every so many.
        let since = self
            .dead_pending
            .fetch_add(deleted, std::sync::atomic::Ordering::Relaxed)
            + deleted;
        if since >= VACUUM_PENDING_AFTER || (rows.len() < max && since >= 1_000) {
            self.dead_pending
                .store(0, std::sync::atomic::Ordering::Relaxed);
            client.batch_execute("VACUUM (ANALYZE) pending").await?;
        }
        Ok(rows.len())
    }
}
