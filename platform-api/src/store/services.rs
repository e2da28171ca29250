//! Services: a name and the tenant that owns (and is billed for) it. Deleting one forgets
//! everything of it that any resource keeps per service and environment.

use rusqlite::params;

use super::{Migration, Result, Store, now};

pub(super) const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    sql: r#"
    CREATE TABLE services (
        name TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    "#,
}];

#[derive(Debug, Clone)]
pub struct ServiceRow {
    pub name: String,
    pub owner: String,
    pub created_at: String,
}

impl Store {
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
    pub(super) fn forget(&self, service: &str, env: Option<&str>) -> Result<()> {
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
}
