//! The ledger over PostgreSQL shards. Each account, lock and state lives on the shard that owns
//! the SHA-1 placement hash of its type and key ([`crate::placement`]), and a query of one
//! account touches only that shard. Event ids carry their shard in their top bits, so ids and
//! cursors stay unique and ordered across shards. Each shard has its own sequencer and its own
//! export sequence.
//!
//! A batch whose events (or whose required lock) live on several shards commits on all of
//! them or none, by two-phase commit: every participant prepares; then the decision is
//! recorded on the first shard; then every participant commits. A crash in between leaves
//! prepared transactions that [`Sharded::recover`] settles by that record: committed when the
//! decision was recorded, rolled back otherwise.

use std::collections::BTreeMap;

use crate::error::{LedgerError, Result};
use crate::model::{Attributes, Event, EventPage, LockMode, Micros, State, Totals, Written};
use crate::placement::{ShardSpec, hash};
use crate::postgres::PgShard;
use crate::storage::{EventFilter, Groupings, LockCheck, Prepared, Storage};

/// Bits of an event id below its shard number.
const SHARD_SHIFT: u32 = 55;
const LOCAL_MASK: i64 = (1 << SHARD_SHIFT) - 1;
/// Prepared transactions of this ledger are named `faas-ledger-<uuid>`.
const GID_PREFIX: &str = "faas-ledger-";

fn pack(shard: usize, local: i64) -> i64 {
    ((shard as i64) << SHARD_SHIFT) | local
}

fn unpack(id: i64) -> (usize, i64) {
    ((id >> SHARD_SHIFT) as usize, id & LOCAL_MASK)
}

fn repack(w: Written, shard: usize) -> Written {
    match w {
        Written::New(id) => Written::New(pack(shard, id)),
        Written::AlreadyWritten(id) => Written::AlreadyWritten(pack(shard, id)),
    }
}

pub struct Sharded {
    specs: Vec<ShardSpec>,
    shards: Vec<PgShard>,
}

impl Sharded {
    /// Connects to every shard (in the order of their ranges) and settles transactions a
    /// crash left in doubt.
    pub async fn connect(specs: &[ShardSpec]) -> Result<Self> {
        let mut specs = specs.to_vec();
        specs.sort_by_key(|s| s.from);
        if specs.len() > 1 << (63 - SHARD_SHIFT) {
            return Err(LedgerError::Storage(format!(
                "at most {} shards",
                1 << (63 - SHARD_SHIFT)
            )));
        }
        let mut shards = Vec::with_capacity(specs.len());
        for s in &specs {
            shards.push(PgShard::connect(&s.url).await.map_err(|e| {
                LedgerError::Storage(format!("the ledger shard {}: {e}", redact(&s.url)))
            })?);
        }
        let me = Self { specs, shards };
        me.recover(std::time::Duration::from_secs(60)).await?;
        Ok(me)
    }

    fn place(&self, kind: &str, key: &str) -> usize {
        let h = hash(kind, key);
        self.specs.iter().position(|s| s.owns(h)).unwrap_or(0)
    }

    /// Settles this ledger's prepared transactions older than `age`: commits those whose
    /// decision the first shard recorded, rolls back the rest.
    pub async fn recover(&self, age: std::time::Duration) -> Result<usize> {
        let coordinator = self.shards[0].client().await?;
        let mut settled = 0;
        for shard in &self.shards {
            let client = shard.client().await?;
            let rows = client
                .query(
                    "SELECT gid FROM pg_prepared_xacts
                     WHERE database = current_database() AND starts_with(gid, $1)
                       AND prepared < now() - make_interval(secs => $2)",
                    &[&GID_PREFIX, &age.as_secs_f64()],
                )
                .await?;
            for r in rows {
                let gid: String = r.get(0);
                let decided = coordinator
                    .query_opt("SELECT 1 FROM decisions WHERE gid = $1", &[&gid])
                    .await?
                    .is_some();
                let verb = if decided { "COMMIT" } else { "ROLLBACK" };
                client
                    .batch_execute(&format!("{verb} PREPARED '{gid}'"))
                    .await?;
                settled += 1;
            }
        }
        // Decisions whose transactions are all settled are kept a day, then dropped.
        coordinator
            .execute(
                "DELETE FROM decisions WHERE at < now() - interval '1 day'",
                &[],
            )
            .await?;
        Ok(settled)
    }

