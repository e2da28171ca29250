//! The platform's state in one SQLite file (WAL, one writer): services, releases, deployments
//! with their steps, instances and tokens. Docker holds the containers; this file holds intent
//! and history, so a restarted daemon knows what should run and which deployment to resume.

use std::path::Path;
use std::sync::Mutex;

use faas_spec::Strategy;
use faas_spec::api::{DeploymentState, Role, Step};
use rusqlite::{Connection, OptionalExtension, params};

/// Migrations, in order; the file's `user_version` says how many have run.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    r#"
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE tokens (
        id INTEGER PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        tenant TEXT NOT NULL,
        role TEXT NOT NULL,
        name TEXT,
        created_at TEXT NOT NULL
    );
    CREATE TABLE services (
        name TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE releases (
        id TEXT PRIMARY KEY,
        service TEXT NOT NULL REFERENCES services(name) ON DELETE CASCADE,
        env TEXT NOT NULL,
        version INTEGER NOT NULL,
        image_id TEXT NOT NULL,
        image_ref TEXT NOT NULL,
        manifest TEXT NOT NULL,
        secrets_version INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        UNIQUE (service, env, version)
    );
    CREATE TABLE environments (
        service TEXT NOT NULL REFERENCES services(name) ON DELETE CASCADE,
        env TEXT NOT NULL,
        current_release TEXT REFERENCES releases(id),
        updated_at TEXT NOT NULL,
        PRIMARY KEY (service, env)
    );
    CREATE TABLE deployments (
        id TEXT PRIMARY KEY,
        service TEXT NOT NULL REFERENCES services(name) ON DELETE CASCADE,
        env TEXT NOT NULL,
        release_id TEXT NOT NULL REFERENCES releases(id),
        previous_release TEXT REFERENCES releases(id),
        strategy TEXT NOT NULL,
        state TEXT NOT NULL,
        reason TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    -- At most one unfinished deployment per service and environment.
    CREATE UNIQUE INDEX one_active_deployment ON deployments (service, env)
        WHERE state IN ('pending', 'running');
    CREATE TABLE deployment_steps (
        deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        message TEXT NOT NULL,
        instance TEXT,
        logs TEXT NOT NULL DEFAULT '[]',
        state TEXT NOT NULL,
        PRIMARY KEY (deployment_id, seq)
    );
    CREATE TABLE instances (
        id TEXT PRIMARY KEY,
        service TEXT NOT NULL,
        env TEXT NOT NULL,
        release_id TEXT NOT NULL,
        container_name TEXT NOT NULL,
        container_id TEXT,
        host_port INTEGER,
        state TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX instances_by_env ON instances (service, env);
    "#,
    // 2: `faas service scale` overrides the release's replicas until the next release.
    r#"
    ALTER TABLE environments ADD COLUMN replicas INTEGER;
    "#,
    // 3: secrets, encrypted, versioned per service and environment.
    r#"
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
    // 4: canary and blue-green: the traffic split of an environment (a release beside the
    // current one with its percent, a warm previous set), held canaries and their commands,
    // and the figures of each canary step.
    r#"
    ALTER TABLE environments ADD COLUMN canary_release TEXT;
    ALTER TABLE environments ADD COLUMN canary_weight INTEGER;
    ALTER TABLE environments ADD COLUMN standby_release TEXT;
    ALTER TABLE environments ADD COLUMN standby_until TEXT;
    ALTER TABLE deployments ADD COLUMN manual INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE deployments ADD COLUMN command TEXT;
    ALTER TABLE deployment_steps ADD COLUMN canary TEXT;
    "#,
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "{path} was written by a newer faas-platform (schema version {found}; this one knows up to {known}). \
         Run that newer version, or point --data-dir elsewhere; the file was left as it is"
    )]
    TooNew {
        path: String,
        found: i64,
        known: i64,
    },
    #[error(
        "{path} is not a usable faas-platform database ({why}). It was left as it is: move it \
         aside and restart to begin afresh, or restore it from a backup"
    )]
    Corrupt { path: String, why: String },
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
}

pub type Result<T> = std::result::Result<T, StoreError>;

pub fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

pub struct Store {
    conn: Mutex<Connection>,
}

