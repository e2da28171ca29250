//! `/v1/ledger/…` (admin only): the accounts ledger under billing. A batch of events written
//! atomically, balances at a date, turnovers over a period, events a page at a time, and the
//! export stream of sequenced events as NDJSON, each shard's in its own sequence.

use std::time::{Duration, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use faas_ledger::storage::EventFilter;
use faas_ledger::{AccountId, BalanceQuery, Event, LedgerError, NewEvent, Written};
use faas_spec::api::Problem;
use faas_spec::api::ledger::*;
use serde::Deserialize;

use super::{ApiJson, Query};
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        let code = e.code();
        match e {
            LedgerError::Storage(why) => ApiError::internal(format!("ledger storage: {why}")),
            LedgerError::IdempotencyConflict(_)
            | LedgerError::LockHeld { .. }
            | LedgerError::LockNotHeld(_)
            | LedgerError::StateConflict { .. } => ApiError::conflict(code, e.to_string()),
            LedgerError::NoSuchShard { .. } => ApiError::bad_request(code, e.to_string()),
            other => ApiError::unprocessable(code, other.to_string())
                .hint("GET /openapi.json describes the ledger's requests; the platform's ledger.toml lists its types"),
        }
    }
}

/// Microseconds since the epoch from RFC 3339 (or a bare `YYYY-MM-DD`, midnight UTC).
pub fn micros(text: &str, what: &str) -> ApiResult<i64> {
    let full = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_owned()
    };
    humantime::parse_rfc3339_weak(&full)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_micros() as i64)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid-time",
                format!("`{what}` is `{text}`, which is not an RFC 3339 time after 1970"),
            )
            .hint("write it as `2026-11-01T00:00:00Z` or `2026-11-01`")
        })
}

/// RFC 3339 to the microsecond, UTC.
pub fn rfc3339(us: i64) -> String {
    if us < 0 {
        return format!("{us}µs before 1970-01-01T00:00:00Z");
    }
    humantime::format_rfc3339_micros(UNIX_EPOCH + Duration::from_micros(us as u64)).to_string()
}

fn account(a: &LedgerAccount) -> AccountId {
    AccountId {
        kind: a.kind.clone(),
        key: a.key.clone(),
    }
}

fn event(e: Event) -> LedgerEvent {
    LedgerEvent {
        id: e.id,
        seq: e.seq,
        shard: e.shard,
        account: LedgerAccount {
            kind: e.account.kind,
            key: e.account.key,
        },
        aux: e.aux,
        amount: e.amount,
        effective_at: rfc3339(e.effective_at),
        idempotency_key: e.idempotency_key,
        info: e.info,
    }
}

/// Writes a batch of events atomically: each is new or already written (same key, same
/// content); a key written before with other content is a conflict, and nothing is written.
#[utoipa::path(post, path = "/v1/ledger/batches", tag = "ledger", request_body = LedgerBatch,
    responses((status = 200, body = Vec<LedgerWritten>), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn ledger_write(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiJson(body): ApiJson<LedgerBatch>,
) -> ApiResult<Json<Vec<LedgerWritten>>> {
    who.require_admin()?;
    if body.events.is_empty() || body.events.len() > MAX_LEDGER_PAGE as usize {
        return Err(ApiError::bad_request(
            "invalid-batch",
            format!(
                "a batch holds 1 to {MAX_LEDGER_PAGE} events, this one {}",
                body.events.len()
            ),
        ));
    }
    let mut batch = Vec::with_capacity(body.events.len());
    for (i, e) in body.events.into_iter().enumerate() {
        batch.push(NewEvent {
            effective_at: micros(&e.effective_at, &format!("events[{i}].effective_at"))?,
            account: account(&e.account),
            aux: e.aux,
            amount: e.amount,
            idempotency_key: e.idempotency_key,
            info: e.info,
        });
    }
    let written = p.ledger.write(&batch).await?;
    Ok(Json(
        written
            .into_iter()
            .map(|w| match w {
                Written::New(id) => LedgerWritten {
                    id,
                    status: "new".into(),
                },
                Written::AlreadyWritten(id) => LedgerWritten {
                    id,
                    status: "already_written".into(),
                },
            })
            .collect(),
    ))
}

/// The balance of an account at a date (events effective before it), one per group.
#[utoipa::path(post, path = "/v1/ledger/balances", tag = "ledger", request_body = LedgerBalanceQuery,
    responses((status = 200, body = LedgerBalances), (status = 403, body = Problem)))]
pub async fn ledger_balances(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiJson(q): ApiJson<LedgerBalanceQuery>,
) -> ApiResult<Json<LedgerBalances>> {
    who.require_admin()?;
    let at = match &q.at {
        Some(t) => micros(t, "at")?,
        None => faas_ledger::now(),
    };
    let balances = p
        .ledger
        .balance(
            &BalanceQuery {
                account: account(&q.account),
                group_by: q.group_by.clone(),
            },
            at,
        )
        .await?;
    Ok(Json(LedgerBalances {
        account: q.account,
        at: rfc3339(at),
        balances: balances
            .into_iter()
            .map(|b| LedgerBalance {
                group: b.group,
                balance: b.balance,
            })
            .collect(),
    }))
}

