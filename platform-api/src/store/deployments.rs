//! Deployments and their steps: each step persisted with the state it leads to, so a restarted
//! daemon resumes where the last step left off; promote/abort commands wait in the row.

use faas_spec::Strategy;
use faas_spec::api::{DeploymentState, Step};
use rusqlite::{OptionalExtension, params};

use super::{Migration, Result, Store, now, short_id};

pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: r#"
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
    "#,
    },
    Migration {
        version: 4,
        sql: r#"
    ALTER TABLE deployments ADD COLUMN manual INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE deployments ADD COLUMN command TEXT;
    ALTER TABLE deployment_steps ADD COLUMN canary TEXT;
    "#,
    },
    Migration {
        version: 11,
        sql: r#"
    ALTER TABLE deployments ADD COLUMN actor TEXT;
    CREATE INDEX deployments_by_time ON deployments (created_at);
    "#,
    },
];

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

fn strategy_of(s: &str) -> Strategy {
    s.parse().unwrap_or_default()
}

impl Store {
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
    /// Who asked for a deployment (the tenant of the token).
    pub fn set_deployment_actor(&self, id: &str, actor: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE deployments SET actor = ?2 WHERE id = ?1",
                params![id, actor],
            )
            .map(drop)
        })
    }

    /// The newest deployments of the given services, across environments, with who asked.
    pub fn recent_deployments(
        &self,
        services: &[String],
        limit: usize,
    ) -> Result<Vec<(DeploymentRow, Option<String>)>> {
        let all = self.all(
            "SELECT id, actor FROM deployments ORDER BY created_at DESC, rowid DESC LIMIT ?1",
            [(limit * 4).max(200) as i64],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)),
        )?;
        let mut out = Vec::new();
        for (id, actor) in all {
            if out.len() >= limit {
                break;
            }
            if let Some(row) = self.deployment(&id)?
                && services.contains(&row.service)
            {
                out.push((row, actor));
            }
        }
        Ok(out)
    }

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
}
