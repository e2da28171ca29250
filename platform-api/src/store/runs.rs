//! One-off runs: function runs and cron ticks. A run is recorded before its container exists,
//! and its container is named after it, so a crash never makes a second one; a cron tick is
//! recorded once (UNIQUE over service, environment, entry and time) before it is launched.

use rusqlite::{OptionalExtension, params};

use super::{Migration, Result, Store, now};

pub(super) const MIGRATIONS: &[Migration] = &[Migration {
    version: 9,
    sql: r#"
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        tenant TEXT NOT NULL,
        service TEXT,
        env TEXT,
        release_id TEXT,
        entry TEXT,
        tick TEXT,
        image TEXT NOT NULL,
        image_ref TEXT NOT NULL,
        command TEXT NOT NULL,
        cpu REAL NOT NULL,
        memory INTEGER NOT NULL,
        timeout_ms INTEGER NOT NULL,
        env_nonce BLOB,
        env_sealed BLOB,
        email TEXT,
        state TEXT NOT NULL,
        exit_code INTEGER,
        reason TEXT,
        cancel INTEGER NOT NULL DEFAULT 0,
        started_us INTEGER,
        finished_us INTEGER,
        cost INTEGER,
        currency TEXT,
        notified TEXT,
        notify_attempts INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
    );
    CREATE UNIQUE INDEX runs_by_tick ON runs (service, env, entry, tick) WHERE kind = 'cron';
    CREATE INDEX runs_by_tenant ON runs (tenant, created_at);
    CREATE INDEX runs_by_state ON runs (state);
    "#,
}];

/// One run as the store keeps it.
#[derive(Debug, Clone, Default)]
pub struct RunRow {
    pub id: String,
    /// `function` or `cron`.
    pub kind: String,
    pub tenant: String,
    pub service: Option<String>,
    pub env: Option<String>,
    pub release_id: Option<String>,
    pub entry: Option<String>,
    /// A cron run's scheduled time, RFC 3339 UTC.
    pub tick: Option<String>,
    pub image: String,
    pub image_ref: String,
    pub command: Vec<String>,
    pub cpu: f64,
    pub memory: u64,
    pub timeout_ms: i64,
    /// A function run's variables, sealed as one JSON object.
    pub env_sealed: Option<(Vec<u8>, Vec<u8>)>,
    pub email: Option<String>,
    pub state: String,
    pub exit_code: Option<i64>,
    pub reason: Option<String>,
    pub cancel: bool,
    pub started_us: Option<i64>,
    pub finished_us: Option<i64>,
    pub cost: Option<i64>,
    pub currency: Option<String>,
    pub notified: Option<String>,
    pub notify_attempts: i64,
    pub created_at: String,
}

impl RunRow {
    /// Whether it has ended (or never ran).
    pub fn is_over(&self) -> bool {
        !matches!(self.state.as_str(), "pending" | "running")
    }

    /// `faas-run-<hex>` (the id is `run-<hex>`).
    pub fn container_name(&self) -> String {
        format!("faas-{}", self.id)
    }
}

const COLUMNS: &str = "id, kind, tenant, service, env, release_id, entry, tick, image, image_ref, \
    command, cpu, memory, timeout_ms, env_nonce, env_sealed, email, state, exit_code, reason, \
    cancel, started_us, finished_us, cost, currency, notified, notify_attempts, created_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    let command: String = r.get(10)?;
    let nonce: Option<Vec<u8>> = r.get(14)?;
    let sealed: Option<Vec<u8>> = r.get(15)?;
    Ok(RunRow {
        id: r.get(0)?,
        kind: r.get(1)?,
        tenant: r.get(2)?,
        service: r.get(3)?,
        env: r.get(4)?,
        release_id: r.get(5)?,
        entry: r.get(6)?,
        tick: r.get(7)?,
        image: r.get(8)?,
        image_ref: r.get(9)?,
        command: serde_json::from_str(&command).unwrap_or_default(),
        cpu: r.get(11)?,
        memory: r.get(12)?,
        timeout_ms: r.get(13)?,
        env_sealed: nonce.zip(sealed),
        email: r.get(16)?,
        state: r.get(17)?,
        exit_code: r.get(18)?,
        reason: r.get(19)?,
        cancel: r.get(20)?,
        started_us: r.get(21)?,
        finished_us: r.get(22)?,
        cost: r.get(23)?,
        currency: r.get(24)?,
        notified: r.get(25)?,
        notify_attempts: r.get(26)?,
        created_at: r.get(27)?,
    })
}

