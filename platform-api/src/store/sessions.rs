//! Dashboard sessions: a platform token signed in once, kept as a session whose id lives only
//! in an HttpOnly cookie (its hash here). A session ends at its expiry, at sign-out, or when its
//! token is gone.

use faas_spec::api::Role;
use rusqlite::params;

use super::{Migration, Result, Store};

pub(super) const MIGRATIONS: &[Migration] = &[Migration {
    version: 11,
    sql: r#"
    CREATE TABLE dashboard_sessions (
        id_hash TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL,
        csrf TEXT NOT NULL,
        created_us INTEGER NOT NULL,
        expires_us INTEGER NOT NULL
    );
    "#,
}];

/// A live session: who it is, and the token its forms must carry.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub tenant: String,
    pub role: Role,
    pub csrf: String,
    pub expires_us: i64,
}

/// What a session id finds.
#[derive(Debug, Clone)]
pub enum SessionLookup {
    Live(SessionRow),
    Expired,
    Unknown,
}

impl Store {
    pub fn create_session(
        &self,
        id_hash: &str,
        token_hash: &str,
        csrf: &str,
        now_us: i64,
        expires_us: i64,
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "DELETE FROM dashboard_sessions WHERE expires_us < ?1",
                [now_us - 86_400_000_000],
            )?;
            c.execute(
                "INSERT INTO dashboard_sessions (id_hash, token_hash, csrf, created_us, expires_us) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id_hash, token_hash, csrf, now_us, expires_us],
            )
            .map(drop)
        })
    }

    pub fn session(&self, id_hash: &str, now_us: i64) -> Result<SessionLookup> {
        let row = self.one(
            "SELECT t.tenant, t.role, s.csrf, s.expires_us FROM dashboard_sessions s
             JOIN tokens t ON t.hash = s.token_hash WHERE s.id_hash = ?1",
            [id_hash],
            |r| {
                Ok(SessionRow {
                    tenant: r.get(0)?,
                    role: if r.get::<_, String>(1)? == "admin" {
                        Role::Admin
                    } else {
                        Role::Member
                    },
                    csrf: r.get(2)?,
                    expires_us: r.get(3)?,
                })
            },
        )?;
        Ok(match row {
            Some(s) if s.expires_us > now_us => SessionLookup::Live(s),
            Some(_) => SessionLookup::Expired,
            None => SessionLookup::Unknown,
        })
    }

    pub fn end_session(&self, id_hash: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "DELETE FROM dashboard_sessions WHERE id_hash = ?1",
                [id_hash],
            )
            .map(drop)
        })
    }
}
