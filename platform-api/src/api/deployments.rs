//! Deployments, their event stream, releases and rollback.

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use faas_spec::api::{
    CreateDeployment, Deployment, DeploymentState, Release, Rollback, Scale, Step,
};
use faas_spec::{ManifestFile, Strategy};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use super::services::{EnvQuery, visible};
use super::{ApiJson, Path, Query};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::store::{DeploymentRow, ReleaseRow};
use crate::{AppState, Platform, deployer};

pub fn deployment_view(p: &Platform, row: &DeploymentRow) -> ApiResult<Deployment> {
    let version_of =
        |id: &str| -> ApiResult<u64> { Ok(p.store.release(id)?.map_or(0, |r| r.version)) };
    Ok(Deployment {
        id: row.id.clone(),
        service: row.service.clone(),
        env: row.env.clone(),
        release: row.release_id.clone(),
        version: version_of(&row.release_id)?,
        previous_version: match &row.previous_release {
            Some(prev) => Some(version_of(prev)?),
            None => None,
        },
        strategy: row.strategy,
        state: row.state,
        reason: row.reason.clone(),
        url: p.url(&row.service, &row.env),
        created_at: row.created_at.clone(),
        updated_at: row.updated_at.clone(),
        steps: p.store.steps(&row.id, 0)?,
    })
}

fn release_view(row: ReleaseRow, current: Option<&str>) -> Release {
    Release {
        current: current == Some(row.id.as_str()),
        manifest: serde_json::from_str(&row.manifest).unwrap_or(serde_json::Value::Null),
        id: row.id,
        service: row.service,
        env: row.env,
        version: row.version,
        image: row.image_id,
        image_ref: row.image_ref,
        secrets_version: row.secrets_version,
        created_at: row.created_at,
    }
}

pub fn check_env(env: &str) -> ApiResult<()> {
    faas_spec::names::check_env_name(env).map_err(|e| {
        ApiError::bad_request("invalid-env", e.message)
            .hint(format!("an environment name is {}", e.rule))
    })
}

/// Starts a deployment: one per service and environment at a time (409 names the one running).
pub(super) fn start(
    p: &AppState,
    service: &str,
    env: &str,
    release: &ReleaseRow,
    strategy: Strategy,
    manual: bool,
    actor: &str,
) -> ApiResult<Deployment> {
    let current = p.store.current_release(service, env)?;
    let previous = current
        .as_ref()
        .map(|c| c.id.as_str())
        .filter(|c| *c != release.id);
    match p
        .store
        .create_deployment(service, env, &release.id, previous, strategy, manual)?
    {
        Ok(id) => {
            p.store.set_deployment_actor(&id, actor)?;
            deployer::spawn(p, &id);
            let row = p
                .store
                .deployment(&id)?
                .ok_or_else(|| ApiError::internal("the new deployment vanished"))?;
            deployment_view(p, &row)
        }
        Err(running) => Err(in_progress(service, env, running)),
    }
}

/// 409: the environment is held by an unfinished deployment, named in the problem.
pub(super) fn in_progress(service: &str, env: &str, running: String) -> ApiError {
    let mut e = ApiError::conflict(
        "deployment-in-progress",
        format!("deployment {running} of {service} ({env}) is still running"),
    )
    .hint(format!(
        "wait for it: GET /v1/services/{service}/deployments/{running}/events"
    ));
    e.deployment = Some(running.into());
    e
}

fn accepted(d: Deployment) -> Response {
    let location = format!("/v1/services/{}/deployments/{}", d.service, d.id);
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(d),
    )
        .into_response()
}

/// Deploys an image with a manifest to an environment: a new release, rolled out by the
/// manifest's (or the request's) strategy.
#[utoipa::path(post, path = "/v1/services/{svc}/deployments", tag = "deployments", params(("svc" = String, Path)),
    request_body = CreateDeployment,
    responses((status = 202, body = Deployment), (status = 409, body = faas_spec::api::Problem),
        (status = 422, body = faas_spec::api::Problem)))]
