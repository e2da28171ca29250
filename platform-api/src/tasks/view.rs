//! Task runs as the API shows them.

use faas_spec::api::tasks::{StepRun, TaskRun};

use crate::store::{StepRow, TaskRunRow, rfc3339_ms};

pub fn task_run(run: &TaskRunRow, steps: &[StepRow]) -> TaskRun {
    TaskRun {
        id: run.id.clone(),
        tenant: run.tenant.clone(),
        task: run.task.clone(),
        state: run.state.clone(),
        input: run.input.clone(),
        output: run.output.clone(),
        error: run.error.clone(),
        parent: run.parent.clone(),
        child: run.child.clone(),
        created_at: run.created_at.clone(),
        finished_at: run.finished_at.clone(),
        steps: steps.iter().map(step).collect(),
    }
}

fn step(s: &StepRow) -> StepRun {
    StepRun {
        name: s.name.clone(),
        action: s.action.clone(),
        state: s.state.clone(),
        attempt: s.attempt as u32,
        attempts: s.attempts as u32,
        worker: s.worker.clone(),
        input: s.input.clone(),
        output: s.output.clone(),
        error: s.error.clone(),
        key: s.key.clone(),
        started_at: s.started_at.clone(),
        finished_at: s.finished_at.clone(),
        until: s.until_us.map(rfc3339_ms),
    }
}
