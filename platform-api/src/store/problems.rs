//! What happened to instances (the engine's events, persisted as they arrive: the engine keeps
//! only a short buffer and forgets it when it restarts), the problems derived from them and
//! from the router's figures, and the exceptions services logged, grouped.

use rusqlite::{OptionalExtension, params};

use super::{Migration, Result, Store};

pub(super) const MIGRATIONS: &[Migration] = &[Migration {
    version: 11,
    sql: r#"
    CREATE TABLE engine_events (
        id INTEGER PRIMARY KEY,
        instance TEXT NOT NULL,
        container TEXT NOT NULL,
        service TEXT NOT NULL,
        env TEXT NOT NULL,
        release_id TEXT,
        kind TEXT NOT NULL,
        exit_code INTEGER,
        oom INTEGER NOT NULL DEFAULT 0,
        at_us INTEGER NOT NULL,
        UNIQUE (container, kind, at_us)
    );
    CREATE INDEX engine_events_by_instance ON engine_events (instance, at_us);
    CREATE TABLE problems (
        id INTEGER PRIMARY KEY,
        service TEXT NOT NULL,
        env TEXT NOT NULL,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        release_id TEXT,
        summary TEXT NOT NULL,
        started_us INTEGER NOT NULL,
        last_us INTEGER NOT NULL,
        ended_us INTEGER,
        count INTEGER NOT NULL,
        logs TEXT NOT NULL DEFAULT '[]'
    );
    CREATE UNIQUE INDEX problems_open ON problems (service, env, kind, subject) WHERE ended_us IS NULL;
    CREATE INDEX problems_by_service ON problems (service, started_us);
    CREATE TABLE error_groups (
        service TEXT NOT NULL,
        env TEXT NOT NULL,
        error_type TEXT NOT NULL,
        location TEXT NOT NULL,
        function TEXT,
        message TEXT NOT NULL,
        traceback TEXT,
        count INTEGER NOT NULL,
        first_us INTEGER NOT NULL,
        last_us INTEGER NOT NULL,
        PRIMARY KEY (service, env, error_type, location)
    );
    "#,
}];

/// One engine event of one instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineEvent {
    pub instance: String,
    pub container: String,
    pub service: String,
    pub env: String,
    pub release_id: Option<String>,
    /// `start`, `die` or `oom`.
    pub kind: String,
    pub exit_code: Option<i64>,
    /// A death the kernel's OOM killer caused.
    pub oom: bool,
    pub at_us: i64,
}

/// A problem as the store keeps it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProblemRow {
    pub id: i64,
    pub service: String,
    pub env: String,
    pub kind: String,
    pub subject: String,
    pub release_id: Option<String>,
    pub summary: String,
    pub started_us: i64,
    pub last_us: i64,
    pub ended_us: Option<i64>,
    pub count: i64,
    pub logs: Vec<String>,
}

/// What opens a problem, or adds to the open one of the same kind and subject.
#[derive(Debug, Clone, Default)]
pub struct Occurrence<'a> {
    pub service: &'a str,
    pub env: &'a str,
    pub kind: &'a str,
    pub subject: &'a str,
    pub release_id: Option<&'a str>,
    pub summary: &'a str,
    pub at_us: i64,
    /// How many times it happened (0: still true, not a new happening).
    pub count: i64,
    /// The last log lines; empty keeps the ones it has.
    pub logs: &'a [String],
}

/// One exception a service logged.
#[derive(Debug, Clone, Default)]
pub struct Raised<'a> {
    pub service: &'a str,
    pub env: &'a str,
    pub error_type: &'a str,
    pub location: &'a str,
    pub function: Option<&'a str>,
    pub message: &'a str,
    pub traceback: Option<&'a str>,
    pub at_us: i64,
}

#[derive(Debug, Clone, Default)]
pub struct ErrorGroupRow {
    pub service: String,
    pub env: String,
    pub error_type: String,
    pub location: String,
    pub function: Option<String>,
    pub message: String,
    pub traceback: Option<String>,
    pub count: i64,
    pub first_us: i64,
    pub last_us: i64,
}