#[derive(Debug, Clone)]
pub struct TokenRow {
    pub tenant: String,
    pub role: Role,
}

#[derive(Debug, Clone)]
pub struct ServiceRow {
    pub name: String,
    pub owner: String,
    pub created_at: String,
}

#[derive(Debug, Clone)]
pub struct ReleaseRow {
    pub id: String,
    pub service: String,
    pub env: String,
    pub version: u64,
    pub image_id: String,
    pub image_ref: String,
    pub manifest: String,
    pub secrets_version: u64,
    pub created_at: String,
}

impl ReleaseRow {
    pub fn manifest(&self) -> std::result::Result<faas_spec::Manifest, serde_json::Error> {
        serde_json::from_str(&self.manifest)
    }
}

#[derive(Debug, Clone)]
pub struct DeploymentRow {
    pub id: String,
    pub service: String,
    pub env: String,
    pub release_id: String,
    pub previous_release: Option<String>,
    pub strategy: Strategy,
    pub state: DeploymentState,
    pub reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// A canary held at each step until promoted.
    pub manual: bool,
}

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

#[derive(Debug, Clone)]
pub struct InstanceRow {
    pub id: String,
    pub service: String,
    pub env: String,
    pub release_id: String,
    pub container_name: String,
    pub container_id: Option<String>,
    pub host_port: Option<u16>,
    pub state: String,
}

fn role_of(s: &str) -> Role {
    if s == "admin" {
        Role::Admin
    } else {
        Role::Member
    }
}

fn strategy_of(s: &str) -> Strategy {
    s.parse().unwrap_or_default()
}

