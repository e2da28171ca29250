//! The ledger's tables on one PostgreSQL shard, and the monthly partitions of its events.
//!
//! Events are partitioned by the month they are effective in. A partitioned table's unique
//! indexes must hold the partition key, so what must be unique across months lives beside it:
//! idempotency keys in `idempotency` (per account), ids in a sequence. Events dated where no
//! partition exists yet land in the default partition; creating a month's partition moves its
//! rows out of the default one first, so a month can always be created, late or early. The
//! events not yet aggregated are listed in `pending` as well, so that the sequencer, the
//! aggregator and a balance find them without scanning the events.

use deadpool_postgres::Client;

use crate::error::Result;
use crate::model::Micros;

pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS accounts (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    UNIQUE (kind, key)
);
CREATE SEQUENCE IF NOT EXISTS events_id_seq;
CREATE TABLE IF NOT EXISTS events (
    id BIGINT NOT NULL DEFAULT nextval('events_id_seq'),
    seq BIGINT,
    account BIGINT NOT NULL,
    aux TEXT NOT NULL,
    amount BIGINT NOT NULL,
    effective_at BIGINT NOT NULL,
    idem TEXT NOT NULL,
    info TEXT NOT NULL,
    PRIMARY KEY (id, effective_at)
) PARTITION BY RANGE (effective_at);
CREATE TABLE IF NOT EXISTS events_default PARTITION OF events DEFAULT;
CREATE INDEX IF NOT EXISTS events_by_account ON events (account, effective_at) INCLUDE (seq, amount, aux);
CREATE INDEX IF NOT EXISTS events_unsequenced ON events (id) WHERE seq IS NULL;
CREATE INDEX IF NOT EXISTS events_by_seq ON events (seq) WHERE seq IS NOT NULL;
CREATE TABLE IF NOT EXISTS idempotency (
    account BIGINT NOT NULL,
    idem TEXT NOT NULL,
    hash BYTEA NOT NULL,
    event_id BIGINT NOT NULL,
    PRIMARY KEY (account, idem)
);
-- The events not aggregated yet (not even sequenced, while `seq` is NULL): few while the
-- aggregator keeps up, so every query of them is quick whatever plan the planner picks.
CREATE TABLE IF NOT EXISTS pending (
    id BIGINT PRIMARY KEY,
    effective_at BIGINT NOT NULL,
    account BIGINT NOT NULL,
    seq BIGINT
);
CREATE INDEX IF NOT EXISTS pending_by_account ON pending (account, effective_at);
CREATE INDEX IF NOT EXISTS pending_by_seq ON pending (seq);
ALTER TABLE pending SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000);
CREATE TABLE IF NOT EXISTS snapshots (
    account BIGINT NOT NULL,
    grouping TEXT NOT NULL,
    vals TEXT NOT NULL,
    boundary BIGINT NOT NULL,
    debit BIGINT NOT NULL,
    credit BIGINT NOT NULL,
    PRIMARY KEY (account, grouping, vals, boundary)
);
CREATE TABLE IF NOT EXISTS progress (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO progress (name, value) VALUES ('sequenced', 0), ('aggregated', 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS locks (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    holder TEXT NOT NULL,
    mode TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (kind, key, holder)
);
CREATE TABLE IF NOT EXISTS states (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    version BIGINT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE TABLE IF NOT EXISTS decisions (gid TEXT PRIMARY KEY, at TIMESTAMPTZ NOT NULL DEFAULT now());
"#;

/// The advisory lock that serialises schema changes (creating tables, attaching partitions).
const SCHEMA_LOCK: i64 = 0x6661_6173_6c65_6467; // "faasledg"

/// Creates the tables when they are missing; safe to run from several processes at once.
pub async fn create(client: &mut Client) -> Result<()> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await?;
    tx.batch_execute(SCHEMA).await?;
    tx.commit().await?;
    Ok(())
}

/// Days since 1970-01-01 → (year, month) of the proleptic Gregorian calendar.
fn civil(days: i64) -> (i64, u32) {
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month)
}

/// (year, month) → days since 1970-01-01 of its first day.
fn days_from_civil(year: i64, month: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

const DAY_US: i64 = 86_400 * 1_000_000;

/// The month `t` falls in, as (year, month, first microsecond, first microsecond of the next).
pub fn month_of(t: Micros) -> (i64, u32, Micros, Micros) {
    let (y, m) = civil(t.div_euclid(DAY_US));
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    (
        y,
        m,
        days_from_civil(y, m) * DAY_US,
        days_from_civil(ny, nm) * DAY_US,
    )
}

/// Makes sure the partitions of the month before `now` and of the `ahead` months after it
/// exist. Returns how many it created.
pub async fn ensure_partitions(client: &mut Client, now: Micros, ahead: u32) -> Result<usize> {
    let (_, _, this_month, _) = month_of(now);
    let mut start = month_of(this_month - 1).2;
    let mut created = 0;
    for _ in 0..ahead + 2 {
        let (y, m, from, to) = month_of(start);
        let name = format!("events_{y:04}_{m:02}");
        let exists: bool = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
            .await?
            .get(0);
        if !exists {
            let tx = client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
                .await?;
            let again: bool = tx
                .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
                .await?
                .get(0);
            if !again {
                // Rows of that month already in the default partition move first: attaching
                // checks that the default partition holds none of the new range.
                tx.batch_execute(&format!(
                    "CREATE TABLE {name} (LIKE events INCLUDING DEFAULTS);
                     WITH moved AS (DELETE FROM events_default
                                    WHERE effective_at >= {from} AND effective_at < {to}
                                    RETURNING *)
                     INSERT INTO {name} SELECT * FROM moved;
                     ALTER TABLE events ATTACH PARTITION {name} FOR VALUES FROM ({from}) TO ({to});"
                ))
                .await?;
                created += 1;
            }
            tx.commit().await?;
        }
        start = to;
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_have_their_calendar_bounds() {
        // 2026-11-01T00:00:00Z and 2026-12-01T00:00:00Z.
        let nov = 1_793_491_200 * 1_000_000;
        let dec = 1_796_083_200 * 1_000_000;
        assert_eq!(month_of(nov + 5), (2026, 11, nov, dec));
        assert_eq!(month_of(dec - 1), (2026, 11, nov, dec));
        assert_eq!(month_of(dec).0, 2026);
        assert_eq!(month_of(dec).1, 12);
        let (y, m, _, next) = month_of(dec);
        assert_eq!((y, m), (2026, 12));
        assert_eq!(month_of(next).0, 2027, "December rolls into the next year");
        assert_eq!(month_of(next).1, 1);
        assert_eq!(month_of(0), (1970, 1, 0, 31 * DAY_US));
        // 2024 is a leap year: February has 29 days.
        let feb = days_from_civil(2024, 2) * DAY_US;
        assert_eq!(month_of(feb).3 - feb, 29 * DAY_US);
    }
}
