//! Function runs: a tenant's image run to completion. The request is checked whole before
//! anything is recorded or started; the variables are sealed on the run's record (a restarted
//! daemon that has to start it again opens them).

use std::collections::BTreeMap;
use std::sync::Arc;

use faas_spec::api::runs::RunFunction;
use faas_spec::units::{Duration, Memory};

use crate::Platform;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::store::RunRow;

const DEFAULT_CPU: f64 = 1.0;
const DEFAULT_MEMORY: u64 = 512 * 1024 * 1024;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// A run request, checked.
#[derive(Debug, Clone)]
pub struct Checked {
    pub tenant: String,
    pub email: String,
    pub image_id: String,
    pub image_ref: String,
    pub env: BTreeMap<String, String>,
    pub command: Vec<String>,
    pub cpu: f64,
    pub memory: u64,
    pub timeout_ms: i64,
}

fn bad(code: &'static str, detail: String) -> ApiError {
    ApiError::bad_request(code, detail)
}

/// Checks a request whole (every field before the image, which asks the engine).
pub async fn check(p: &Platform, who: &Principal, req: &RunFunction) -> Result<Checked, ApiError> {
    let tenant = match &req.tenant {
        Some(t) if *t != who.tenant && !who.is_admin() => {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "forbidden",
                format!("a run of yours is billed to {}, not to {t}", who.tenant),
            ));
        }
        Some(t) => t.clone(),
        None => who.tenant.clone(),
    };
    faas_spec::names::check_email(&tenant).map_err(|e| {
        bad(
            "invalid-tenant",
            format!("the tenant `{tenant}`: {}", e.message),
        )
    })?;
    let email = req.email.clone().unwrap_or_else(|| tenant.clone());
    faas_spec::names::check_email(&email)
        .map_err(|e| bad("invalid-email", format!("`email`: {}", e.message)))?;
    for (name, value) in &req.env {
        crate::secrets::check_name(name).map_err(|e| bad("invalid-env", format!("`env`: {e}")))?;
        if value.chars().count() > faas_spec::names::MAX_SECRET_CHARS {
            return Err(bad(
                "invalid-env",
                format!(
                    "`env`: the value of {name} is over {} characters",
                    faas_spec::names::MAX_SECRET_CHARS
                ),
            ));
        }
    }
    let command = req.command.clone().unwrap_or_default();
    if req.command.as_ref().is_some_and(Vec::is_empty) {
        return Err(bad(
            "invalid-command",
            "`command` is empty: leave it out for the image's own".into(),
        ));
    }
    let cpu = req.cpu.unwrap_or(DEFAULT_CPU);
    if !(0.1..=64.0).contains(&cpu) {
        return Err(bad(
            "invalid-cpu",
            format!("`cpu` is {cpu}: give from 0.1 to 64 vCPUs"),
        ));
    }
    // Exactly what the API document's patterns say.
    let matches =
        |pattern: &str, text: &str| regex::Regex::new(pattern).is_ok_and(|re| re.is_match(text));
    let memory = match &req.memory {
        Some(text) if matches(faas_spec::api::runs::RUN_MEMORY_PATTERN, text) => text
            .parse::<Memory>()
            .map_err(|e| bad("invalid-memory", format!("`memory`: {}", e.message)))?
            .bytes(),
        Some(text) => {
            return Err(bad(
                "invalid-memory",
                format!("`memory` is `{text}`: give from `16Mi` to `999Gi`, e.g. `256Mi` or `2Gi`"),
            ));
        }
        None => DEFAULT_MEMORY,
    };
    let timeout = match &req.timeout {
        Some(text) if matches(faas_spec::api::runs::RUN_TIMEOUT_PATTERN, text) => text
            .parse::<Duration>()
            .map_err(|e| bad("invalid-timeout", format!("`timeout`: {}", e.message)))?,
        Some(text) => {
            return Err(bad(
                "invalid-timeout",
                format!(
                    "`timeout` is `{text}`: give a whole number of ms, s, m or h up to 24h, e.g. `30s` or `10m`"
                ),
            ));
        }
        None => DEFAULT_TIMEOUT,
    };
    if req.image_name.is_empty() {
        return Err(bad(
            "invalid-image",
            format!(
                "`image_name` is `{}`: give an image id or reference",
                req.image_name
            ),
        ));
    }
    // The image is the resource the run names: absent, it is not found (404).
    let image_id = match p.runtime.image_id(&req.image_name).await {
        Err(crate::runtime::RuntimeError::NoSuchImage(image)) => {
            return Err(ApiError::not_found(
                "image-not-found",
                format!("there is no image `{image}` on the platform's Docker Engine"),
            )
            .hint("upload it with POST /v1/images (a `docker save` tarball; `faas function run` does), or build it on the same engine"));
        }
        other => other?,
    };
    Ok(Checked {
        tenant,
        email,
        image_id,
        image_ref: req.image_name.clone(),
        env: req.env.clone(),
        command,
        cpu,
        memory,
        timeout_ms: i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX),
    })
}

/// What a function run's variables are sealed under.
fn aad(id: &str) -> String {
    format!("run:{id}:env")
}

/// Records a checked run, then starts it.
pub async fn start(p: &Arc<Platform>, c: Checked) -> Result<RunRow, ApiError> {
    let id = super::new_id();
    let env = serde_json::to_string(&c.env).map_err(ApiError::internal)?;
    let sealed = p.sealer.seal(&aad(&id), &env).map_err(ApiError::internal)?;
    let run = RunRow {
        id: id.clone(),
        kind: "function".into(),
        tenant: c.tenant,
        image: c.image_id,
        image_ref: c.image_ref,
        command: c.command,
        cpu: c.cpu,
        memory: c.memory,
        timeout_ms: c.timeout_ms,
        env_sealed: Some(sealed),
        email: Some(c.email),
        state: "pending".into(),
        ..Default::default()
    };
    p.store.record_run(&run)?;
    let env = environment_of(p, &run).map_err(ApiError::internal)?;
    if let Err(why) = super::launch(p, &run, env).await {
        tracing::warn!(run = %id, "{why}");
    }
    Ok(p.store.run(&id)?.unwrap_or(run))
}

/// A function run's variables: its own, then the platform's (`FAAS_RUN`).
pub fn environment_of(p: &Platform, run: &RunRow) -> Result<Vec<(String, String)>, String> {
    let mut env: Vec<(String, String)> = match &run.env_sealed {
        Some((nonce, sealed)) => {
            let text = p
                .sealer
                .open_value(&aad(&run.id), nonce, sealed)
                .map_err(|e| format!("cannot open the run's variables: {e}"))?;
            let map: BTreeMap<String, String> =
                serde_json::from_str(&text).map_err(|e| e.to_string())?;
            map.into_iter().collect()
        }
        None => Vec::new(),
    };
    env.push(("FAAS_RUN".into(), run.id.clone()));
    Ok(env)
}
