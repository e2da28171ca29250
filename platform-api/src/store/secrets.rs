//! Secrets, sealed (the store never sees a value in clear) and versioned per service and
//! environment, so a release names the version it runs with.

use rusqlite::{OptionalExtension, params};

use super::{Migration, Result, Store, now};

pub(super) const MIGRATIONS: &[Migration] = &[Migration {
    version: 3,
    sql: r#"
    CREATE TABLE secrets (
        service TEXT NOT NULL,
        env TEXT NOT NULL,
        name TEXT NOT NULL,
        added INTEGER NOT NULL,
        removed INTEGER,
        nonce BLOB NOT NULL,
        value BLOB NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX secrets_by_env ON secrets (service, env, name);
    CREATE TABLE secret_versions (
        service TEXT NOT NULL,
        env TEXT NOT NULL,
        version INTEGER NOT NULL,
        PRIMARY KEY (service, env)
    );
    "#,
}];

/// A secret as the store keeps it: its name, the nonce, and the sealed value.
pub type SealedSecret = (String, Vec<u8>, Vec<u8>);

impl Store {
    pub fn secrets_version(&self, service: &str, env: &str) -> Result<u64> {
        Ok(self
            .one(
                "SELECT version FROM secret_versions WHERE service = ?1 AND env = ?2",
                [service, env],
                |r| r.get(0),
            )?
            .unwrap_or(0))
    }

    /// Sets sealed values (and removes `unset` names) as one new version; returns it.
    pub fn change_secrets(
        &self,
        service: &str,
        env: &str,
        set: &[SealedSecret],
        unset: &[String],
    ) -> Result<u64> {
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            let version: u64 = tx
                .query_row("SELECT version FROM secret_versions WHERE service = ?1 AND env = ?2", [service, env], |r| r.get(0))
                .optional()?
                .unwrap_or(0)
                + 1;
            let at = now();
            for name in set.iter().map(|(n, _, _)| n).chain(unset.iter()) {
                tx.execute(
                    "UPDATE secrets SET removed = ?4 WHERE service = ?1 AND env = ?2 AND name = ?3 AND removed IS NULL",
                    params![service, env, name, version],
                )?;
            }
            for (name, nonce, value) in set {
                tx.execute(
                    "INSERT INTO secrets (service, env, name, added, nonce, value, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![service, env, name, version, nonce, value, at],
                )?;
            }
            tx.execute(
                "INSERT INTO secret_versions (service, env, version) VALUES (?1, ?2, ?3)
                 ON CONFLICT(service, env) DO UPDATE SET version = ?3",
                params![service, env, version],
            )?;
            tx.commit()?;
            Ok(version)
        })
    }

    /// The live secrets' names, versions and times (never values).
    pub fn secret_names(&self, service: &str, env: &str) -> Result<Vec<(String, u64, String)>> {
        self.all(
            "SELECT name, added, updated_at FROM secrets WHERE service = ?1 AND env = ?2 AND removed IS NULL ORDER BY name",
            [service, env],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }

    /// The sealed values as they were at `version`: (name, nonce, sealed value).
    pub fn sealed_secrets_at(
        &self,
        service: &str,
        env: &str,
        version: u64,
    ) -> Result<Vec<SealedSecret>> {
        self.all(
            "SELECT name, nonce, value FROM secrets WHERE service = ?1 AND env = ?2
               AND added <= ?3 AND (removed IS NULL OR removed > ?3) ORDER BY name",
            params![service, env, version],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }
}