    async fn write_across(
        &self,
        parts: BTreeMap<usize, Vec<(usize, Prepared)>>,
        lock: Option<(usize, &LockCheck)>,
        now: Micros,
        total: usize,
    ) -> Result<Vec<Written>> {
        let gid = format!("{GID_PREFIX}{}", uuid::Uuid::new_v4());
        let mut prepared = Vec::new();
        let mut out: Vec<Option<Written>> = vec![None; total];
        let mut fresh = Vec::new();
        let mut failure = None;
        // Shards in index order: two batches over the same shards queue in the same order.
        for (&shard, events) in &parts {
            let client = match self.shards[shard].client().await {
                Ok(c) => c,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            let batch: Vec<Prepared> = events.iter().map(|(_, e)| e.clone()).collect();
            let check = lock.filter(|(s, _)| *s == shard).map(|(_, l)| l);
            let result = async {
                client.batch_execute("BEGIN").await?;
                let written = self.shards[shard]
                    .write_in(&client, &batch, check, now)
                    .await?;
                client
                    .batch_execute(&format!("PREPARE TRANSACTION '{gid}-{shard}'"))
                    .await
                    .map_err(prepare_error)?;
                Ok::<_, LedgerError>(written)
            }
            .await;
            match result {
                Ok((written, f)) => {
                    for ((i, _), w) in events.iter().zip(written) {
                        out[*i] = Some(repack(w, shard));
                    }
                    fresh.push((shard, f));
                    prepared.push((shard, client));
                }
                Err(e) => {
                    let _ = client.batch_execute("ROLLBACK").await;
                    failure = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failure {
            for (shard, client) in prepared {
                client
                    .batch_execute(&format!("ROLLBACK PREPARED '{gid}-{shard}'"))
                    .await?;
            }
            return Err(e);
        }
        // The decision: from here on the batch is written, whatever happens to this process.
        let coordinator = self.shards[0].client().await?;
        // One statement: every participant's decision is recorded, or none.
        let gids: Vec<String> = prepared
            .iter()
            .map(|(shard, _)| format!("{gid}-{shard}"))
            .collect();
        coordinator
            .execute(
                "INSERT INTO decisions (gid) SELECT unnest($1::text[])",
                &[&gids],
            )
            .await?;
        for (shard, client) in &prepared {
            client
                .batch_execute(&format!("COMMIT PREPARED '{gid}-{shard}'"))
                .await?;
        }
        for (shard, f) in fresh {
            self.shards[shard].remember(f);
        }
        Ok(out.into_iter().flatten().collect())
    }
}

fn prepare_error(e: tokio_postgres::Error) -> LedgerError {
    let text = LedgerError::from(e).to_string();
    if text.contains("prepared transactions are disabled") {
        LedgerError::Storage(format!(
            "{text}; a batch over several shards needs them: set `max_prepared_transactions` \
             (e.g. 64) on every shard's server"
        ))
    } else {
        LedgerError::Storage(text)
    }
}

/// A URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[async_trait::async_trait]
impl Storage for Sharded {
    async fn write(
        &self,
        batch: &[Prepared],
        lock: Option<&LockCheck>,
        now: Micros,
    ) -> Result<Vec<Written>> {
        let mut parts: BTreeMap<usize, Vec<(usize, Prepared)>> = BTreeMap::new();
        for (i, e) in batch.iter().enumerate() {
            parts
                .entry(self.place(&e.kind, &e.key))
                .or_default()
                .push((i, e.clone()));
        }
        let lock = lock.map(|l| (self.place(&l.kind, &l.key), l));
        if let Some((shard, _)) = lock {
            parts.entry(shard).or_default();
        }
        if parts.len() <= 1 {
            let shard = parts.keys().next().copied().unwrap_or(0);
            let written = self.shards[shard]
                .write(batch, lock.map(|(_, l)| l), now)
                .await?;
            return Ok(written.into_iter().map(|w| repack(w, shard)).collect());
        }
        self.write_across(parts, lock, now, batch.len()).await
    }

    async fn sequence(
        &self,
        holder: &str,
        lease_us: i64,
        max: usize,
        now: Micros,
    ) -> Result<Option<usize>> {
        let mut total = None;
        for shard in &self.shards {
            if let Some(n) = shard.sequence(holder, lease_us, max, now).await? {
                total = Some(total.unwrap_or(0) + n);
            }
        }
        Ok(total)
    }

    async fn aggregate(&self, groupings: &Groupings, interval: i64, max: usize) -> Result<usize> {
        let mut total = 0;
        for shard in &self.shards {
            total += shard.aggregate(groupings, interval, max).await?;
        }
        Ok(total)
    }

    async fn totals(
        &self,
        kind: &str,
        key: &str,
        grouping: &[String],
        at: Micros,
    ) -> Result<Vec<(Attributes, Totals)>> {
        self.shards[self.place(kind, key)]
            .totals(kind, key, grouping, at)
            .await
    }

    async fn raw_totals(
        &self,
        kind: &str,
        key: &str,
        grouping: &[String],
        at: Micros,
    ) -> Result<Vec<(Attributes, Totals)>> {
        self.shards[self.place(kind, key)]
            .raw_totals(kind, key, grouping, at)
            .await
    }

    async fn events(&self, f: &EventFilter, account_key: Option<&str>) -> Result<EventPage> {
        let (first, local_after) = if f.after <= 0 {
            (0, 0)
        } else {
            unpack(f.after)
        };
        let only = account_key.map(|k| self.place(&f.kind, k));
        let limit = f.limit.max(1);
        let mut events = Vec::new();
        for shard in first..self.shards.len() {
            if only.is_some_and(|o| o != shard) {
                continue;
            }
            let after = if shard == first { local_after } else { 0 };
            let page = self.shards[shard]
                .events(
                    &EventFilter {
                        limit: limit - events.len(),
                        ..f.clone()
                    },
                    after,
                )
                .await?;
            let more = page.next.is_some();
            events.extend(page.events.into_iter().map(|mut e| {
                e.id = pack(shard, e.id);
                e.shard = shard;
                e
            }));
            if more {
                let next = events.last().map(|e: &Event| e.id);
                return Ok(EventPage { events, next });
            }
            if events.len() >= limit {
                let rest = (shard + 1..self.shards.len()).any(|s| only.is_none_or(|o| o == s));
                let next = if rest {
                    events.last().map(|e| e.id)
                } else {
                    None
                };
                return Ok(EventPage { events, next });
            }
        }
        Ok(EventPage { events, next: None })
    }

    fn shards(&self) -> usize {
        self.shards.len()
    }

    async fn export(&self, shard: usize, after: u64, limit: usize) -> Result<Vec<Event>> {
        let Some(s) = self.shards.get(shard) else {
            return Err(LedgerError::NoSuchShard {
                shard,
                shards: self.shards.len(),
            });
        };
        Ok(s.export(after, limit)
            .await?
            .into_iter()
            .map(|mut e| {
                e.id = pack(shard, e.id);
                e.shard = shard;
                e
            })
            .collect())
    }

    async fn maintain(&self, now: Micros) -> Result<()> {
        for shard in &self.shards {
            shard.ensure_partitions(now).await?;
        }
        self.recover(std::time::Duration::from_secs(60)).await?;
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
    ) -> Result<()> {
        self.shards[self.place(kind, key)]
            .lock(kind, key, holder, mode, lease_us, now)
            .await
    }

    async fn unlock(&self, kind: &str, key: &str, holder: &str) -> Result<bool> {
        self.shards[self.place(kind, key)]
            .unlock(kind, key, holder)
            .await
    }

    async fn state(&self, kind: &str, key: &str) -> Result<State> {
        self.shards[self.place(kind, key)].state(kind, key).await
    }

    async fn put_state(
        &self,
        kind: &str,
        key: &str,
        expected: u64,
        value: &serde_json::Value,
    ) -> Result<u64> {
        self.shards[self.place(kind, key)]
            .put_state(kind, key, expected, value)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_shard_and_keep_their_order() {
        assert_eq!(unpack(pack(3, 42)), (3, 42));
        assert!(pack(0, LOCAL_MASK) < pack(1, 1));
        assert_eq!(unpack(17), (0, 17));
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redact("postgres://ledger:s3cret@db:5432/l"),
            "postgres://ledger:***@db:5432/l"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1/l"),
            "postgres://postgres@127.0.0.1/l"
        );
    }
}