impl Store {
    /// Records a run; with a cron tick already recorded (by this or an earlier life of the
    /// daemon), nothing is written and it answers false.
    pub fn record_run(&self, run: &RunRow) -> Result<bool> {
        let command = serde_json::to_string(&run.command).unwrap_or_else(|_| "[]".into());
        let (nonce, sealed) = run.env_sealed.clone().unzip();
        let n = self.with(|c| {
            c.execute(
                &format!(
                    "INSERT INTO runs ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, 0, NULL, ?21, NULL, NULL, NULL, 0, ?22)
                     ON CONFLICT DO NOTHING"
                ),
                params![
                    run.id, run.kind, run.tenant, run.service, run.env, run.release_id, run.entry,
                    run.tick, run.image, run.image_ref, command, run.cpu, run.memory, run.timeout_ms,
                    nonce, sealed, run.email, run.state, run.exit_code, run.reason, run.finished_us,
                    now()
                ],
            )
        })?;
        Ok(n == 1)
    }

    pub fn run(&self, id: &str) -> Result<Option<RunRow>> {
        self.one(
            &format!("SELECT {COLUMNS} FROM runs WHERE id = ?1"),
            [id],
            row,
        )
    }

    /// Runs, newest first: a tenant's (every tenant's with None), of a kind, at most `limit`.
    pub fn runs(
        &self,
        tenant: Option<&str>,
        kind: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RunRow>> {
        self.all(
            &format!(
                "SELECT {COLUMNS} FROM runs WHERE (?1 IS NULL OR tenant = ?1) AND (?2 IS NULL OR kind = ?2)
                 ORDER BY created_at DESC, id DESC LIMIT ?3"
            ),
            params![tenant, kind, limit],
            row,
        )
    }

    /// A cron entry's runs and ticks, newest first (runs by hand have no tick).
    pub fn cron_history(
        &self,
        service: &str,
        env: &str,
        entry: &str,
        limit: u32,
    ) -> Result<Vec<RunRow>> {
        self.all(
            &format!(
                "SELECT {COLUMNS} FROM runs WHERE kind = 'cron' AND service = ?1 AND env = ?2 AND entry = ?3
                 ORDER BY created_at DESC, id DESC LIMIT ?4"
            ),
            params![service, env, entry, limit],
            row,
        )
    }

    /// The runs not over: pending or running.
    pub fn active_runs(&self) -> Result<Vec<RunRow>> {
        self.all(
            &format!("SELECT {COLUMNS} FROM runs WHERE state IN ('pending', 'running') ORDER BY created_at"),
            [],
            row,
        )
    }

    /// Runs over whose report has not gone out yet.
    pub fn runs_to_notify(&self) -> Result<Vec<RunRow>> {
        self.all(
            &format!(
                "SELECT {COLUMNS} FROM runs WHERE email IS NOT NULL AND state NOT IN ('pending', 'running')
                 AND cost IS NOT NULL AND (notified IS NULL OR notified LIKE 'retry%') ORDER BY created_at"
            ),
            [],
            row,
        )
    }

    pub fn set_run_started(&self, id: &str, started_us: i64) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE runs SET state = 'running', started_us = ?2 WHERE id = ?1 AND state = 'pending'",
                params![id, started_us],
            )
        })?;
        Ok(())
    }

    /// Ends a run once: false when it had ended already.
    pub fn finish_run(
        &self,
        id: &str,
        state: &str,
        exit_code: Option<i64>,
        reason: Option<&str>,
        finished_us: Option<i64>,
    ) -> Result<bool> {
        let n = self.with(|c| {
            c.execute(
                "UPDATE runs SET state = ?2, exit_code = ?3, reason = ?4, finished_us = ?5
                  WHERE id = ?1 AND state IN ('pending', 'running')",
                params![id, state, exit_code, reason, finished_us],
            )
        })?;
        Ok(n == 1)
    }

    /// Asks a run to stop; false when it is over already.
    pub fn request_cancel(&self, id: &str) -> Result<bool> {
        let n = self.with(|c| {
            c.execute(
                "UPDATE runs SET cancel = 1 WHERE id = ?1 AND state IN ('pending', 'running') AND cancel = 0",
                [id],
            )
        })?;
        Ok(n == 1)
    }

    pub fn set_run_cost(&self, id: &str, cost: i64, currency: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE runs SET cost = ?2, currency = ?3 WHERE id = ?1",
                params![id, cost, currency],
            )
        })?;
        Ok(())
    }

    pub fn set_run_notified(&self, id: &str, outcome: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE runs SET notified = ?2, notify_attempts = notify_attempts + 1 WHERE id = ?1",
                params![id, outcome],
            )
        })?;
        Ok(())
    }

    /// The latest scheduled tick of a cron entry.
    pub fn latest_tick(&self, service: &str, env: &str, entry: &str) -> Result<Option<RunRow>> {
        self.one(
            &format!(
                "SELECT {COLUMNS} FROM runs WHERE kind = 'cron' AND service = ?1 AND env = ?2 AND entry = ?3
                   AND tick IS NOT NULL ORDER BY tick DESC LIMIT 1"
            ),
            params![service, env, entry],
            row,
        )
    }

    /// Whether a run with this id exists.
    pub fn run_exists(&self, id: &str) -> Result<bool> {
        Ok(self
            .with(|c| {
                c.query_row("SELECT 1 FROM runs WHERE id = ?1", [id], |_| Ok(()))
                    .optional()
            })?
            .is_some())
    }
}