impl Store {
    /// Opens (creating) the database, runs pending migrations, and refuses a file from a newer
    /// version or one that is not a sound SQLite database.
    pub fn open(path: &Path) -> Result<Self> {
        let shown = path.display().to_string();
        let corrupt = |e: rusqlite::Error| StoreError::Corrupt {
            path: shown.clone(),
            why: e.to_string(),
        };
        let conn = Connection::open(path).map_err(corrupt)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(corrupt)?;
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(corrupt)?;
        if check != "ok" {
            return Err(StoreError::Corrupt {
                path: shown,
                why: check,
            });
        }
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(corrupt)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew {
                path: shown,
                found: version,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let conn = self
            .conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(f(&conn)?)
    }

    /// Every row a query answers, mapped (the statement is prepared once per connection).
    fn all<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(sql)?;
            let rows = stmt.query_map(params, map)?;
            rows.collect()
        })
    }

    /// The first row a query answers, mapped, if there is one.
    fn one<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        map: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>> {
        self.with(|c| c.prepare_cached(sql)?.query_row(params, map).optional())
    }

    // --- meta -----------------------------------------------------------------------------------

    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        self.one("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.with(|c| {
            c.execute("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2", [key, value])
                .map(drop)
        })
    }

    // --- tokens ---------------------------------------------------------------------------------

    pub fn add_token(
        &self,
        hash: &str,
        tenant: &str,
        role: Role,
        name: Option<&str>,
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO tokens (hash, tenant, role, name, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![hash, tenant, role.as_str(), name, now()],
            )
            .map(drop)
        })
    }

    pub fn token(&self, hash: &str) -> Result<Option<TokenRow>> {
        self.one(
            "SELECT tenant, role FROM tokens WHERE hash = ?1",
            [hash],
            |r| {
                Ok(TokenRow {
                    tenant: r.get(0)?,
                    role: role_of(&r.get::<_, String>(1)?),
                })
            },
        )
    }

    pub fn count_admin_tokens(&self) -> Result<u64> {
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM tokens WHERE role = 'admin'",
                [],
                |r| r.get(0),
            )
        })
    }

    // --- services -------------------------------------------------------------------------------

    pub fn create_service(&self, name: &str, owner: &str) -> Result<bool> {
        self.with(|c| {
            c.execute(
                "INSERT INTO services (name, owner, created_at) VALUES (?1, ?2, ?3) ON CONFLICT(name) DO NOTHING",
                params![name, owner, now()],
            )
            .map(|n| n == 1)
        })
    }

    fn service_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<ServiceRow> {
        Ok(ServiceRow {
            name: r.get(0)?,
            owner: r.get(1)?,
            created_at: r.get(2)?,
        })
    }

    pub fn service(&self, name: &str) -> Result<Option<ServiceRow>> {
        self.one(
            "SELECT name, owner, created_at FROM services WHERE name = ?1",
            [name],
            Self::service_from,
        )
    }

    pub fn services(&self, owner: Option<&str>) -> Result<Vec<ServiceRow>> {
        self.all(
            "SELECT name, owner, created_at FROM services WHERE ?1 IS NULL OR owner = ?1 ORDER BY name",
            [owner],
            Self::service_from,
        )
    }

    pub fn delete_service(&self, name: &str) -> Result<()> {
        self.forget(name, None)
    }

    /// Deletes what the store holds of a service, or of one of its environments: instances,
    /// deployments with their steps, releases, secrets (and the service itself when `env` is
    /// None), in one transaction.
    fn forget(&self, service: &str, env: Option<&str>) -> Result<()> {
        const TABLES: [&str; 7] = [
            "instances",
            "deployment_steps",
            "deployments",
            "environments",
            "releases",
            "secrets",
            "secret_versions",
        ];
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            for table in TABLES {
                let sql = if table == "deployment_steps" {
                    "DELETE FROM deployment_steps WHERE deployment_id IN
                       (SELECT id FROM deployments WHERE service = ?1 AND (?2 IS NULL OR env = ?2))"
                        .to_owned()
                } else {
                    format!("DELETE FROM {table} WHERE service = ?1 AND (?2 IS NULL OR env = ?2)")
                };
                tx.execute(&sql, params![service, env])?;
            }
            if env.is_none() {
                tx.execute("DELETE FROM services WHERE name = ?1", [service])?;
            }
            tx.commit()
        })
    }

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

    // --- secrets (sealed: the store never sees a value in clear) ------------------------------

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

    // --- releases -------------------------------------------------------------------------------

    fn release_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<ReleaseRow> {
        Ok(ReleaseRow {
            id: r.get(0)?,
            service: r.get(1)?,
            env: r.get(2)?,
            version: r.get(3)?,
            image_id: r.get(4)?,
            image_ref: r.get(5)?,
            manifest: r.get(6)?,
            secrets_version: r.get(7)?,
            created_at: r.get(8)?,
        })
    }

    const RELEASE_COLUMNS: &str =
        "id, service, env, version, image_id, image_ref, manifest, secrets_version, created_at";

    pub fn release(&self, id: &str) -> Result<Option<ReleaseRow>> {
        self.one(
            &format!(
                "SELECT {} FROM releases WHERE id = ?1",
                Self::RELEASE_COLUMNS
            ),
            [id],
            Self::release_from,
        )
    }

    pub fn release_by_version(
        &self,
        service: &str,
        env: &str,
        version: u64,
    ) -> Result<Option<ReleaseRow>> {
        self.one(
            &format!(
                "SELECT {} FROM releases WHERE service = ?1 AND env = ?2 AND version = ?3",
                Self::RELEASE_COLUMNS
            ),
            params![service, env, version],
            Self::release_from,
        )
    }

    pub fn releases(&self, service: &str, env: Option<&str>) -> Result<Vec<ReleaseRow>> {
        self.all(
            &format!(
                "SELECT {} FROM releases WHERE service = ?1 AND (?2 IS NULL OR env = ?2) ORDER BY env, version DESC",
                Self::RELEASE_COLUMNS
            ),
            params![service, env],
            Self::release_from,
        )
    }

    /// A new release with the next version number of its environment.
    pub fn create_release(
        &self,
        service: &str,
        env: &str,
        image_id: &str,
        image_ref: &str,
        manifest_json: &str,
        secrets_version: u64,
    ) -> Result<ReleaseRow> {
        let id = format!("rel-{}", short_id());
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            let version: u64 = tx.query_row(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM releases WHERE service = ?1 AND env = ?2",
                [service, env],
                |r| r.get(0),
            )?;
            tx.execute(
                "INSERT INTO releases (id, service, env, version, image_id, image_ref, manifest, secrets_version, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![id, service, env, version, image_id, image_ref, manifest_json, secrets_version, now()],
            )?;
            tx.commit()?;
            Ok(())
        })?;
        self.release(&id)?
            .ok_or(StoreError::Sql(rusqlite::Error::QueryReturnedNoRows))
    }

    /// The release a rollback goes back to: the one that served before the deployment that made
    /// `current` current (a rollback undoes the last deployment, and finds the set a blue-green
    /// switch kept warm); for a history without that, the newest earlier release that served.
    pub fn previous_successful_release(
        &self,
        service: &str,
        env: &str,
        current: &str,
    ) -> Result<Option<ReleaseRow>> {
        let before: Option<String> = self.one(
            "SELECT previous_release FROM deployments
             WHERE service = ?1 AND env = ?2 AND release_id = ?3 AND state = 'succeeded'
               AND previous_release IS NOT NULL AND previous_release != ?3
             ORDER BY created_at DESC, rowid DESC LIMIT 1",
            params![service, env, current],
            |r| r.get(0),
        )?;
        if let Some(id) = before
            && let Some(release) = self.release(&id)?
        {
            return Ok(Some(release));
        }
        self.one(
            &format!(
                "SELECT {} FROM releases r WHERE r.service = ?1 AND r.env = ?2 AND r.id != ?3
                   AND r.version < (SELECT version FROM releases WHERE id = ?3)
                   AND EXISTS (SELECT 1 FROM deployments d WHERE d.release_id = r.id AND d.state = 'succeeded')
                 ORDER BY r.version DESC LIMIT 1",
                Self::RELEASE_COLUMNS.split(", ").map(|c| format!("r.{c}")).collect::<Vec<_>>().join(", ")
            ),
            params![service, env, current],
            Self::release_from,
        )
    }

    // --- deployments ----------------------------------------------------------------------------

    fn deployment_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeploymentRow> {
        Ok(DeploymentRow {
            id: r.get(0)?,
            service: r.get(1)?,
            env: r.get(2)?,
            release_id: r.get(3)?,
            previous_release: r.get(4)?,
            strategy: strategy_of(&r.get::<_, String>(5)?),
            state: DeploymentState::parse(&r.get::<_, String>(6)?),
            reason: r.get(7)?,
            created_at: r.get(8)?,
            updated_at: r.get(9)?,
            manual: r.get(10)?,
        })
    }

    const DEPLOYMENT_COLUMNS: &str = "id, service, env, release_id, previous_release, strategy, state, reason, created_at, updated_at, manual";

    /// Inserts a pending deployment, or returns the id of the unfinished one that holds the
    /// environment.
    pub fn create_deployment(
        &self,
        service: &str,
        env: &str,
        release_id: &str,
        previous: Option<&str>,
        strategy: Strategy,
        manual: bool,
    ) -> Result<std::result::Result<String, String>> {
        let id = format!("dep-{}", short_id());
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            let running: Option<String> = tx
                .query_row(
                    "SELECT id FROM deployments WHERE service = ?1 AND env = ?2 AND state IN ('pending', 'running')",
                    [service, env],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(running) = running {
                return Ok(Err(running));
            }
            let at = now();
            tx.execute(
                "INSERT INTO deployments (id, service, env, release_id, previous_release, strategy, state, created_at, updated_at, manual)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?7, ?8)",
                params![id, service, env, release_id, previous, strategy.as_str(), at, manual],
            )?;
            tx.commit()?;
            Ok(Ok(id.clone()))
        })
    }

    pub fn deployment(&self, id: &str) -> Result<Option<DeploymentRow>> {
        self.one(
            &format!(
                "SELECT {} FROM deployments WHERE id = ?1",
                Self::DEPLOYMENT_COLUMNS
            ),
            [id],
            Self::deployment_from,
        )
    }

    pub fn unfinished_deployments(&self) -> Result<Vec<DeploymentRow>> {
        self.all(
            &format!(
                "SELECT {} FROM deployments WHERE state IN ('pending', 'running') ORDER BY created_at",
                Self::DEPLOYMENT_COLUMNS
            ),
            [],
            Self::deployment_from,
        )
    }

    pub fn active_deployment(&self, service: &str, env: &str) -> Result<Option<String>> {
        self.one(
            "SELECT id FROM deployments WHERE service = ?1 AND env = ?2 AND state IN ('pending', 'running')",
            [service, env],
            |r| r.get(0),
        )
    }

    /// Sends `promote` or `abort` to an unfinished deployment; false when it has ended.
    pub fn send_command(&self, id: &str, command: &str) -> Result<bool> {
        self.with(|c| {
            c.execute(
                "UPDATE deployments SET command = ?2 WHERE id = ?1 AND state IN ('pending', 'running')",
                [id, command],
            )
            .map(|n| n > 0)
        })
    }

    /// The command waiting for a deployment, if any (left in place until `take_command`).
    pub fn command(&self, id: &str) -> Result<Option<String>> {
        Ok(self
            .one("SELECT command FROM deployments WHERE id = ?1", [id], |r| {
                r.get(0)
            })?
            .flatten())
    }

    pub fn take_command(&self, id: &str) -> Result<()> {
        self.with(|c| {
            c.execute("UPDATE deployments SET command = NULL WHERE id = ?1", [id])
                .map(drop)
        })
    }

    pub fn deployments(&self, service: &str, env: Option<&str>) -> Result<Vec<DeploymentRow>> {
        self.all(
            &format!(
                "SELECT {} FROM deployments WHERE service = ?1 AND (?2 IS NULL OR env = ?2) ORDER BY created_at DESC",
                Self::DEPLOYMENT_COLUMNS
            ),
            params![service, env],
            Self::deployment_from,
        )
    }

    /// Appends a step and moves the deployment to `state`, in one transaction: what a restarted
    /// daemon reads is always a step together with the state it led to.
    pub fn add_step(&self, deployment: &str, step: NewStep<'_>) -> Result<Step> {
        let NewStep {
            kind,
            message,
            instance,
            logs,
            state,
            reason,
            canary,
        } = step;
        let at = now();
        let logs_json = serde_json::to_string(logs).unwrap_or_else(|_| "[]".into());
        let canary_json = canary.and_then(|c| serde_json::to_string(c).ok());
        let seq = self.with(|c| {
            let tx = c.unchecked_transaction()?;
            let seq: u64 = tx.query_row(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM deployment_steps WHERE deployment_id = ?1",
                [deployment],
                |r| r.get(0),
            )?;
            tx.execute(
                "INSERT INTO deployment_steps (deployment_id, seq, at, kind, message, instance, logs, state, canary)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![deployment, seq, at, kind, message, instance, logs_json, state.as_str(), canary_json],
            )?;
            tx.execute(
                "UPDATE deployments SET state = ?2, updated_at = ?3, reason = COALESCE(?4, reason) WHERE id = ?1",
                params![deployment, state.as_str(), at, reason],
            )?;
            tx.commit()?;
            Ok(seq)
        })?;
        Ok(Step {
            seq,
            at,
            kind: kind.to_owned(),
            message: message.to_owned(),
            instance: instance.map(str::to_owned),
            logs: logs.to_vec(),
            state,
            canary: canary.cloned(),
        })
    }

    pub fn steps(&self, deployment: &str, after: u64) -> Result<Vec<Step>> {
        self.all(
            "SELECT seq, at, kind, message, instance, logs, state, canary FROM deployment_steps
             WHERE deployment_id = ?1 AND seq > ?2 ORDER BY seq",
            params![deployment, after],
            |r| {
                let logs: String = r.get(5)?;
                Ok(Step {
                    seq: r.get(0)?,
                    at: r.get(1)?,
                    kind: r.get(2)?,
                    message: r.get(3)?,
                    instance: r.get(4)?,
                    logs: serde_json::from_str(&logs).unwrap_or_default(),
                    state: DeploymentState::parse(&r.get::<_, String>(6)?),
                    canary: r
                        .get::<_, Option<String>>(7)?
                        .and_then(|c| serde_json::from_str(&c).ok()),
                })
            },
        )
    }

    // --- instances ------------------------------------------------------------------------------

    fn instance_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<InstanceRow> {
        Ok(InstanceRow {
            id: r.get(0)?,
            service: r.get(1)?,
            env: r.get(2)?,
            release_id: r.get(3)?,
            container_name: r.get(4)?,
            container_id: r.get(5)?,
            host_port: r.get(6)?,
            state: r.get(7)?,
        })
    }

    const INSTANCE_COLUMNS: &str =
        "id, service, env, release_id, container_name, container_id, host_port, state";

    pub fn add_instance(&self, row: &InstanceRow) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO instances (id, service, env, release_id, container_name, container_id, host_port, state, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT(id) DO UPDATE SET container_id = ?6, host_port = ?7, state = ?8",
                params![row.id, row.service, row.env, row.release_id, row.container_name, row.container_id, row.host_port, row.state, now()],
            )
            .map(drop)
        })
    }

    pub fn set_instance_state(&self, id: &str, state: &str) -> Result<()> {
        self.with(|c| {
            c.execute("UPDATE instances SET state = ?2 WHERE id = ?1", [id, state])
                .map(drop)
        })
    }

    pub fn remove_instance(&self, id: &str) -> Result<()> {
        self.with(|c| {
            c.execute("DELETE FROM instances WHERE id = ?1", [id])
                .map(drop)
        })
    }

    pub fn instances(&self, service: &str, env: &str) -> Result<Vec<InstanceRow>> {
        self.all(
            &format!(
                "SELECT {} FROM instances WHERE service = ?1 AND env = ?2 ORDER BY created_at, id",
                Self::INSTANCE_COLUMNS
            ),
            [service, env],
            Self::instance_from,
        )
    }

    pub fn all_instances(&self) -> Result<Vec<InstanceRow>> {
        self.all(
            &format!(
                "SELECT {} FROM instances ORDER BY created_at, id",
                Self::INSTANCE_COLUMNS
            ),
            [],
            Self::instance_from,
        )
    }
}

