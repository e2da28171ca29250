//! The action registry, from heartbeats: an action is available while one of its workers
//! beats, and unavailable after [`MISSED_BEATS`] of its intervals without one. The schemas,
//! transport and address of an action are those of its freshest beat.

use std::collections::BTreeMap;

use faas_spec::api::tasks::{Action, Heartbeat, HeartbeatAck, Transport};
use faas_spec::task::is_action_name;

use crate::Platform;
use crate::error::{ApiError, ApiResult};
use crate::meter::now_us;
use crate::store::{MISSED_BEATS, WorkerRow};

const DEFAULT_INTERVAL_MS: u64 = 2_000;

/// The freshest live worker of an action.
pub fn current(workers: &[WorkerRow], now_us: i64) -> Option<&WorkerRow> {
    workers
        .iter()
        .filter(|w| w.alive_at(now_us))
        .max_by_key(|w| w.last_beat_us)
}

/// For an HTTP action, the live worker a launch goes to (spread by the launch id); None for
/// other transports.
pub fn pick_http_worker(workers: &[WorkerRow], launch: &str, now_us: i64) -> Option<String> {
    let live: Vec<&WorkerRow> = workers
        .iter()
        .filter(|w| w.alive_at(now_us) && w.transport == Transport::Http.as_str())
        .collect();
    if live.is_empty() {
        return None;
    }
    let spread = launch
        .bytes()
        .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
    Some(live[spread % live.len()].worker.clone())
}

/// Checks and records one beat.
pub fn beat(p: &Platform, tenant: &str, hb: &Heartbeat) -> ApiResult<HeartbeatAck> {
    if !is_action_name(&hb.name) || hb.name.starts_with("faas.") {
        return Err(ApiError::unprocessable(
            "invalid-action-name",
            format!("`{}` is not an action name of yours", hb.name),
        )
        .hint("lowercase letters, digits, `-`, `_` and `.`, at most 63; `faas.` names are the platform's"));
    }
    if hb.worker.is_empty()
        || hb.worker.len() > 200
        || !hb.worker.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(ApiError::unprocessable(
            "invalid-worker",
            "`worker` must be 1 to 200 printable characters without spaces",
        ));
    }
    if hb.version.is_empty() || hb.version.len() > 64 {
        return Err(ApiError::unprocessable(
            "invalid-version",
            "`version` must be 1 to 64 characters",
        ));
    }
    let interval = hb.interval_ms.unwrap_or(DEFAULT_INTERVAL_MS);
    if !(100..=60_000).contains(&interval) {
        return Err(ApiError::unprocessable(
            "invalid-interval",
            format!("`interval_ms` is {interval}: give from 100 to 60000"),
        ));
    }
    for (what, schema) in [
        ("input_schema", &hb.input_schema),
        ("output_schema", &hb.output_schema),
    ] {
        if let Err(e) = p.tasks.validator(schema) {
            return Err(ApiError::unprocessable(
                "invalid-schema",
                format!("`{what}` is not a JSON Schema: {e}"),
            ));
        }
    }
    match hb.transport {
        Transport::Inprocess => {
            return Err(ApiError::unprocessable(
                "invalid-transport",
                "only the platform's built-in actions are in-process",
            )
            .hint("beat with `rabbitmq` (a queue) or `http` (a URL)"));
        }
        Transport::Http => {
            if !(hb.address.starts_with("http://") || hb.address.starts_with("https://"))
                || reqwest::Url::parse(&hb.address).is_err()
            {
                return Err(ApiError::unprocessable(
                    "invalid-address",
                    format!(
                        "`{}` is not an http(s) URL the platform can POST launches to",
                        hb.address
                    ),
                ));
            }
        }
        Transport::Rabbitmq => {
            if !p.tasks.broker.configured() {
                return Err(ApiError::unprocessable(
                    "no-broker",
                    "this platform has no RabbitMQ for task launches",
                )
                .hint("start faas-platform with --tasks-amqp-url amqp://USER:PASSWORD@HOST:PORT/VHOST, or beat with the `http` transport"));
            }
            let valid = !hb.address.is_empty()
                && hb.address.len() <= 200
                && !hb.address.starts_with("amq.")
                && hb
                    .address
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
            if !valid {
                return Err(ApiError::unprocessable(
                    "invalid-address",
                    format!("`{}` is not a queue name", hb.address),
                )
                .hint(
                    "letters, digits, `-`, `_`, `.` and `:`, at most 200, not starting with `amq.`",
                ));
            }
            if let Some((owner, action)) =
                p.store
                    .other_owner(hb.transport.as_str(), &hb.address, tenant, &hb.name)?
            {
                let whose = if owner == tenant {
                    format!("your action `{action}`")
                } else {
                    "another tenant's action".into()
                };
                return Err(ApiError::conflict(
                    "address-taken",
                    format!("the queue `{}` is {whose}'s", hb.address),
                )
                .hint("give each action its own queue"));
            }
        }
    }
    let now = now_us();
    p.store.beat(&WorkerRow {
        tenant: tenant.to_owned(),
        action: hb.name.clone(),
        worker: hb.worker.clone(),
        version: hb.version.clone(),
        input_schema: hb.input_schema.clone(),
        output_schema: hb.output_schema.clone(),
        transport: hb.transport.as_str().to_owned(),
        address: hb.address.clone(),
        interval_ms: interval as i64,
        first_beat_us: now,
        last_beat_us: now,
    })?;
    Ok(HeartbeatAck {
        action: hb.name.clone(),
        worker: hb.worker.clone(),
        missed_after_ms: interval * MISSED_BEATS as u64,
        results_queue: (hb.transport == Transport::Rabbitmq)
            .then(|| p.tasks.broker.results_queue(p)),
    })
}

/// A tenant's actions (every tenant's with None), with the built-in ones first.
pub fn actions(p: &Platform, tenant: Option<&str>) -> crate::store::Result<Vec<Action>> {
    let now = now_us();
    let mut out: Vec<Action> = p.tasks.inprocess.actions();
    let mut by_action: BTreeMap<(String, String), Vec<WorkerRow>> = BTreeMap::new();
    for w in p.store.workers(tenant)? {
        by_action
            .entry((w.tenant.clone(), w.action.clone()))
            .or_default()
            .push(w);
    }
    for ((tenant, name), workers) in by_action {
        let alive = workers.iter().filter(|w| w.alive_at(now)).count();
        let Some(last) = workers.iter().max_by_key(|w| w.last_beat_us) else {
            continue;
        };
        out.push(Action {
            name,
            tenant,
            version: last.version.clone(),
            transport: Transport::parse(&last.transport).unwrap_or(Transport::Http),
            address: last.address.clone(),
            state: if alive > 0 {
                "available"
            } else {
                "unavailable"
            }
            .into(),
            workers: alive as u32,
            last_beat: crate::store::rfc3339_ms(last.last_beat_us),
            input_schema: last.input_schema.clone(),
            output_schema: last.output_schema.clone(),
        });
    }
    Ok(out)
}