/// Opening balance, debit and credit totals and closing balance over [from, to), per group.
#[utoipa::path(post, path = "/v1/ledger/turnovers", tag = "ledger", request_body = LedgerTurnoverQuery,
    responses((status = 200, body = LedgerTurnovers), (status = 403, body = Problem)))]
pub async fn ledger_turnovers(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiJson(q): ApiJson<LedgerTurnoverQuery>,
) -> ApiResult<Json<LedgerTurnovers>> {
    who.require_admin()?;
    let (from, to) = (micros(&q.from, "from")?, micros(&q.to, "to")?);
    let turnovers = p
        .ledger
        .turnovers(
            &BalanceQuery {
                account: account(&q.account),
                group_by: q.group_by.clone(),
            },
            from,
            to,
        )
        .await?;
    Ok(Json(LedgerTurnovers {
        account: q.account,
        from: rfc3339(from),
        to: rfc3339(to),
        turnovers: turnovers
            .into_iter()
            .map(|t| LedgerTurnover {
                group: t.group,
                opening: t.opening,
                debit: t.debit,
                credit: t.credit,
                closing: t.closing,
            })
            .collect(),
    }))
}

fn page_limit(limit: Option<u32>) -> ApiResult<usize> {
    match limit.unwrap_or(100) {
        n @ 1..=MAX_LEDGER_PAGE => Ok(n as usize),
        n => Err(ApiError::bad_request(
            "invalid-limit",
            format!("`limit` is {n}; it is 1 to {MAX_LEDGER_PAGE}"),
        )),
    }
}

/// Events of a type effective in [from, to) whose attributes match, a page at a time.
#[utoipa::path(post, path = "/v1/ledger/events", tag = "ledger", request_body = LedgerEventQuery,
    responses((status = 200, body = LedgerEvents), (status = 403, body = Problem)))]
pub async fn ledger_events(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    ApiJson(q): ApiJson<LedgerEventQuery>,
) -> ApiResult<Json<LedgerEvents>> {
    who.require_admin()?;
    let page = p
        .ledger
        .events(&EventFilter {
            kind: q.kind,
            key: q.key,
            aux: q.aux,
            from: micros(&q.from, "from")?,
            to: micros(&q.to, "to")?,
            after: q.after.unwrap_or(0),
            limit: page_limit(q.limit)?,
        })
        .await?;
    Ok(Json(LedgerEvents {
        events: page.events.into_iter().map(event).collect(),
        next: page.next,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// The shard whose sequence to read (0 unless the ledger is sharded).
    #[serde(default, deserialize_with = "faas_spec::whole::optional_in_query")]
    pub shard: Option<usize>,
    /// Events after this sequence number: the consumer's watermark.
    #[param(minimum = 0)]
    #[serde(default, deserialize_with = "faas_spec::whole::optional_in_query")]
    pub after: Option<i64>,
    /// At most this many events, 1 to 1000 [default: 1000]; with `follow`, per read.
    #[param(minimum = 1, maximum = 1000)]
    #[serde(default, deserialize_with = "faas_spec::whole::optional_in_query")]
    pub limit: Option<u32>,
    /// Keep the stream open and send events as the sequencer stamps them.
    #[serde(default)]
    pub follow: bool,
}

/// How often a followed export looks for newly sequenced events.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// Sequenced events of a shard after a watermark, in sequence order, one JSON per line. A
/// consumer that keeps the last `seq` it processed and asks after it sees each event once.
#[utoipa::path(get, path = "/v1/ledger/export", tag = "ledger", params(ExportQuery),
    responses((status = 200, description = "One LedgerEvent per line", content_type = "application/x-ndjson", body = LedgerEvent),
        (status = 403, body = Problem)))]
pub async fn ledger_export(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<ExportQuery>,
) -> ApiResult<Response> {
    who.require_admin()?;
    let shard = q.shard.unwrap_or(0);
    let limit = page_limit(Some(q.limit.unwrap_or(MAX_LEDGER_PAGE)))?;
    let mut after = q.after.map_or(0, |a| a.unsigned_abs());
    // The first read answers errors (a shard that does not exist) as a problem document.
    let first = p.ledger.export(shard, after, limit).await?;
    let stopping = p.stopping.subscribe();
    let follow = q.follow;
    let stream = async_stream::stream! {
        let mut batch = first;
        let mut stopping = stopping;
        loop {
            let got = batch.len();
            for e in batch {
                after = e.seq.unwrap_or(after);
                let mut text = serde_json::to_string(&event(e)).unwrap_or_default();
                text.push('\n');
                yield Ok::<_, std::io::Error>(text);
            }
            if !follow {
                break;
            }
            if got < limit {
                tokio::select! {
                    _ = stopping.wait_for(|s| *s) => break,
                    () = tokio::time::sleep(FOLLOW_POLL) => {}
                }
            }
            batch = match p.ledger.export(shard, after, limit).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!("ledger export stream: {e}");
                    yield Err(std::io::Error::other(e.to_string()));
                    break;
                }
            };
        }
    };
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}
