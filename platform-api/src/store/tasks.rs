//! Task runs and their steps. Each step's state and output are written before the next step
//! is launched; an attempt is launched only after its launch id is recorded, and a result counts
//! only for the attempt recorded as current (compare-and-set on the launch id), so a crash,
//! a redelivery or a late worker never moves a step twice.

use rusqlite::{OptionalExtension, params};

use super::{Migration, Result, Store, now};

pub(super) const MIGRATIONS: &[Migration] = &[Migration {
    version: 10,
    sql: r#"
    CREATE TABLE task_runs (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        task TEXT NOT NULL,
        file TEXT NOT NULL,
        definition TEXT NOT NULL,
        input TEXT NOT NULL,
        state TEXT NOT NULL,
        output TEXT,
        error TEXT,
        parent TEXT,
        child TEXT,
        cancel INTEGER NOT NULL DEFAULT 0,
        deadline_us INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        finished_at TEXT
    );
    CREATE INDEX task_runs_by_tenant ON task_runs (tenant, created_at);
    CREATE INDEX task_runs_by_state ON task_runs (state);
    CREATE TABLE task_steps (
        run TEXT NOT NULL REFERENCES task_runs (id),
        idx INTEGER NOT NULL,
        name TEXT NOT NULL,
        action TEXT NOT NULL,
        state TEXT NOT NULL,
        attempt INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL,
        launch TEXT UNIQUE,
        worker TEXT,
        key TEXT,
        input TEXT,
        output TEXT,
        error TEXT,
        ready_us INTEGER,
        until_us INTEGER,
        started_at TEXT,
        finished_at TEXT,
        PRIMARY KEY (run, idx)
    );
    CREATE INDEX task_steps_by_state ON task_steps (state);
    "#,
}];

/// A task run as the store keeps it.
#[derive(Debug, Clone, Default)]
pub struct TaskRunRow {
    pub id: String,
    pub tenant: String,
    pub task: String,
    pub file: String,
    /// The definition's text (parsed again when needed).
    pub definition: String,
    pub input: serde_json::Value,
    pub state: String,
    pub output: Option<serde_json::Value>,
    pub error: Option<String>,
    pub parent: Option<String>,
    pub child: Option<String>,
    pub cancel: bool,
    pub deadline_us: i64,
    pub created_at: String,
    pub finished_at: Option<String>,
}

impl TaskRunRow {
    pub fn is_over(&self) -> bool {
        !matches!(self.state.as_str(), "pending" | "running")
    }
}

/// A step of a run.
#[derive(Debug, Clone, Default)]
pub struct StepRow {
    pub run: String,
    pub idx: i64,
    pub name: String,
    pub action: String,
    pub state: String,
    pub attempt: i64,
    pub attempts: i64,
    pub launch: Option<String>,
    pub worker: Option<String>,
    pub key: Option<String>,
    pub input: Option<serde_json::Value>,
    pub output: Option<serde_json::Value>,
    pub error: Option<String>,
    pub ready_us: Option<i64>,
    pub until_us: Option<i64>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

const RUN_COLUMNS: &str = "id, tenant, task, file, definition, input, state, output, error, parent, \
    child, cancel, deadline_us, created_at, finished_at";
const STEP_COLUMNS: &str = "run, idx, name, action, state, attempt, attempts, launch, worker, key, \
    input, output, error, ready_us, until_us, started_at, finished_at";

fn json(text: Option<String>) -> Option<serde_json::Value> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TaskRunRow> {
    Ok(TaskRunRow {
        id: r.get(0)?,
        tenant: r.get(1)?,
        task: r.get(2)?,
        file: r.get(3)?,
        definition: r.get(4)?,
        input: json(r.get(5)?).unwrap_or_default(),
        state: r.get(6)?,
        output: json(r.get(7)?),
        error: r.get(8)?,
        parent: r.get(9)?,
        child: r.get(10)?,
        cancel: r.get(11)?,
        deadline_us: r.get(12)?,
        created_at: r.get(13)?,
        finished_at: r.get(14)?,
    })
}

fn step_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StepRow> {
    Ok(StepRow {
        run: r.get(0)?,
        idx: r.get(1)?,
        name: r.get(2)?,
        action: r.get(3)?,
        state: r.get(4)?,
        attempt: r.get(5)?,
        attempts: r.get(6)?,
        launch: r.get(7)?,
        worker: r.get(8)?,
        key: r.get(9)?,
        input: json(r.get(10)?),
        output: json(r.get(11)?),
        error: r.get(12)?,
        ready_us: r.get(13)?,
        until_us: r.get(14)?,
        started_at: r.get(15)?,
        finished_at: r.get(16)?,
    })
}

/// An attempt of a step as [`Store::record_launch`] records it: its launch id, idempotency
/// key, input, the worker it goes to (HTTP), its state (`launched` or `approval`) and deadline.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub run: &'a str,
    pub idx: i64,
    pub attempt: i64,
    pub launch: &'a str,
    pub key: &'a str,
    pub input: &'a serde_json::Value,
    pub worker: Option<&'a str>,
    pub state: &'a str,
    pub until_us: i64,
}