pub async fn create_deployment(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(svc): Path<String>,
    ApiJson(body): ApiJson<CreateDeployment>,
) -> ApiResult<Response> {
    let service = visible(&p, &who, &svc)?;
    check_env(&body.env)?;
    let file = ManifestFile::parse("app.toml", &body.manifest).map_err(|report| {
        ApiError::unprocessable("invalid-manifest", report.render(false))
            .hint("run `faas service validate` and fix what it reports")
    })?;
    if file.manifest.name.as_str() != svc {
        return Err(ApiError::unprocessable(
            "manifest-name-mismatch",
            format!(
                "the manifest names `{}`, but this is the service `{svc}`",
                file.manifest.name
            ),
        ));
    }
    if file.manifest.owner.as_str() != service.owner {
        return Err(ApiError::unprocessable(
            "owner-mismatch",
            format!(
                "the manifest's owner is {}, but {svc} belongs to {}",
                file.manifest.owner, service.owner
            ),
        )
        .hint(format!("set `owner = \"{}\"` in app.toml", service.owner)));
    }
    let effective = file
        .effective(Some(&body.env))
        .map_err(|r| ApiError::unprocessable("invalid-manifest", r.render(false)))?;
    // Databases are checked before anything is recorded: a deploy that cannot get them
    // starts nothing.
    if let Some(why) = crate::databases::provision::unprovisionable(&p, &effective) {
        return Err(ApiError::unprocessable("no-database-provider", why));
    }
    let clashes = crate::databases::provision::clashes(&p, &svc, &body.env, &effective);
    if !clashes.is_empty() {
        return Err(ApiError::unprocessable(
            "database-secret-clash",
            format!(
                "secrets of {svc} ({}) have the names faas gives database URLs: {}",
                body.env,
                clashes.join(", ")
            ),
        )
        .hint(format!(
            "unset them (`faas service secrets unset NAME -e {}`) or rename the database in app.toml",
            body.env
        )));
    }
    // Every dependency must be there to be called.
    if let Err(why) = crate::dependencies::resolve(&p, &body.env, &effective) {
        return Err(ApiError::unprocessable("dependency-not-found", why));
    }
    let strategy = body.strategy.unwrap_or(effective.deploy.strategy);
    if body.manual && strategy != Strategy::Canary {
        return Err(ApiError::unprocessable(
            "manual-needs-canary",
            format!("`manual` holds the steps of a canary, but this deployment is `{strategy}`"),
        )
        .hint("deploy with strategy `canary`, or leave `manual` out"));
    }
    if let Some(running) = p.store.active_deployment(&svc, &body.env)? {
        return Err(in_progress(&svc, &body.env, running));
    }
    let image_id = p.runtime.image_id(&body.image).await?;
    let manifest_json = serde_json::to_string(&effective).map_err(ApiError::internal)?;
    let secrets_version = p.store.secrets_version(&svc, &body.env)?;

    // The same image, manifest and secrets as the current release: nothing to roll out, but
    // the environment is brought back to its full, healthy strength all the same.
    let current = p.store.current_release(&svc, &body.env)?;
    let release = match current {
        Some(c)
            if c.image_id == image_id
                && c.manifest == manifest_json
                && c.secrets_version == secrets_version =>
        {
            c
        }
        _ => p.store.create_release(
            &svc,
            &body.env,
            &image_id,
            &body.image,
            &manifest_json,
            secrets_version,
        )?,
    };
    Ok(accepted(start(
        &p,
        &svc,
        &body.env,
        &release,
        strategy,
        body.manual,
        &who.tenant,
    )?))
}

/// The deployments of a service, newest first.
#[utoipa::path(get, path = "/v1/services/{svc}/deployments", tag = "deployments", params(("svc" = String, Path), EnvQuery),
    responses((status = 200, body = [Deployment])))]
pub async fn list_deployments(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(svc): Path<String>,
    Query(q): Query<EnvQuery>,
) -> ApiResult<Json<Vec<Deployment>>> {
    visible(&p, &who, &svc)?;
    q.env.as_deref().map(check_env).transpose()?;
    let rows = p.store.deployments(&svc, q.env.as_deref())?;
    rows.iter()
        .map(|r| deployment_view(&p, r))
        .collect::<ApiResult<Vec<_>>>()
        .map(Json)
}

fn find_deployment(p: &Platform, who: &Principal, svc: &str, id: &str) -> ApiResult<DeploymentRow> {
    visible(p, who, svc)?;
    match p.store.deployment(id)? {
        Some(row) if row.service == svc => Ok(row),
        _ => Err(ApiError::not_found(
            "deployment-not-found",
            format!("{svc} has no deployment {id}"),
        )),
    }
}

/// A deployment with its persisted step history.
#[utoipa::path(get, path = "/v1/services/{svc}/deployments/{id}", tag = "deployments",
    params(("svc" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = Deployment), (status = 404, body = faas_spec::api::Problem)))]
