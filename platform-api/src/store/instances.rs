//! Instances: what the platform started for a release (container, port, state), matched against
//! the runtime at start-up.

use rusqlite::params;

use super::{Migration, Result, Store, now};

pub(super) const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    sql: r#"
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
}];

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

impl InstanceRow {
    /// The runtime's id of its container, or the name it was created under.
    pub fn container(&self) -> &str {
        self.container_id.as_deref().unwrap_or(&self.container_name)
    }
}

impl Store {
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
