//! The databases provisioned for services, one row per service, environment and name, and the
//! admin passwords of the servers the platform runs itself. Passwords are sealed (the store
//! never sees one in clear). A row carries the login in use and, while a rotation is under way,
//! the one it replaces, until the environment no longer uses that one.

use rusqlite::params;

use super::{Migration, Result, Store, now};

pub(super) const MIGRATIONS: &[Migration] = &[Migration {
    version: 8,
    sql: r#"
    CREATE TABLE databases (
        service TEXT NOT NULL,
        env TEXT NOT NULL,
        name TEXT NOT NULL,
        engine TEXT NOT NULL,
        provider TEXT NOT NULL,
        principal TEXT NOT NULL,
        login TEXT NOT NULL,
        nonce BLOB NOT NULL,
        sealed BLOB NOT NULL,
        old_login TEXT,
        old_nonce BLOB,
        old_sealed BLOB,
        state TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (service, env, name)
    );
    CREATE TABLE database_servers (
        engine TEXT PRIMARY KEY,
        nonce BLOB NOT NULL,
        sealed BLOB NOT NULL,
        created_at TEXT NOT NULL
    );
    "#,
}];

/// A login and its sealed password: (user, nonce, sealed).
pub type SealedLogin = (String, Vec<u8>, Vec<u8>);

/// One database of a service's environment.
#[derive(Debug, Clone)]
pub struct DatabaseRow {
    pub service: String,
    pub env: String,
    pub name: String,
    pub engine: String,
    pub provider: String,
    /// The role, database, ACL user or vhost, named by [`crate::databases::principal`].
    pub principal: String,
    /// The login the environment's instances are given.
    pub login: SealedLogin,
    /// The login a rotation replaced, until it is revoked.
    pub old_login: Option<SealedLogin>,
    /// `provisioning` (recorded, not yet made on the server), `ready`, `detached` (its login
    /// revoked, its data kept).
    pub state: String,
    pub created_at: String,
    pub updated_at: String,
}

const COLUMNS: &str = "service, env, name, engine, provider, principal, login, nonce, sealed, \
                       old_login, old_nonce, old_sealed, state, created_at, updated_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DatabaseRow> {
    let old: Option<String> = r.get(9)?;
    Ok(DatabaseRow {
        service: r.get(0)?,
        env: r.get(1)?,
        name: r.get(2)?,
        engine: r.get(3)?,
        provider: r.get(4)?,
        principal: r.get(5)?,
        login: (r.get(6)?, r.get(7)?, r.get(8)?),
        old_login: match old {
            Some(user) => Some((user, r.get(10)?, r.get(11)?)),
            None => None,
        },
        state: r.get(12)?,
        created_at: r.get(13)?,
        updated_at: r.get(14)?,
    })
}

impl Store {
    /// Records a database about to be provisioned, unless it is recorded already; returns the
    /// row as it is now (a crash after this finds the same login again).
    pub fn record_database(&self, new: &DatabaseRow) -> Result<DatabaseRow> {
        let (user, nonce, sealed) = &new.login;
        self.with(|c| {
            c.execute(
                &format!(
                    "INSERT INTO databases ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL, NULL, NULL, ?10, ?11, ?11)
                     ON CONFLICT(service, env, name) DO NOTHING"
                ),
                params![
                    new.service, new.env, new.name, new.engine, new.provider, new.principal,
                    user, nonce, sealed, new.state, now()
                ],
            )
        })?;
        Ok(self
            .database(&new.service, &new.env, &new.name)?
            .unwrap_or_else(|| new.clone()))
    }

    pub fn database(&self, service: &str, env: &str, name: &str) -> Result<Option<DatabaseRow>> {
        self.one(
            &format!(
                "SELECT {COLUMNS} FROM databases WHERE service = ?1 AND env = ?2 AND name = ?3"
            ),
            [service, env, name],
            row,
        )
    }

    /// An environment's databases (every environment's with `env` None), by name.
    pub fn databases(&self, service: &str, env: Option<&str>) -> Result<Vec<DatabaseRow>> {
        self.all(
            &format!(
                "SELECT {COLUMNS} FROM databases WHERE service = ?1 AND (?2 IS NULL OR env = ?2)
                 ORDER BY env, name"
            ),
            params![service, env],
            row,
        )
    }

    pub fn set_database_state(
        &self,
        service: &str,
        env: &str,
        name: &str,
        state: &str,
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE databases SET state = ?4, updated_at = ?5 WHERE service = ?1 AND env = ?2 AND name = ?3",
                params![service, env, name, state, now()],
            )
        })?;
        Ok(())
    }

    /// A rotation begins: `login` is the environment's from now on, the current one is kept as
    /// the old one until [`Store::forget_old_login`]. A rotation already under way keeps its
    /// new login (returns false).
    pub fn begin_rotation(
        &self,
        service: &str,
        env: &str,
        name: &str,
        login: &SealedLogin,
    ) -> Result<bool> {
        let (user, nonce, sealed) = login;
        let changed = self.with(|c| {
            c.execute(
                "UPDATE databases SET old_login = login, old_nonce = nonce, old_sealed = sealed,
                        login = ?4, nonce = ?5, sealed = ?6, updated_at = ?7
                  WHERE service = ?1 AND env = ?2 AND name = ?3 AND old_login IS NULL",
                params![service, env, name, user, nonce, sealed, now()],
            )
        })?;
        Ok(changed == 1)
    }

    pub fn forget_old_login(&self, service: &str, env: &str, name: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE databases SET old_login = NULL, old_nonce = NULL, old_sealed = NULL, updated_at = ?4
                  WHERE service = ?1 AND env = ?2 AND name = ?3",
                params![service, env, name, now()],
            )
        })?;
        Ok(())
    }

    pub fn remove_database(&self, service: &str, env: &str, name: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "DELETE FROM databases WHERE service = ?1 AND env = ?2 AND name = ?3",
                [service, env, name],
            )
        })?;
        Ok(())
    }

    /// The sealed admin password of the server the platform runs for `engine`, made by `make`
    /// on first need (kept, so the server's volume and the store agree across restarts).
    pub fn server_secret(
        &self,
        engine: &str,
        make: impl FnOnce() -> anyhow::Result<(Vec<u8>, Vec<u8>)>,
    ) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
        let get = || {
            self.one(
                "SELECT nonce, sealed FROM database_servers WHERE engine = ?1",
                [engine],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        };
        if let Some(found) = get()? {
            return Ok(found);
        }
        let (nonce, sealed) = make()?;
        self.with(|c| {
            c.execute(
                "INSERT INTO database_servers (engine, nonce, sealed, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(engine) DO NOTHING",
                params![engine, nonce, sealed, now()],
            )
        })?;
        Ok(get()?.unwrap_or((nonce, sealed)))
    }
}