const PROBLEM_COLUMNS: &str = "id, service, env, kind, subject, release_id, summary, started_us, last_us, ended_us, count, logs";

fn problem_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<ProblemRow> {
    let logs: String = r.get(11)?;
    Ok(ProblemRow {
        id: r.get(0)?,
        service: r.get(1)?,
        env: r.get(2)?,
        kind: r.get(3)?,
        subject: r.get(4)?,
        release_id: r.get(5)?,
        summary: r.get(6)?,
        started_us: r.get(7)?,
        last_us: r.get(8)?,
        ended_us: r.get(9)?,
        count: r.get(10)?,
        logs: serde_json::from_str(&logs).unwrap_or_default(),
    })
}

impl Store {
    /// Keeps an engine event; false when it was kept already (the same container, kind and
    /// time: a replay after a restart).
    pub fn record_engine_event(&self, e: &EngineEvent) -> Result<bool> {
        self.with(|c| {
            c.prepare_cached(
                "INSERT OR IGNORE INTO engine_events (instance, container, service, env, release_id, kind, exit_code, oom, at_us)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                e.instance, e.container, e.service, e.env, e.release_id, e.kind, e.exit_code, e.oom, e.at_us
            ])
            .map(|n| n == 1)
        })
    }

    /// An instance's events of `kind` at or after `since_us`, newest first.
    pub fn engine_events_since(
        &self,
        instance: &str,
        kind: &str,
        since_us: i64,
    ) -> Result<Vec<EngineEvent>> {
        self.all(
            "SELECT instance, container, service, env, release_id, kind, exit_code, oom, at_us FROM engine_events
             WHERE instance = ?1 AND kind = ?2 AND at_us >= ?3 ORDER BY at_us DESC",
            params![instance, kind, since_us],
            |r| {
                Ok(EngineEvent {
                    instance: r.get(0)?,
                    container: r.get(1)?,
                    service: r.get(2)?,
                    env: r.get(3)?,
                    release_id: r.get(4)?,
                    kind: r.get(5)?,
                    exit_code: r.get(6)?,
                    oom: r.get(7)?,
                    at_us: r.get(8)?,
                })
            },
        )
    }

    /// Drops the engine events before `before_us` (the crash loops are judged over minutes).
    pub fn prune_engine_events(&self, before_us: i64) -> Result<usize> {
        self.with(|c| c.execute("DELETE FROM engine_events WHERE at_us < ?1", [before_us]))
    }

    /// Opens a problem, or adds the occurrence to the open one of its kind and subject.
    /// Returns its id and whether it is new.
    pub fn problem_occurred(&self, o: &Occurrence<'_>) -> Result<(i64, bool)> {
        let logs = serde_json::to_string(o.logs).unwrap_or_else(|_| "[]".into());
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            let open: Option<i64> = tx
                .prepare_cached(
                    "SELECT id FROM problems WHERE service = ?1 AND env = ?2 AND kind = ?3 AND subject = ?4 AND ended_us IS NULL",
                )?
                .query_row(params![o.service, o.env, o.kind, o.subject], |r| r.get(0))
                .optional()?;
            let out = match open {
                Some(id) => {
                    tx.prepare_cached(
                        "UPDATE problems SET count = count + ?2, last_us = MAX(last_us, ?3), summary = ?4,
                         logs = CASE WHEN ?5 = '[]' THEN logs ELSE ?5 END WHERE id = ?1",
                    )?
                    .execute(params![id, o.count, o.at_us, o.summary, logs])?;
                    (id, false)
                }
                None => {
                    tx.prepare_cached(
                        "INSERT INTO problems (service, env, kind, subject, release_id, summary, started_us, last_us, count, logs)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9)",
                    )?
                    .execute(params![
                        o.service, o.env, o.kind, o.subject, o.release_id, o.summary, o.at_us, o.count.max(1), logs
                    ])?;
                    (tx.last_insert_rowid(), true)
                }
            };
            tx.commit()?;
            Ok(out)
        })
    }

    /// Ends the open problem of a kind and subject; false when none was open.
    pub fn end_problem(
        &self,
        service: &str,
        env: &str,
        kind: &str,
        subject: &str,
        at_us: i64,
    ) -> Result<bool> {
        self.with(|c| {
            c.prepare_cached(
                "UPDATE problems SET ended_us = MAX(last_us, ?5) WHERE service = ?1 AND env = ?2 AND kind = ?3 AND subject = ?4 AND ended_us IS NULL",
            )?
            .execute(params![service, env, kind, subject, at_us])
            .map(|n| n > 0)
        })
    }

    /// Every open problem of a kind, across services.
    pub fn open_problems(&self, kind: &str) -> Result<Vec<ProblemRow>> {
        self.all(
            &format!("SELECT {PROBLEM_COLUMNS} FROM problems WHERE kind = ?1 AND ended_us IS NULL"),
            [kind],
            problem_of,
        )
    }

    /// A service's problems, newest first: the open ones and those that ended after `since_us`.
    pub fn problems(
        &self,
        service: &str,
        env: Option<&str>,
        since_us: i64,
        limit: usize,
    ) -> Result<Vec<ProblemRow>> {
        self.all(
            &format!(
                "SELECT {PROBLEM_COLUMNS} FROM problems WHERE service = ?1 AND (?2 IS NULL OR env = ?2)
                 AND (ended_us IS NULL OR ended_us >= ?3) ORDER BY ended_us IS NOT NULL, last_us DESC LIMIT ?4"
            ),
            params![service, env, since_us, limit as i64],
            problem_of,
        )
    }

    pub fn problem(&self, id: i64) -> Result<Option<ProblemRow>> {
        self.one(
            &format!("SELECT {PROBLEM_COLUMNS} FROM problems WHERE id = ?1"),
            [id],
            problem_of,
        )
    }

    /// Open problems per service.
    pub fn open_problem_counts(&self) -> Result<std::collections::HashMap<String, i64>> {
        Ok(self
            .all(
                "SELECT service, COUNT(*) FROM problems WHERE ended_us IS NULL GROUP BY service",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
            .into_iter()
            .collect())
    }

    /// A mark that moves whenever a deployment, a step, a problem or an instance changed: the
    /// dashboard's live pages compare it every second.
    pub fn change_mark(&self) -> Result<String> {
        Ok(self
            .one(
                "SELECT (SELECT COUNT(*) || ':' || IFNULL(MAX(updated_at), '') FROM deployments)
                 || '|' || (SELECT IFNULL(MAX(rowid), 0) FROM deployment_steps)
                 || '|' || (SELECT COUNT(*) || ':' || IFNULL(MAX(last_us), 0) || ':' || IFNULL(SUM(ended_us IS NULL), 0) FROM problems)
                 || '|' || (SELECT COUNT(*) || ':' || IFNULL(GROUP_CONCAT(id || state), '') FROM instances)",
                [],
                |r| r.get(0),
            )?
            .unwrap_or_default())
    }

    /// Counts an exception into its group (type and location); returns the group's count.
    pub fn exception_raised(&self, e: &Raised<'_>) -> Result<i64> {
        self.with(|c| {
            c.prepare_cached(
                "INSERT INTO error_groups (service, env, error_type, location, function, message, traceback, count, first_us, last_us)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8, ?8)
                 ON CONFLICT (service, env, error_type, location) DO UPDATE SET
                   count = count + 1, message = ?6, traceback = ?7, function = COALESCE(?5, function),
                   first_us = MIN(first_us, ?8), last_us = MAX(last_us, ?8)
                 RETURNING count",
            )?
            .query_row(
                params![e.service, e.env, e.error_type, e.location, e.function, e.message, e.traceback, e.at_us],
                |r| r.get(0),
            )
        })
    }

    /// A service's error groups, the most recent first.
    pub fn error_groups(&self, service: &str, env: Option<&str>) -> Result<Vec<ErrorGroupRow>> {
        self.all(
            "SELECT service, env, error_type, location, function, message, traceback, count, first_us, last_us
             FROM error_groups WHERE service = ?1 AND (?2 IS NULL OR env = ?2) ORDER BY last_us DESC LIMIT 100",
            params![service, env],
            |r| {
                Ok(ErrorGroupRow {
                    service: r.get(0)?,
                    env: r.get(1)?,
                    error_type: r.get(2)?,
                    location: r.get(3)?,
                    function: r.get(4)?,
                    message: r.get(5)?,
                    traceback: r.get(6)?,
                    count: r.get(7)?,
                    first_us: r.get(8)?,
                    last_us: r.get(9)?,
                })
            },
        )
    }
}

