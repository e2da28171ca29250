//! Releases: immutable (image, effective manifest, secrets version), numbered per service and
//! environment.

use rusqlite::params;

use super::{Migration, Result, Store, StoreError, now, short_id};

pub(super) const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    sql: r#"
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
    "#,
}];

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

impl Store {
    /// The manifest a release was deployed with; None when the release or its manifest cannot be
    /// read.
    pub fn release_manifest(&self, id: &str) -> Option<faas_spec::Manifest> {
        self.release(id).ok()??.manifest().ok()
    }

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
        // SQLite's integers are signed: no release has a version beyond them.
        let Ok(version) = i64::try_from(version) else {
            return Ok(None);
        };
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
}