/// How an attempt ended, as [`Store::end_attempt`] writes it.
pub enum AttemptEnd<'a> {
    /// The step succeeded with this output.
    Succeeded(&'a serde_json::Value),
    /// Another attempt comes at `at_us`.
    Retry { error: &'a str, at_us: i64 },
    /// The step (and so the run) failed.
    Failed(&'a str),
}

impl Store {
    /// Records a run and its steps (`(name, action, attempts)`, all `waiting`) in one
    /// transaction; false when a run with this id exists already.
    pub fn create_task_run(
        &self,
        run: &TaskRunRow,
        steps: &[(String, String, u32)],
    ) -> Result<bool> {
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            let n = tx.execute(
                &format!(
                    "INSERT INTO task_runs ({RUN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, NULL, ?8, NULL, 0, ?9, ?10, NULL)
                     ON CONFLICT DO NOTHING"
                ),
                params![
                    run.id, run.tenant, run.task, run.file, run.definition, run.input.to_string(),
                    run.state, run.parent, run.deadline_us, now()
                ],
            )?;
            if n == 1 {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO task_steps (run, idx, name, action, state, attempts) VALUES (?1, ?2, ?3, ?4, 'waiting', ?5)",
                )?;
                for (i, (name, action, attempts)) in steps.iter().enumerate() {
                    stmt.execute(params![run.id, i as i64, name, action, attempts])?;
                }
                if let Some(parent) = &run.parent {
                    tx.execute("UPDATE task_runs SET child = ?2 WHERE id = ?1", params![parent, run.id])?;
                }
            }
            tx.commit()?;
            Ok(n == 1)
        })
    }

    pub fn task_run(&self, id: &str) -> Result<Option<TaskRunRow>> {
        self.one(
            &format!("SELECT {RUN_COLUMNS} FROM task_runs WHERE id = ?1"),
            [id],
            run_row,
        )
    }

    /// Task runs, newest first: a tenant's (every tenant's with None).
    pub fn task_runs(
        &self,
        tenant: Option<&str>,
        state: Option<&str>,
        limit: u32,
    ) -> Result<Vec<TaskRunRow>> {
        self.all(
            &format!(
                "SELECT {RUN_COLUMNS} FROM task_runs WHERE (?1 IS NULL OR tenant = ?1) AND (?2 IS NULL OR state = ?2)
                 ORDER BY created_at DESC, id DESC LIMIT ?3"
            ),
            params![tenant, state, limit],
            run_row,
        )
    }

    /// The runs going (pending or running), oldest first.
    pub fn active_task_runs(&self) -> Result<Vec<String>> {
        self.all(
            "SELECT id FROM task_runs WHERE state IN ('pending', 'running') ORDER BY created_at",
            [],
            |r| r.get(0),
        )
    }

    pub fn steps_of(&self, run: &str) -> Result<Vec<StepRow>> {
        self.all(
            &format!("SELECT {STEP_COLUMNS} FROM task_steps WHERE run = ?1 ORDER BY idx"),
            [run],
            step_row,
        )
    }

    pub fn step_by_launch(&self, launch: &str) -> Result<Option<StepRow>> {
        self.one(
            &format!("SELECT {STEP_COLUMNS} FROM task_steps WHERE launch = ?1"),
            [launch],
            step_row,
        )
    }

    /// Steps waiting for something that has a time: a backoff or deadline that has come, an
    /// action to become available, a worker to beat; with the runs past their deadline.
    pub fn task_runs_due(&self, now_us: i64) -> Result<Vec<String>> {
        self.all(
            "SELECT DISTINCT s.run FROM task_steps s JOIN task_runs r ON r.id = s.run
              WHERE r.state = 'running' AND (s.state = 'ready'
                 OR (s.state IN ('launched', 'running', 'approval') AND s.until_us <= ?1)
                 OR (s.state = 'running' AND s.worker IS NOT NULL AND EXISTS (
                      SELECT 1 FROM action_workers w WHERE w.tenant = r.tenant AND w.action = s.action
                        AND w.worker = s.worker AND w.last_beat_us + 3 * w.interval_ms * 1000 < ?1)))
             UNION SELECT id FROM task_runs WHERE state IN ('pending', 'running') AND (deadline_us <= ?1 OR cancel = 1)",
            [now_us],
            |r| r.get(0),
        )
    }

    /// Launched attempts nobody has taken yet (sent again after a restart).
    pub fn launched_steps(&self) -> Result<Vec<StepRow>> {
        self.all(
            &format!(
                "SELECT {STEP_COLUMNS} FROM task_steps s WHERE state = 'launched'
                   AND EXISTS (SELECT 1 FROM task_runs r WHERE r.id = s.run AND r.state = 'running') ORDER BY run, idx"
            ),
            [],
            step_row,
        )
    }

    /// Moves a run from pending to running; false if it was not pending.
    pub fn start_task_run(&self, id: &str) -> Result<bool> {
        let n = self.with(|c| {
            c.execute(
                "UPDATE task_runs SET state = 'running' WHERE id = ?1 AND state = 'pending'",
                [id],
            )
        })?;
        Ok(n == 1)
    }

    /// Ends a run once, and the steps not over with it (as `step_state`).
    pub fn end_task_run(
        &self,
        id: &str,
        state: &str,
        output: Option<&serde_json::Value>,
        error: Option<&str>,
        step_state: &str,
    ) -> Result<bool> {
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            let at = now();
            let n = tx.execute(
                "UPDATE task_runs SET state = ?2, output = ?3, error = ?4, finished_at = ?5
                  WHERE id = ?1 AND state IN ('pending', 'running')",
                params![id, state, output.map(|o| o.to_string()), error, at],
            )?;
            if n == 1 {
                tx.execute(
                    "UPDATE task_steps SET state = ?2, finished_at = ?3, until_us = NULL
                      WHERE run = ?1 AND state IN ('ready', 'launched', 'running', 'approval')",
                    params![id, step_state, at],
                )?;
            }
            tx.commit()?;
            Ok(n == 1)
        })
    }

    pub fn request_task_cancel(&self, id: &str) -> Result<bool> {
        let n = self.with(|c| {
            c.execute(
                "UPDATE task_runs SET cancel = 1 WHERE id = ?1 AND state IN ('pending', 'running') AND cancel = 0",
                [id],
            )
        })?;
        Ok(n == 1)
    }

    /// A waiting step becomes ready (its first attempt comes).
    pub fn make_ready(&self, run: &str, idx: i64, now_us: i64) -> Result<bool> {
        let n = self.with(|c| {
            c.execute(
                "UPDATE task_steps SET state = 'ready', ready_us = ?3, until_us = NULL WHERE run = ?1 AND idx = ?2 AND state = 'waiting'",
                params![run, idx, now_us],
            )
        })?;
        Ok(n == 1)
    }

    /// Records the next attempt of a ready step before it is sent. False if the step was not
    /// ready at the attempt before (another decision came first).
    pub fn record_launch(&self, a: &Attempt<'_>) -> Result<bool> {
        let n = self.with(|c| {
            c.prepare_cached(
                "UPDATE task_steps SET state = ?7, attempt = ?3, launch = ?4, key = ?5, input = ?6, worker = ?8,
                   until_us = ?9, error = NULL, started_at = COALESCE(started_at, ?10)
                  WHERE run = ?1 AND idx = ?2 AND state = 'ready' AND attempt = ?3 - 1",
            )?
            .execute(params![
                a.run,
                a.idx,
                a.attempt,
                a.launch,
                a.key,
                a.input.to_string(),
                a.state,
                a.worker,
                a.until_us,
                now()
            ])
        })?;
        Ok(n == 1)
    }

    /// A worker takes a launched attempt: it runs now, on that worker, until `until_us`.
    pub fn claim_launch(&self, launch: &str, worker: &str) -> Result<bool> {
        let n = self.with(|c| {
            c.prepare_cached("UPDATE task_steps SET state = 'running', worker = ?2 WHERE launch = ?1 AND state = 'launched'")?
                .execute(params![launch, worker])
        })?;
        Ok(n == 1)
    }

    /// Ends the current attempt of a step, if `launch` is still it and it is going.
    pub fn end_attempt(&self, launch: &str, end: AttemptEnd<'_>) -> Result<bool> {
        let at = now();
        let n = self.with(|c| match end {
            AttemptEnd::Succeeded(output) => c.prepare_cached(
                "UPDATE task_steps SET state = 'succeeded', output = ?2, error = NULL, until_us = NULL, finished_at = ?3
                  WHERE launch = ?1 AND state IN ('launched', 'running', 'approval')",
            )?.execute(params![launch, output.to_string(), at]),
            AttemptEnd::Retry { error, at_us } => c.prepare_cached(
                "UPDATE task_steps SET state = 'ready', error = ?2, until_us = ?3, ready_us = ?3, worker = NULL
                  WHERE launch = ?1 AND state IN ('launched', 'running', 'approval')",
            )?.execute(params![launch, error, at_us]),
            AttemptEnd::Failed(error) => c.prepare_cached(
                "UPDATE task_steps SET state = 'failed', error = ?2, until_us = NULL, finished_at = ?3
                  WHERE launch = ?1 AND state IN ('launched', 'running', 'approval')",
            )?.execute(params![launch, error, at]),
        })?;
        Ok(n == 1)
    }

    /// A ready step fails without an attempt (its input does not fit, its action never came).
    pub fn fail_ready_step(&self, run: &str, idx: i64, error: &str) -> Result<bool> {
        let n = self.with(|c| {
            c.execute(
                "UPDATE task_steps SET state = 'failed', error = ?3, until_us = NULL, finished_at = ?4
                  WHERE run = ?1 AND idx = ?2 AND state = 'ready'",
                params![run, idx, error, now()],
            )
        })?;
        Ok(n == 1)
    }

    /// The run a launch belongs to, and its tenant.
    pub fn launch_owner(&self, launch: &str) -> Result<Option<(String, String)>> {
        self.with(|c| {
            c.query_row(
                "SELECT r.id, r.tenant FROM task_steps s JOIN task_runs r ON r.id = s.run WHERE s.launch = ?1",
                [launch],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn store_with_run() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("platform.db")).unwrap();
        let run = TaskRunRow {
            id: "task-1".into(),
            tenant: "a@b.io".into(),
            task: "t".into(),
            file: "t.toml".into(),
            definition: String::new(),
            input: json!({}),
            state: "running".into(),
            deadline_us: i64::MAX,
            ..Default::default()
        };
        let steps = [("s".to_owned(), "act".to_owned(), 3)];
        assert!(store.create_task_run(&run, &steps).unwrap());
        assert!(
            !store.create_task_run(&run, &steps).unwrap(),
            "recorded once"
        );
        (dir, store)
    }

    #[test]
    fn an_attempt_is_recorded_once_and_only_its_own_result_counts() {
        let (_dir, store) = store_with_run();
        let input = json!({"x": 1});
        assert!(store.make_ready("task-1", 0, 1).unwrap());
        let first = Attempt {
            run: "task-1",
            idx: 0,
            attempt: 1,
            launch: "task-1.s.1",
            key: "k",
            input: &input,
            worker: None,
            state: "launched",
            until_us: 10,
        };
        assert!(store.record_launch(&first).unwrap());
        assert!(
            !store.record_launch(&first).unwrap(),
            "a second decision for the same attempt is refused"
        );
        assert!(store.claim_launch("task-1.s.1", "w1").unwrap());
        assert!(
            !store.claim_launch("task-1.s.1", "w2").unwrap(),
            "taken already"
        );
        assert!(
            store
                .end_attempt(
                    "task-1.s.1",
                    AttemptEnd::Retry {
                        error: "boom",
                        at_us: 20
                    }
                )
                .unwrap()
        );
        assert!(
            !store
                .end_attempt("task-1.s.1", AttemptEnd::Succeeded(&json!(1)))
                .unwrap(),
            "a late result of the first attempt does not count"
        );
        let second = Attempt {
            attempt: 2,
            launch: "task-1.s.2",
            until_us: 30,
            ..first
        };
        assert!(store.record_launch(&second).unwrap());
        assert!(
            store.step_by_launch("task-1.s.1").unwrap().is_none(),
            "superseded"
        );
        assert!(
            store
                .end_attempt("task-1.s.2", AttemptEnd::Succeeded(&json!({"ok": true})))
                .unwrap()
        );
        let step = &store.steps_of("task-1").unwrap()[0];
        assert_eq!((step.state.as_str(), step.attempt), ("succeeded", 2));
        assert_eq!(step.output, Some(json!({"ok": true})));
    }

    #[test]
    fn a_run_ends_once_and_takes_its_going_steps_with_it() {
        let (_dir, store) = store_with_run();
        store.make_ready("task-1", 0, 1).unwrap();
        assert!(
            store
                .end_task_run("task-1", "cancelled", None, Some("by request"), "cancelled")
                .unwrap()
        );
        assert!(
            !store
                .end_task_run("task-1", "failed", None, None, "cancelled")
                .unwrap()
        );
        let run = store.task_run("task-1").unwrap().unwrap();
        assert_eq!(
            (run.state.as_str(), run.error.as_deref()),
            ("cancelled", Some("by request"))
        );
        assert_eq!(store.steps_of("task-1").unwrap()[0].state, "cancelled");
        assert!(store.task_runs_due(i64::MAX).unwrap().is_empty());
    }
}