/// The newest deployment of an environment, as the problems judge it.
#[derive(Debug, Clone)]
pub struct LatestDeployment {
    pub service: String,
    pub env: String,
    pub id: String,
    pub state: String,
    pub reason: Option<String>,
    pub release_id: String,
}

/// A run that finished, as the problems judge it.
#[derive(Debug, Clone)]
pub struct FinishedRun {
    pub id: String,
    pub kind: String,
    pub service: String,
    pub env: String,
    pub entry: Option<String>,
    pub state: String,
    pub exit_code: Option<i64>,
    pub reason: Option<String>,
    pub release_id: Option<String>,
    pub finished_us: i64,
}

impl Store {
    /// Every environment's newest deployment.
    pub fn latest_deployments(&self) -> Result<Vec<LatestDeployment>> {
        self.all(
            "SELECT service, env, id, state, reason, release_id, MAX(rowid) FROM deployments GROUP BY service, env",
            [],
            |r| {
                Ok(LatestDeployment {
                    service: r.get(0)?,
                    env: r.get(1)?,
                    id: r.get(2)?,
                    state: r.get(3)?,
                    reason: r.get(4)?,
                    release_id: r.get(5)?,
                })
            },
        )
    }

    /// The runs of services that finished after `after_us`, oldest first.
    pub fn runs_finished_after(&self, after_us: i64) -> Result<Vec<FinishedRun>> {
        self.all(
            "SELECT id, kind, service, env, entry, state, exit_code, reason, release_id, finished_us FROM runs
             WHERE finished_us > ?1 AND service IS NOT NULL AND env IS NOT NULL ORDER BY finished_us LIMIT 1000",
            [after_us],
            |r| {
                Ok(FinishedRun {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    service: r.get(2)?,
                    env: r.get(3)?,
                    entry: r.get(4)?,
                    state: r.get(5)?,
                    exit_code: r.get(6)?,
                    reason: r.get(7)?,
                    release_id: r.get(8)?,
                    finished_us: r.get(9)?,
                })
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_opens_counts_ends_and_a_new_one_opens_after() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("p.db")).unwrap();
        let lines = vec!["booting".to_owned()];
        let o = Occurrence {
            service: "s",
            env: "prod",
            kind: "oom-killed",
            subject: "i1",
            summary: "killed",
            at_us: 10,
            count: 1,
            logs: &lines,
            ..Default::default()
        };
        let (id, new) = store.problem_occurred(&o).unwrap();
        assert!(new);
        let (again, new) = store
            .problem_occurred(&Occurrence {
                at_us: 20,
                logs: &[],
                ..o.clone()
            })
            .unwrap();
        assert_eq!((again, new), (id, false));
        let row = store.problem(id).unwrap().unwrap();
        assert_eq!((row.count, row.last_us, row.logs), (2, 20, lines.clone()));
        assert!(
            store
                .end_problem("s", "prod", "oom-killed", "i1", 30)
                .unwrap()
        );
        assert!(
            !store
                .end_problem("s", "prod", "oom-killed", "i1", 31)
                .unwrap()
        );
        let (next, new) = store.problem_occurred(&o).unwrap();
        assert!(new && next != id);
        assert_eq!(store.problems("s", None, 0, 10).unwrap().len(), 2);
    }

    #[test]
    fn an_engine_event_is_kept_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("p.db")).unwrap();
        let e = EngineEvent {
            instance: "i".into(),
            container: "c".into(),
            kind: "die".into(),
            at_us: 5,
            ..Default::default()
        };
        assert!(store.record_engine_event(&e).unwrap());
        assert!(!store.record_engine_event(&e).unwrap());
        assert_eq!(store.engine_events_since("i", "die", 0).unwrap().len(), 1);
    }
}
