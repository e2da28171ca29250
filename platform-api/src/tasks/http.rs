//! Over HTTP: launches POSTed to an action's worker (its answer is the result, or 202 and the
//! worker posts the result later), and the built-in `http` step's call to a REST API.

use std::sync::Arc;
use std::time::Duration;

use faas_spec::api::tasks::{Launch, outcome};
use faas_spec::task::HttpCall;
use serde_json::{Value, json};

use super::{Outcome, record_result};
use crate::Platform;
use crate::store::WorkerRow;

/// The longest answer body kept in an error message.
const SHOWN: usize = 500;

fn shown(text: &str) -> String {
    let mut end = text.len().min(SHOWN);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].trim().to_owned()
}

/// POSTs a launch to a worker. 202: the worker has it (it runs there now); 2xx with a body:
/// `{"output": …}` or `{"error": "…"}` is the result; anything else fails the attempt.
pub async fn launch(p: &Arc<Platform>, worker: &WorkerRow, launch: Launch, timeout: Duration) {
    let id = launch.id.clone();
    let answer = p
        .tasks
        .client
        .post(&worker.address)
        .header("x-faas-launch", &id)
        .json(&launch)
        .timeout(timeout)
        .send()
        .await;
    let outcome: Outcome = match answer {
        Ok(r) if r.status() == reqwest::StatusCode::ACCEPTED => {
            if let Err(e) = p.store.claim_launch(&id, &worker.worker) {
                tracing::warn!(launch = %id, "cannot record the claim: {e}");
            }
            return;
        }
        Ok(r) if r.status().is_success() => {
            let status = r.status();
            match r.json::<Value>().await {
                Ok(body) => {
                    let error = body.get("error").and_then(Value::as_str).map(str::to_owned);
                    outcome(body.get("output").cloned(), error).unwrap_or_else(|| {
                        Err(format!(
                            "the worker answered {status} with neither `output` nor `error`"
                        ))
                    })
                }
                Err(e) => Err(format!("the worker answered {status} without JSON: {e}")),
            }
        }
        Ok(r) => {
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            Err(format!(
                "the worker at {} answered {status}: {}",
                worker.address,
                shown(&body)
            ))
        }
        Err(e) => Err(format!(
            "cannot reach the worker at {}: {e}",
            worker.address
        )),
    };
    let _ = record_result(p, &id, outcome, Some(&worker.worker)).await;
}

/// The built-in `http` step: the step's input is the JSON body (none for GET); a status the
/// step counts as success gives `{status, body, headers}`.
pub async fn call(p: &Platform, call: &HttpCall, body: &Value, timeout: Duration) -> Outcome {
    let method = reqwest::Method::from_bytes(call.method.as_bytes()).map_err(|e| e.to_string())?;
    let mut request = p.tasks.client.request(method, &call.url).timeout(timeout);
    for (k, v) in &call.headers {
        request = request.header(k, v);
    }
    if call.method != "GET" {
        request = request.json(body);
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("cannot call {}: {e}", call.url))?;
    let status = response.status().as_u16();
    let headers: serde_json::Map<String, Value> = response
        .headers()
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.as_str().to_owned(),
                Value::String(v.to_str().ok()?.to_owned()),
            ))
        })
        .collect();
    let text = response.text().await.map_err(|e| e.to_string())?;
    if !call.success.iter().any(|m| m.matches(status)) {
        return Err(format!(
            "{} {} answered {status}: {}",
            call.method,
            call.url,
            shown(&text)
        ));
    }
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok(json!({"status": status, "body": body, "headers": headers}))
}
