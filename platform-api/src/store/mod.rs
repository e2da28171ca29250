//! The platform's state in one SQLite file (WAL, one writer): one module per resource, each
//! owning its tables, its migrations and its queries, over the shared connection and migration
//! core here. Docker holds the containers; this file holds intent and history, so a restarted
//! daemon knows what should run and which deployment to resume.

mod actions;
mod databases;
mod deployments;
mod environments;
mod instances;
mod invoices;
mod meta;
mod problems;
mod releases;
mod runs;
mod secrets;
mod series;
mod services;
mod sessions;
mod tariffs;
mod tasks;
mod tokens;
mod usage;

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension};

pub use actions::{MISSED_BEATS, WorkerRow};
pub use databases::{DatabaseRow, SealedLogin};
pub use deployments::{DeploymentRow, NewStep};
pub use environments::Traffic;
pub use instances::InstanceRow;
pub use invoices::{InvoiceRow, NotificationRow};
pub use problems::{
    EngineEvent, ErrorGroupRow, FinishedRun, LatestDeployment, Occurrence, ProblemRow, Raised,
};
pub use releases::ReleaseRow;
pub use runs::RunRow;
pub use secrets::SealedSecret;
pub use series::{Buckets, Delta, HOUR, MINUTE, Point};
pub use services::ServiceRow;
pub use sessions::{SessionLookup, SessionRow};
pub use tariffs::{PriceRow, TariffRefusal, TariffRow, TariffVersionRow};
pub use tasks::{Attempt, AttemptEnd, StepRow, TaskRunRow};
pub use tokens::TokenRow;
pub use usage::{Cursor, MeterRound, Piece, Priced, Progress, UsageRecord};

/// One resource's part of a schema version. The file's `user_version` says how many versions
/// have run; every part of a version runs in one transaction, so a version is all or nothing.
pub(crate) struct Migration {
    pub version: i64,
    pub sql: &'static str,
}

/// Every resource's migrations, in the order their parts run within a version (tables others
/// refer to first).
const MIGRATIONS: &[&[Migration]] = &[
    meta::MIGRATIONS,
    tokens::MIGRATIONS,
    services::MIGRATIONS,
    releases::MIGRATIONS,
    environments::MIGRATIONS,
    deployments::MIGRATIONS,
    instances::MIGRATIONS,
    secrets::MIGRATIONS,
    tariffs::MIGRATIONS,
    usage::MIGRATIONS,
    invoices::MIGRATIONS,
    databases::MIGRATIONS,
    runs::MIGRATIONS,
    actions::MIGRATIONS,
    tasks::MIGRATIONS,
    problems::MIGRATIONS,
    series::MIGRATIONS,
    sessions::MIGRATIONS,
];

/// The newest schema version this build knows.
fn latest_version() -> i64 {
    MIGRATIONS
        .iter()
        .flat_map(|parts| parts.iter().map(|m| m.version))
        .max()
        .unwrap_or(0)
}

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

/// A time in µs since the epoch as the API shows it: RFC 3339 to the millisecond, UTC.
pub fn rfc3339_ms(us: i64) -> String {
    let at =
        std::time::UNIX_EPOCH + std::time::Duration::from_micros(u64::try_from(us).unwrap_or(0));
    humantime::format_rfc3339_millis(at).to_string()
}

pub struct Store {
    conn: Mutex<Connection>,
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
        // 64 MiB of pages (the default is 2 MiB): the usage records being priced stay in memory.
        conn.pragma_update(None, "cache_size", -65_536)?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let known = latest_version();
        if version > known {
            return Err(StoreError::TooNew {
                path: shown,
                found: version,
                known,
            });
        }
        for next in version + 1..=known {
            let tx = conn.unchecked_transaction()?;
            for part in MIGRATIONS.iter().flat_map(|parts| parts.iter()) {
                if part.version == next {
                    tx.execute_batch(part.sql)?;
                }
            }
            tx.pragma_update(None, "user_version", next)?;
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
}

/// A short random id (12 hex digits).
pub fn short_id() -> String {
    use rand::Rng;
    let bytes: [u8; 6] = rand::rng().random();
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use faas_spec::Strategy;
    use faas_spec::api::DeploymentState;

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
