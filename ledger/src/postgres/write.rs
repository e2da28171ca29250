//! A shard's write path: a batch's accounts (cached once committed), idempotency keys and
//! events, each table in one set-based statement, inside one transaction (which may be one
//! phase of a commit across shards).

use std::collections::HashMap;

use deadpool_postgres::Client;

use super::PgShard;
use crate::error::{LedgerError, Result};
use crate::model::{Micros, Written};
use crate::storage::{LockCheck, Prepared};

impl PgShard {
    fn cached_account(&self, kind: &str, key: &str) -> Option<i64> {
        let cache = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(&(kind.to_owned(), key.to_owned())).copied()
    }

    /// The ids of the batch's accounts, created when new. The second value lists those read
    /// inside this (uncommitted) transaction, to cache once it commits.
    async fn account_ids(
        &self,
        client: &Client,
        batch: &[Prepared],
    ) -> Result<(HashMap<(String, String), i64>, Vec<((String, String), i64)>)> {
        let mut ids = HashMap::new();
        let mut missing: Vec<(String, String)> = Vec::new();
        for e in batch {
            let k = (e.kind.clone(), e.key.clone());
            if ids.contains_key(&k) || missing.contains(&k) {
                continue;
            }
            match self.cached_account(&e.kind, &e.key) {
                Some(id) => {
                    ids.insert(k, id);
                }
                None => missing.push(k),
            }
        }
        if missing.is_empty() {
            return Ok((ids, Vec::new()));
        }
        // Sorted, so that two batches creating the same accounts take their locks in one order.
        missing.sort();
        let kinds: Vec<&str> = missing.iter().map(|(k, _)| k.as_str()).collect();
        let keys: Vec<&str> = missing.iter().map(|(_, k)| k.as_str()).collect();
        let insert = client
            .prepare_cached(
                "INSERT INTO accounts (kind, key) SELECT * FROM unnest($1::text[], $2::text[])
                 ON CONFLICT DO NOTHING",
            )
            .await?;
        client.execute(&insert, &[&kinds, &keys]).await?;
        let select = client
            .prepare_cached(
                "SELECT a.id, a.kind, a.key FROM accounts a
                 JOIN unnest($1::text[], $2::text[]) AS u(kind, key) ON a.kind = u.kind AND a.key = u.key",
            )
            .await?;
        let mut fresh = Vec::new();
        for row in client.query(&select, &[&kinds, &keys]).await? {
            let k = (row.get::<_, String>(1), row.get::<_, String>(2));
            let id: i64 = row.get(0);
            ids.insert(k.clone(), id);
            fresh.push((k, id));
        }
        Ok((ids, fresh))
    }

    /// Remembers account ids read by a transaction that has committed.
    pub fn remember(&self, fresh: Vec<((String, String), i64)>) {
        let mut cache = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        cache.extend(fresh);
    }

