//! Launching a task is itself a task: the launcher task `faas-launch`, of two built-in
//! actions: `faas.task.launch` checks the definition and the input and records the task's run
//! (pending; its id derived from the launcher's, so a repeated launch records nothing new),
//! and `faas.task.start` starts it. Both are recorded like any other step.

use std::time::Duration;

use faas_spec::api::tasks::{Launch, RunTask};
use faas_spec::task::TaskDefinition;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Outcome, check};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::meter::now_us;
use crate::store::TaskRunRow;
use crate::{AppState, Platform};

/// The launcher task's name and definition.
pub const LAUNCHER: &str = "faas-launch";
const LAUNCHER_DEFINITION: &str = r#"name = "faas-launch"
timeout = "1h"

[[steps]]
name = "launch-task"
action = "faas.task.launch"
input = "$input"
retry = { attempts = 3, backoff = "100ms" }

[[steps]]
name = "launch-definition"
action = "faas.task.start"
input = "$steps.launch-task"
retry = { attempts = 3, backoff = "100ms" }
"#;

pub fn launch_input_schema() -> Value {
    json!({
        "type": "object",
        "required": ["definition", "file", "input"],
        "properties": {"definition": {"type": "string"}, "file": {"type": "string"}, "input": {}}
    })
}

/// A new task run id.
pub fn new_id() -> String {
    format!("task-{}", crate::store::short_id())
}

/// The id of the run a launcher launches.
fn child_of(launcher: &str) -> String {
    let digest = Sha256::digest(format!("child of {launcher}").as_bytes());
    format!("task-{}", hex::encode(&digest[..6]))
}

/// Parses and checks a definition with its input for a tenant: every problem, with its place.
pub fn checked(
    p: &Platform,
    tenant: &str,
    file: &str,
    source: &str,
    input: &Value,
) -> Result<TaskDefinition, faas_spec::Report> {
    let def = TaskDefinition::parse(file, source)?;
    let problems = check::against_actions(p, tenant, &def, input);
    if problems.is_empty() {
        Ok(def)
    } else {
        Err(faas_spec::Report {
            file_name: file.to_owned(),
            source: source.to_owned(),
            diagnostics: problems,
        })
    }
}

/// `POST /v1/tasks`: checks the definition (nothing is launched when it has a problem), runs the
/// launcher task, and answers the task's run once it has started.
pub async fn submit(p: &AppState, who: &Principal, body: &RunTask) -> ApiResult<TaskRunRow> {
    let file = body.file.clone().unwrap_or_else(|| "task.toml".into());
    if file.is_empty() || file.len() > 255 {
        return Err(ApiError::bad_request(
            "invalid-file",
            "`file` must be 1 to 255 characters",
        ));
    }
    if body.definition.len() > 1 << 20 {
        return Err(ApiError::bad_request(
            "definition-too-large",
            "a task definition is at most 1 MiB",
        ));
    }
    if let Err(report) = checked(p, &who.tenant, &file, &body.definition, &body.input) {
        return Err(check::api_error(&report));
    }
    let launcher = TaskRunRow {
        id: new_id(),
        tenant: who.tenant.clone(),
        task: LAUNCHER.into(),
        file: "faas-launch.toml".into(),
        definition: LAUNCHER_DEFINITION.into(),
        input: json!({"definition": body.definition, "file": file, "input": body.input}),
        state: "running".into(),
        deadline_us: now_us() + 3_600_000_000,
        ..Default::default()
    };
    let steps = [
        ("launch-task".to_owned(), "faas.task.launch".to_owned(), 3),
        (
            "launch-definition".to_owned(),
            "faas.task.start".to_owned(),
            3,
        ),
    ];
    p.store.create_task_run(&launcher, &steps)?;
    p.tasks.kick(&launcher.id);
    let child = child_of(&launcher.id);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let l = p.store.task_run(&launcher.id)?;
        if let Some(run) = p.store.task_run(&child)?
            && (run.state != "pending" || l.as_ref().is_some_and(TaskRunRow::is_over))
        {
            return Ok(run);
        }
        if let Some(l) = l.filter(TaskRunRow::is_over) {
            return Err(ApiError::unprocessable(
                "launch-failed",
                format!(
                    "the launcher task {} {}: {}",
                    l.id,
                    l.state,
                    l.error.unwrap_or_default()
                ),
            ));
        }
        if tokio::time::Instant::now() > deadline {
            return Err(ApiError::internal(format!(
                "the launcher task {} did not start the task in 10 s",
                launcher.id
            )));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// `faas.task.launch`: records the task's run, pending.
pub fn launch_task(p: &Platform, launch: &Launch) -> Outcome {
    let launcher = p
        .store
        .task_run(&launch.run)
        .map_err(|e| e.to_string())?
        .ok_or("the launcher run is gone")?;
    let text = |k: &str| {
        launch
            .input
            .get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let (Some(source), Some(file)) = (text("definition"), text("file")) else {
        return Err("the launch has no `definition` and `file`".into());
    };
    let input = launch.input.get("input").cloned().unwrap_or(json!({}));
    let def = checked(p, &launcher.tenant, &file, &source, &input).map_err(|r| r.render(false))?;
    let child = TaskRunRow {
        id: child_of(&launcher.id),
        tenant: launcher.tenant.clone(),
        task: def.name.clone(),
        file,
        definition: source,
        input,
        state: "pending".into(),
        parent: Some(launcher.id.clone()),
        deadline_us: now_us() + def.timeout.as_std().as_micros() as i64,
        ..Default::default()
    };
    let steps: Vec<(String, String, u32)> = def
        .steps
        .iter()
        .map(|s| (s.name.clone(), check::action_label(s), s.retry.attempts))
        .collect();
    p.store
        .create_task_run(&child, &steps)
        .map_err(|e| e.to_string())?;
    Ok(json!({"run": child.id}))
}

/// `faas.task.start`: starts the recorded run.
pub fn start_task(p: &Platform, launch: &Launch) -> Outcome {
    let run = launch
        .input
        .get("run")
        .and_then(Value::as_str)
        .ok_or("the launch names no `run`")?;
    p.store.start_task_run(run).map_err(|e| e.to_string())?;
    p.tasks.kick(run);
    Ok(json!({"run": run}))
}
