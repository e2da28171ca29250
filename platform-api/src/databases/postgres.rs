//! PostgreSQL: for each principal, a role that logs in with its password (no superuser, no
//! CREATEDB, no CREATEROLE, no replication, no BYPASSRLS) and owns a database of the same name,
//! which PUBLIC may not connect to. The password goes to the server only as a SCRAM-SHA-256
//! verifier made here, so it is in no statement, server log or `pg_stat_activity`.
//!
//! Every operation converges: run again after a crash at any point, it finishes what is missing
//! and duplicates nothing (a role without its database gets it; a database is never made twice).

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

/// What a server said no to, or that it did not answer.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("the PostgreSQL server at {server} does not answer its admin: {why}")]
    Unreachable { server: String, why: String },
    #[error("PostgreSQL refused `{what}`: {why}")]
    Refused { what: String, why: String },
}

pub type Result<T> = std::result::Result<T, PgError>;

/// What a principal has on the server now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Present {
    pub role: bool,
    pub can_login: bool,
    pub database: bool,
}

/// An admin connection to one server.
pub struct PgAdmin {
    client: Client,
}

/// `"name"`: principals are `[a-z0-9_]` by construction; quoted all the same.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The SCRAM-SHA-256 verifier of a password, as `CREATE ROLE … PASSWORD` takes it.
fn verifier(password: &str) -> String {
    postgres_protocol::password::scram_sha_256(password.as_bytes())
}