/// A secret as the store keeps it: its name, the nonce, and the sealed value.
pub type SealedSecret = (String, Vec<u8>, Vec<u8>);

/// A step to persist: what happened, and the state it leaves the deployment in.
#[derive(Debug, Clone, Copy)]
pub struct NewStep<'a> {
    pub kind: &'a str,
    pub message: &'a str,
    pub instance: Option<&'a str>,
    /// The failed container's last lines, when there is one.
    pub logs: &'a [String],
    pub state: DeploymentState,
    /// Why the deployment failed, kept on the deployment itself.
    pub reason: Option<&'a str>,
    /// A canary step's weights and figures.
    pub canary: Option<&'a faas_spec::api::CanaryReport>,
}

impl<'a> NewStep<'a> {
    pub fn new(kind: &'a str, message: &'a str, state: DeploymentState) -> Self {
        Self {
            kind,
            message,
            instance: None,
            logs: &[],
            state,
            reason: None,
            canary: None,
        }
    }
}

/// A short random id (12 hex digits).
pub fn short_id() -> String {
    use rand::Rng;
    let bytes: [u8; 6] = rand::rng().random();
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("platform.db")).unwrap();
        (dir, store)
    }

    #[test]
    fn one_unfinished_deployment_per_environment() {
        let (_dir, store) = temp_store();
        store.create_service("svc", "a@b.io").unwrap();
        let rel = store
            .create_release("svc", "prod", "sha256:x", "x", "{}", 0)
            .unwrap();
        assert_eq!(rel.version, 1);
        let first = store
            .create_deployment("svc", "prod", &rel.id, None, Strategy::Rolling, false)
            .unwrap()
            .unwrap();
        let second = store
            .create_deployment("svc", "prod", &rel.id, None, Strategy::Rolling, false)
            .unwrap();
        assert_eq!(second, Err(first.clone()));
        store
            .add_step(
                &first,
                NewStep::new("succeeded", "done", DeploymentState::Succeeded),
            )
            .unwrap();
        assert!(
            store
                .create_deployment("svc", "prod", &rel.id, None, Strategy::Rolling, false)
                .unwrap()
                .is_ok()
        );
        assert!(
            store
                .create_deployment("svc", "staging", &rel.id, None, Strategy::Rolling, false)
                .unwrap()
                .is_ok()
        );
    }

    #[test]
    fn the_previous_release_is_the_last_that_succeeded_before_the_current() {
        let (_dir, store) = temp_store();
        store.create_service("svc", "a@b.io").unwrap();
        let mut ids = Vec::new();
        for (i, outcome) in [
            DeploymentState::Succeeded,
            DeploymentState::RolledBack,
            DeploymentState::Succeeded,
        ]
        .iter()
        .enumerate()
        {
            let rel = store
                .create_release("svc", "prod", &format!("sha256:{i}"), "x", "{}", 0)
                .unwrap();
            let dep = store
                .create_deployment("svc", "prod", &rel.id, None, Strategy::Rolling, false)
                .unwrap()
                .unwrap();
            store
                .add_step(&dep, NewStep::new("end", "end", *outcome))
                .unwrap();
            ids.push(rel.id);
        }
        let previous = store
            .previous_successful_release("svc", "prod", &ids[2])
            .unwrap()
            .unwrap();
        assert_eq!(
            previous.id, ids[0],
            "v2 never served, so v1 is the one before v3"
        );
        assert!(
            store
                .previous_successful_release("svc", "prod", &ids[0])
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_rollback_goes_back_to_the_release_that_served_before_the_current_one() {
        let (_dir, store) = temp_store();
        store.create_service("svc", "a@b.io").unwrap();
        let rel: Vec<ReleaseRow> = (1..=3)
            .map(|i| {
                store
                    .create_release("svc", "prod", &format!("sha256:{i}"), "x", "{}", 0)
                    .unwrap()
            })
            .collect();
        // v1, then v2, then a rollback to v1, then v3: v3 replaced v1, so a rollback returns to v1.
        for (release, previous) in [(0, None), (1, Some(0)), (0, Some(1)), (2, Some(0))] {
            let dep = store
                .create_deployment(
                    "svc",
                    "prod",
                    &rel[release].id,
                    previous.map(|p: usize| rel[p].id.as_str()),
                    Strategy::Bluegreen,
                    false,
                )
                .unwrap()
                .unwrap();
            store
                .add_step(&dep, NewStep::new("end", "end", DeploymentState::Succeeded))
                .unwrap();
        }
        let back = store
            .previous_successful_release("svc", "prod", &rel[2].id)
            .unwrap()
            .unwrap();
        assert_eq!(
            back.id, rel[0].id,
            "not v2, which served before v1 came back"
        );
    }

    #[test]
    fn a_file_from_a_newer_version_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("platform.db");
        drop(Store::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let err = Store::open(&path).err().unwrap();
        assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
        assert!(err.to_string().contains("newer faas-platform"));
    }

    #[test]
    fn a_corrupt_file_is_refused_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("platform.db");
        let text = b"this is not a database, just some text that is long enough ......";
        std::fs::write(&path, text).unwrap();
        let err = Store::open(&path).err().unwrap();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("left as it is"));
        assert_eq!(std::fs::read(&path).unwrap(), text, "never silently reset");
    }

    #[test]
    fn steps_are_numbered_and_move_the_state() {
        let (_dir, store) = temp_store();
        store.create_service("svc", "a@b.io").unwrap();
        let rel = store
            .create_release("svc", "prod", "sha256:x", "x", "{}", 0)
            .unwrap();
        let dep = store
            .create_deployment("svc", "prod", &rel.id, None, Strategy::Rolling, false)
            .unwrap()
            .unwrap();
        store
            .add_step(
                &dep,
                NewStep::new("started", "go", DeploymentState::Running),
            )
            .unwrap();
        let logs = ["boom".to_owned()];
        let failed = NewStep {
            instance: Some("i1"),
            logs: &logs,
            reason: Some("exit 3"),
            ..NewStep::new("instance-failed", "exit 3", DeploymentState::Running)
        };
        store.add_step(&dep, failed).unwrap();
        let steps = store.steps(&dep, 0).unwrap();
        assert_eq!(steps.iter().map(|s| s.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(steps[1].logs, ["boom"]);
        assert_eq!(store.steps(&dep, 1).unwrap().len(), 1);
        let row = store.deployment(&dep).unwrap().unwrap();
        assert_eq!(row.state, DeploymentState::Running);
        assert_eq!(row.reason.as_deref(), Some("exit 3"));
    }
}
