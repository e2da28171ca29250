//! Environments of a service: the release serving each, the replicas `scale` set, and how its
//! traffic is split (a canary and its percent, a warm previous set).

use rusqlite::params;

use super::{Migration, ReleaseRow, Result, Store, now};

pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: r#"
    CREATE TABLE environments (
        service TEXT NOT NULL REFERENCES services(name) ON DELETE CASCADE,
        env TEXT NOT NULL,
        current_release TEXT REFERENCES releases(id),
        updated_at TEXT NOT NULL,
        PRIMARY KEY (service, env)
    );
    "#,
    },
    Migration {
        version: 2,
        sql: r#"
    ALTER TABLE environments ADD COLUMN replicas INTEGER;
    "#,
    },
    Migration {
        version: 4,
        sql: r#"
    ALTER TABLE environments ADD COLUMN canary_release TEXT;
    ALTER TABLE environments ADD COLUMN canary_weight INTEGER;
    ALTER TABLE environments ADD COLUMN standby_release TEXT;
    ALTER TABLE environments ADD COLUMN standby_until TEXT;
    "#,
    },
];

/// How an environment's traffic is split between releases, as persisted: the router's split
/// is rebuilt from it after a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traffic {
    pub current: Option<String>,
    /// A release beside the current one and its percent of requests (0 for a blue-green set
    /// before its switch).
    pub canary: Option<(String, u8)>,
    /// The previous release, kept warm without traffic until the time (RFC 3339).
    pub standby: Option<(String, String)>,
}

impl Store {
    pub fn environments(&self, service: &str) -> Result<Vec<(String, Option<String>)>> {
        self.all(
            "SELECT env, current_release FROM environments WHERE service = ?1
             UNION SELECT DISTINCT env, NULL FROM deployments WHERE service = ?1
               AND env NOT IN (SELECT env FROM environments WHERE service = ?1)
             ORDER BY 1",
            [service],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    pub fn current_release(&self, service: &str, env: &str) -> Result<Option<ReleaseRow>> {
        let id: Option<String> = self
            .one(
                "SELECT current_release FROM environments WHERE service = ?1 AND env = ?2",
                [service, env],
                |r| r.get(0),
            )?
            .flatten();
        match id {
            Some(id) => self.release(&id),
            None => Ok(None),
        }
    }

    pub fn set_current_release(
        &self,
        service: &str,
        env: &str,
        release: Option<&str>,
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO environments (service, env, current_release, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(service, env) DO UPDATE SET current_release = ?3, updated_at = ?4",
                params![service, env, release, now()],
            )
            .map(drop)
        })
    }

    /// The replicas `scale` set for an environment, overriding its release's manifest.
    pub fn replicas(&self, service: &str, env: &str) -> Result<Option<u32>> {
        Ok(self
            .one(
                "SELECT replicas FROM environments WHERE service = ?1 AND env = ?2",
                [service, env],
                |r| r.get(0),
            )?
            .flatten())
    }

    pub fn set_replicas(&self, service: &str, env: &str, replicas: Option<u32>) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO environments (service, env, current_release, updated_at, replicas) VALUES (?1, ?2, NULL, ?3, ?4)
                 ON CONFLICT(service, env) DO UPDATE SET replicas = ?4, updated_at = ?3",
                params![service, env, now(), replicas],
            )
            .map(drop)
        })
    }

    // --- traffic: canary weights and the warm previous set ---------------------------------------

    fn traffic_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<Traffic> {
        let canary: Option<String> = r.get(1)?;
        let weight: Option<u8> = r.get(2)?;
        let standby: Option<String> = r.get(3)?;
        let until: Option<String> = r.get(4)?;
        Ok(Traffic {
            current: r.get(0)?,
            canary: canary.map(|c| (c, weight.unwrap_or(0))),
            standby: standby.map(|s| (s, until.unwrap_or_default())),
        })
    }

    pub fn traffic(&self, service: &str, env: &str) -> Result<Traffic> {
        Ok(self
            .one(
                "SELECT current_release, canary_release, canary_weight, standby_release, standby_until
                 FROM environments WHERE service = ?1 AND env = ?2",
                [service, env],
                Self::traffic_from,
            )?
            .unwrap_or_default())
    }

    /// Every environment whose traffic is split or that keeps a warm previous set.
    pub fn split_environments(&self) -> Result<Vec<(String, String, Traffic)>> {
        self.all(
            "SELECT current_release, canary_release, canary_weight, standby_release, standby_until, service, env
             FROM environments WHERE canary_release IS NOT NULL OR standby_release IS NOT NULL",
            [],
            |r| Ok((r.get(5)?, r.get(6)?, Self::traffic_from(r)?)),
        )
    }

    /// Puts a release beside the current one with `weight` percent of the requests, or (None)
    /// takes it away.
    pub fn set_canary(&self, service: &str, env: &str, canary: Option<(&str, u8)>) -> Result<()> {
        let (release, weight) = canary.unzip();
        self.with(|c| {
            c.execute(
                "INSERT INTO environments (service, env, current_release, updated_at, canary_release, canary_weight)
                 VALUES (?1, ?2, NULL, ?3, ?4, ?5)
                 ON CONFLICT(service, env) DO UPDATE SET canary_release = ?4, canary_weight = ?5, updated_at = ?3",
                params![service, env, now(), release, weight],
            )
            .map(drop)
        })
    }

    /// Makes `release` the current one in one step: no canary any more, and `standby` (the
    /// release it replaces, with the time its warm window ends) kept, or none.
    pub fn switch(
        &self,
        service: &str,
        env: &str,
        release: &str,
        standby: Option<(&str, &str)>,
    ) -> Result<()> {
        let (standby, until) = standby.unzip();
        self.with(|c| {
            c.execute(
                "INSERT INTO environments (service, env, current_release, updated_at, standby_release, standby_until)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(service, env) DO UPDATE SET current_release = ?3, updated_at = ?4,
                   canary_release = NULL, canary_weight = NULL, standby_release = ?5, standby_until = ?6",
                params![service, env, release, now(), standby, until],
            )
            .map(drop)
        })
    }

    /// Ends the warm window of the previous set (if it is still `release`).
    pub fn clear_standby(&self, service: &str, env: &str, release: &str) -> Result<bool> {
        self.with(|c| {
            c.execute(
                "UPDATE environments SET standby_release = NULL, standby_until = NULL, updated_at = ?4
                 WHERE service = ?1 AND env = ?2 AND standby_release = ?3",
                params![service, env, release, now()],
            )
            .map(|n| n > 0)
        })
    }

    /// Forgets one environment of a service: its releases, deployments and instances.
    pub fn delete_environment(&self, service: &str, env: &str) -> Result<()> {
        self.forget(service, Some(env))
    }
}