impl PgAdmin {
    /// Connects as the server's admin (`postgres://USER[:PASSWORD]@HOST:PORT[/DATABASE]`).
    pub async fn connect(admin_url: &str) -> Result<Self> {
        let server = super::redact(admin_url);
        let (client, connection) =
            tokio_postgres::connect(admin_url, NoTls)
                .await
                .map_err(|e| PgError::Unreachable {
                    server: server.clone(),
                    why: e.to_string(),
                })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!("PostgreSQL admin connection to {server}: {e}");
            }
        });
        Ok(Self { client })
    }

    async fn run(&self, what: &str, sql: &str) -> Result<()> {
        self.client
            .batch_execute(sql)
            .await
            .map_err(|e| refused(what, &e))
    }

    /// What exists of `principal`.
    pub async fn present(&self, principal: &str) -> Result<Present> {
        let role = self
            .client
            .query_opt(
                "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1",
                &[&principal],
            )
            .await
            .map_err(|e| refused("read pg_roles", &e))?;
        let database = self
            .client
            .query_opt(
                "SELECT 1 FROM pg_database WHERE datname = $1",
                &[&principal],
            )
            .await
            .map_err(|e| refused("read pg_database", &e))?;
        Ok(Present {
            role: role.is_some(),
            can_login: role.is_some_and(|r| r.get(0)),
            database: database.is_some(),
        })
    }

    /// Makes `principal` a role that logs in with `password` and owns the database of its
    /// name, which only it may connect to. Idempotent; the password is set anew each time.
    pub async fn ensure(&self, principal: &str, password: &str) -> Result<()> {
        let now = self.present(principal).await?;
        if !now.role {
            self.create(principal, "ROLE", "", &SqlState::DUPLICATE_OBJECT)
                .await?;
        }
        self.set_login(principal, password, "").await?;
        let role = ident(principal);
        if !now.database {
            // CREATE DATABASE cannot share a transaction: a crash before it leaves the role
            // alone, and the next attempt comes here again.
            self.create(
                principal,
                "DATABASE",
                &format!("OWNER {role} ENCODING 'UTF8' TEMPLATE template0"),
                &SqlState::DUPLICATE_DATABASE,
            )
            .await?;
        }
        self.run(
            &format!("the grants on database {role}"),
            &format!(
                "ALTER DATABASE {role} OWNER TO {role};
                 REVOKE ALL ON DATABASE {role} FROM PUBLIC;
                 GRANT CONNECT, TEMPORARY ON DATABASE {role} TO {role};"
            ),
        )
        .await
    }

    /// A new password for `principal`: the old one is refused from now on (sessions already
    /// open go on until they close).
    pub async fn rotate(&self, principal: &str, password: &str) -> Result<()> {
        let role = ident(principal);
        self.run(
            &format!("ALTER ROLE {role} PASSWORD"),
            &format!("ALTER ROLE {role} PASSWORD '{}'", verifier(password)),
        )
        .await
    }

    /// Makes `login` a second role that logs in with `password` and acts as `owner` (a member
    /// of it, its sessions set to it, so what it makes belongs to `owner`): rotation gives
    /// the new password to a role of its own while the old one still opens. Idempotent.
    pub async fn ensure_member(&self, login: &str, owner: &str, password: &str) -> Result<()> {
        if !self.present(login).await?.role {
            self.create(login, "ROLE", "", &SqlState::DUPLICATE_OBJECT)
                .await?;
        }
        let (role, owner) = (ident(login), ident(owner));
        self.set_login(
            login,
            password,
            &format!("GRANT {owner} TO {role}; ALTER ROLE {role} SET role = {owner};"),
        )
        .await
    }

    /// `CREATE <kind> "<name>" <rest>`; one made meanwhile by another attempt (`duplicate`) is
    /// as good.
    async fn create(&self, name: &str, kind: &str, rest: &str, duplicate: &SqlState) -> Result<()> {
        let what = format!("CREATE {kind} {}", ident(name));
        match self.client.batch_execute(&format!("{what} {rest}")).await {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some(duplicate) => Ok(()),
            Err(e) => Err(refused(&what, &e)),
        }
    }

    /// `role` logs in with `password` (given as its verifier) and may do nothing beyond what it
    /// owns or is granted; `then` runs in the same call.
    async fn set_login(&self, role: &str, password: &str, then: &str) -> Result<()> {
        let role = ident(role);
        self.run(
            &format!("ALTER ROLE {role}"),
            &format!(
                "ALTER ROLE {role} LOGIN PASSWORD '{}' NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS; {then}",
                verifier(password)
            ),
        )
        .await
    }

    /// `role` can no longer log in with any password anyone knows (a fresh one, forgotten at
    /// once); its open sessions go on until they close. A missing role is fine.
    pub async fn lock_out(&self, role: &str) -> Result<()> {
        if !self.present(role).await?.role {
            return Ok(());
        }
        self.rotate(role, &super::password()).await
    }

    /// Drops a role [`PgAdmin::ensure_member`] made (a missing one is fine).
    pub async fn drop_role(&self, role: &str) -> Result<()> {
        let name = ident(role);
        self.run(
            &format!("DROP ROLE {name}"),
            &format!("DROP ROLE IF EXISTS {name}"),
        )
        .await
    }

    /// Detaches: the role may no longer log in and its sessions end; the database and every
    /// row in it stay, for a later [`PgAdmin::ensure`] to hand back.
    pub async fn detach(&self, principal: &str) -> Result<()> {
        if !self.present(principal).await?.role {
            return Ok(());
        }
        let role = ident(principal);
        self.run(
            &format!("ALTER ROLE {role} NOLOGIN"),
            &format!("ALTER ROLE {role} NOLOGIN"),
        )
        .await?;
        self.client
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
                &[&principal],
            )
            .await
            .map_err(|e| refused("end the role's sessions", &e))?;
        Ok(())
    }

    /// Drops the database (its data is gone) and the role.
    pub async fn destroy(&self, principal: &str) -> Result<()> {
        let role = ident(principal);
        self.run(
            &format!("DROP DATABASE {role}"),
            &format!("DROP DATABASE IF EXISTS {role} WITH (FORCE)"),
        )
        .await?;
        self.run(
            &format!("DROP ROLE {role}"),
            &format!("DROP ROLE IF EXISTS {role}"),
        )
        .await
    }
}

fn refused(what: &str, e: &tokio_postgres::Error) -> PgError {
    PgError::Refused {
        what: what.to_owned(),
        why: e
            .as_db_error()
            .map_or_else(|| e.to_string(), |d| d.message().to_owned()),
    }
}

/// The URL a service connects with.
pub fn url(principal: &str, password: &str, host: &str, port: u16) -> String {
    login_url(principal, principal, password, host, port)
}

/// The URL of `login` (the principal or its rotation role) to the principal's database.
pub fn login_url(login: &str, principal: &str, password: &str, host: &str, port: u16) -> String {
    format!("postgres://{login}:{password}@{host}:{port}/{principal}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_gets_a_verifier_not_the_password() {
        let v = verifier("hunter2hunter2");
        assert!(v.starts_with("SCRAM-SHA-256$4096:"), "{v}");
        assert!(!v.contains("hunter2") && !v.contains('\''));
    }
}