pub async fn show_deployment(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path((svc, id)): Path<(String, String)>,
) -> ApiResult<Json<Deployment>> {
    let row = find_deployment(&p, &who, &svc, &id)?;
    Ok(Json(deployment_view(&p, &row)?))
}

/// The deployment's steps as NDJSON: every step so far, then each new one as it happens; the
/// stream ends after the final step. A canary's step also sends its figures so far every second
/// (`canary-progress`, `seq` 0; not kept in the history).
#[utoipa::path(get, path = "/v1/services/{svc}/deployments/{id}/events", tag = "deployments",
    params(("svc" = String, Path), ("id" = String, Path)),
    responses((status = 200, description = "One Step per line", content_type = "application/x-ndjson", body = Step)))]
pub async fn deployment_events(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path((svc, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let row = find_deployment(&p, &who, &svc, &id)?;
    // Subscribe before reading the history, so no step falls between the two.
    let mut live = p.events.subscribe(&id);
    let history = p.store.steps(&id, 0)?;
    let store = p.store.clone();
    let mut stopping = p.stopping.subscribe();
    let stream = async_stream::stream! {
        let mut last = 0;
        let mut done = row.state.is_terminal();
        for step in history {
            last = step.seq;
            done |= step.state.is_terminal();
            yield Ok::<_, std::convert::Infallible>(ndjson(&step));
        }
        while !done {
            let received = tokio::select! {
                r = live.recv() => r,
                _ = stopping.wait_for(|s| *s) => break,
            };
            let next = match received {
                Ok(step) => vec![step],
                // Fell behind, or the channel closed: the store has every step.
                Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => store.steps(&id, last).unwrap_or_default(),
            };
            let closed = next.is_empty();
            for step in next {
                // Progress (seq 0) is live only: passed on, never stored.
                if step.seq == 0 {
                    yield Ok(ndjson(&step));
                    continue;
                }
                if step.seq <= last {
                    continue;
                }
                last = step.seq;
                done |= step.state.is_terminal();
                yield Ok(ndjson(&step));
            }
            if closed && store.deployment(&id).ok().flatten().is_none_or(|d| d.state.is_terminal()) {
                break;
            }
            if closed {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                live = resubscribe(&p, &id);
            }
        }
    };
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

fn resubscribe(p: &Platform, id: &str) -> tokio::sync::broadcast::Receiver<Step> {
    p.events.subscribe(id)
}

fn ndjson(step: &Step) -> String {
    let mut line = serde_json::to_string(step).unwrap_or_default();
    line.push('\n');
    line
}

/// The releases of a service, newest first per environment.
#[utoipa::path(get, path = "/v1/services/{svc}/releases", tag = "releases", params(("svc" = String, Path), EnvQuery),
    responses((status = 200, body = [Release])))]
pub async fn list_releases(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(svc): Path<String>,
    Query(q): Query<EnvQuery>,
) -> ApiResult<Json<Vec<Release>>> {
    visible(&p, &who, &svc)?;
    q.env.as_deref().map(check_env).transpose()?;
    let rows = p.store.releases(&svc, q.env.as_deref())?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let current = p.store.current_release(&svc, &row.env)?.map(|c| c.id);
        out.push(release_view(row, current.as_deref()));
    }
    Ok(Json(out))
}

/// Deploys an earlier release again (by default the one before the current one).
#[utoipa::path(post, path = "/v1/services/{svc}/rollback", tag = "releases", params(("svc" = String, Path)),
    request_body = Rollback,
    responses((status = 202, body = Deployment), (status = 409, body = faas_spec::api::Problem),
        (status = 404, body = faas_spec::api::Problem)))]
