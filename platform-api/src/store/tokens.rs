//! API tokens: only their hashes, each with its tenant and role.

use faas_spec::api::Role;
use rusqlite::params;

use super::{Migration, Result, Store, now};

pub(super) const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    sql: r#"
    CREATE TABLE tokens (
        id INTEGER PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        tenant TEXT NOT NULL,
        role TEXT NOT NULL,
        name TEXT,
        created_at TEXT NOT NULL
    );
    "#,
}];

#[derive(Debug, Clone)]
pub struct TokenRow {
    pub tenant: String,
    pub role: Role,
}

fn role_of(s: &str) -> Role {
    if s == "admin" {
        Role::Admin
    } else {
        Role::Member
    }
}

impl Store {
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
}