    /// The batch's statements inside the open transaction of `client`: the lock check, the
    /// accounts, the idempotency keys, the events. Err leaves the transaction to roll back.
    pub async fn write_in(
        &self,
        client: &Client,
        batch: &[Prepared],
        lock: Option<&LockCheck>,
        now: Micros,
    ) -> Result<(Vec<Written>, Vec<((String, String), i64)>)> {
        if let Some(l) = lock {
            let held = client
                .prepare_cached(
                    "SELECT 1 FROM locks WHERE kind = $1 AND key = $2 AND holder = $3 AND expires_at > $4
                     FOR SHARE",
                )
                .await?;
            if client
                .query_opt(&held, &[&l.kind, &l.key, &l.holder, &now])
                .await?
                .is_none()
            {
                return Err(LedgerError::LockNotHeld(format!("{} {}", l.kind, l.key)));
            }
        }
        if batch.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let (accounts, fresh) = self.account_ids(client, batch).await?;
        let account_of = |e: &Prepared| accounts[&(e.kind.clone(), e.key.clone())];
        let ids: Vec<i64> = client
            .query(
                &client
                    .prepare_cached(
                        "SELECT nextval('events_id_seq') FROM generate_series(1, $1::int)",
                    )
                    .await?,
                &[&(batch.len() as i32)],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let account: Vec<i64> = batch.iter().map(account_of).collect();
        let idem: Vec<&str> = batch.iter().map(|e| e.idempotency_key.as_str()).collect();
        let hash: Vec<&[u8]> = batch.iter().map(|e| e.hash.as_slice()).collect();
        let claim = client
            .prepare_cached(
                "INSERT INTO idempotency (account, idem, hash, event_id)
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::bytea[], $4::bigint[])
                 ON CONFLICT DO NOTHING RETURNING event_id",
            )
            .await?;
        let claimed: std::collections::HashSet<i64> = client
            .query(&claim, &[&account, &idem, &hash, &ids])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut out = Vec::with_capacity(batch.len());
        let earlier: HashMap<(i64, String), (Vec<u8>, i64)> = if claimed.len() < batch.len() {
            let (acc, keys): (Vec<i64>, Vec<&str>) = batch
                .iter()
                .zip(&ids)
                .filter(|(_, id)| !claimed.contains(id))
                .map(|(e, _)| (account_of(e), e.idempotency_key.as_str()))
                .unzip();
            let find = client
                .prepare_cached(
                    "SELECT i.account, i.idem, i.hash, i.event_id FROM idempotency i
                     JOIN unnest($1::bigint[], $2::text[]) AS u(account, idem)
                       ON i.account = u.account AND i.idem = u.idem",
                )
                .await?;
            client
                .query(&find, &[&acc, &keys])
                .await?
                .iter()
                .map(|r| ((r.get(0), r.get(1)), (r.get(2), r.get(3))))
                .collect()
        } else {
            HashMap::new()
        };
        let mut new = Vec::new();
        for (i, e) in batch.iter().enumerate() {
            if claimed.contains(&ids[i]) {
                out.push(Written::New(ids[i]));
                new.push(i);
                continue;
            }
            match earlier.get(&(account[i], e.idempotency_key.clone())) {
                Some((h, id)) if *h == e.hash => out.push(Written::AlreadyWritten(*id)),
                _ => return Err(LedgerError::IdempotencyConflict(e.idempotency_key.clone())),
            }
        }
        if !new.is_empty() {
            let pick = |f: &dyn Fn(usize) -> i64| new.iter().map(|&i| f(i)).collect::<Vec<i64>>();
            let id = pick(&|i| ids[i]);
            let acc = pick(&|i| account[i]);
            let amount = pick(&|i| batch[i].amount);
            let at = pick(&|i| batch[i].effective_at);
            let aux: Vec<&str> = new.iter().map(|&i| batch[i].aux.as_str()).collect();
            let key: Vec<&str> = new.iter().map(|&i| idem[i]).collect();
            let info: Vec<&str> = new.iter().map(|&i| batch[i].info.as_str()).collect();
            let insert = client
                .prepare_cached(
                    "INSERT INTO events (id, account, aux, amount, effective_at, idem, info)
                     SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::text[])",
                )
                .await?;
            client
                .execute(&insert, &[&id, &acc, &aux, &amount, &at, &key, &info])
                .await?;
            let pending = client
                .prepare_cached(
                    "INSERT INTO pending (id, effective_at, account)
                     SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[])",
                )
                .await?;
            client.execute(&pending, &[&id, &at, &acc]).await?;
        }
        Ok((out, fresh))
    }

    pub async fn write(
        &self,
        batch: &[Prepared],
        lock: Option<&LockCheck>,
        now: Micros,
    ) -> Result<Vec<Written>> {
        let client = self.client().await?;
        client.batch_execute("BEGIN").await?;
        match self.write_in(&client, batch, lock, now).await {
            Ok((written, fresh)) => {
                client.batch_execute("COMMIT").await?;
                self.remember(fresh);
                Ok(written)
            }
            Err(e) => {
                client.batch_execute("ROLLBACK").await?;
                Err(e)
            }
        }
    }
}