pub async fn rollback(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(svc): Path<String>,
    ApiJson(body): ApiJson<Rollback>,
) -> ApiResult<Response> {
    visible(&p, &who, &svc)?;
    check_env(&body.env)?;
    let target = match body.release {
        Some(version) => p
            .store
            .release_by_version(&svc, &body.env, version)?
            .ok_or_else(|| {
                ApiError::not_found(
                    "release-not-found",
                    format!("{svc} has no release v{version} in {}", body.env),
                )
                .hint(format!(
                    "GET /v1/services/{svc}/releases?env={} lists them",
                    body.env
                ))
            })?,
        None => {
            let current = p.store.current_release(&svc, &body.env)?.ok_or_else(|| {
                ApiError::conflict(
                    "nothing-to-roll-back",
                    format!("{svc} has no release serving {}", body.env),
                )
            })?;
            p.store
                .previous_successful_release(&svc, &body.env, &current.id)?
                .ok_or_else(|| {
                    ApiError::conflict(
                        "no-previous-release",
                        format!(
                            "v{} is the first release of {svc} in {}",
                            current.version, body.env
                        ),
                    )
                })?
        }
    };
    // The previous set kept warm by a blue-green switch: switching back starts no container.
    let warm = p
        .store
        .traffic(&svc, &body.env)?
        .standby
        .is_some_and(|(standby, _)| standby == target.id);
    let strategy = if warm {
        Strategy::Bluegreen
    } else {
        target
            .manifest()
            .map(|m| m.deploy.strategy)
            .unwrap_or_default()
    };
    if !warm {
        // The image must still be there.
        p.runtime.image_id(&target.image_id).await?;
    }
    let d = start(&p, &svc, &body.env, &target, strategy, false, &who.tenant)?;
    if d.state == DeploymentState::Unknown {
        return Err(ApiError::internal("unknown deployment state"));
    }
    Ok(accepted(d))
}

/// Runs the current release with another number of instances (until the next release).
#[utoipa::path(post, path = "/v1/services/{svc}/scale", tag = "releases", params(("svc" = String, Path)),
    request_body = Scale,
    responses((status = 202, body = Deployment), (status = 409, body = faas_spec::api::Problem)))]
pub async fn scale(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(svc): Path<String>,
    ApiJson(body): ApiJson<Scale>,
) -> ApiResult<Response> {
    visible(&p, &who, &svc)?;
    check_env(&body.env)?;
    if body.replicas > faas_spec::manifest::MAX_REPLICAS {
        return Err(ApiError::bad_request(
            "invalid-replicas",
            "replicas go from 0 to 100",
        ));
    }
    let current = p.store.current_release(&svc, &body.env)?.ok_or_else(|| {
        ApiError::conflict(
            "nothing-to-scale",
            format!("{svc} has no release serving {}", body.env),
        )
        .hint(format!(
            "deploy it first: faas service deploy -e {}",
            body.env
        ))
    })?;
    if let Some(running) = p.store.active_deployment(&svc, &body.env)? {
        return Err(in_progress(&svc, &body.env, running));
    }
    p.store.set_replicas(&svc, &body.env, Some(body.replicas))?;
    Ok(accepted(start(
        &p,
        &svc,
        &body.env,
        &current,
        Strategy::Immediate,
        false,
        &who.tenant,
    )?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct PurgeQuery {
    /// Drop its databases with their data too (without: detached, their data kept).
    #[serde(default)]
    pub purge: bool,
}

/// An environment's databases once it is gone: detached (their data kept), or with `purge`
/// destroyed.
pub(super) async fn release_databases(
    p: &AppState,
    svc: &str,
    env: &str,
    purge: bool,
) -> ApiResult<()> {
    for row in p.store.databases(svc, Some(env))? {
        let done = if purge {
            crate::databases::provision::destroy(p, &row).await
        } else if row.state != "detached" {
            crate::databases::provision::detach(p, &row).await
        } else {
            Ok(())
        };
        done.map_err(|why| {
            ApiError::new(StatusCode::BAD_GATEWAY, "database-server-error", why).hint(
                "the environment is stopped; delete it again once the database server answers",
            )
        })?;
    }
    Ok(())
}

/// Removes one environment of a service: its instances, releases and history; its databases
/// are detached (their data kept) unless `purge`.
#[utoipa::path(delete, path = "/v1/services/{svc}/environments/{env}", tag = "services",
    params(("svc" = String, Path), ("env" = String, Path), PurgeQuery),
    responses((status = 204), (status = 404, body = faas_spec::api::Problem)))]
pub async fn delete_environment(
    State(p): State<AppState>,
    Extension(who): Extension<Principal>,
    Path((svc, env)): Path<(String, String)>,
    Query(q): Query<PurgeQuery>,
) -> ApiResult<StatusCode> {
    visible(&p, &who, &svc)?;
    if !p.store.environments(&svc)?.iter().any(|(e, _)| *e == env) {
        return Err(ApiError::not_found(
            "environment-not-found",
            format!("{svc} has no environment `{env}`"),
        ));
    }
    p.tear_down(&svc, &env).await?;
    release_databases(&p, &svc, &env, q.purge).await?;
    p.logs.remove(&svc, &env);
    p.store.delete_environment(&svc, &env)?;
    Ok(StatusCode::NO_CONTENT)
}
