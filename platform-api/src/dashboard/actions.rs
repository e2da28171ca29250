//! What the service page can do: roll back, promote or abort a canary, scale, restart an
//! instance. Each form carries the session's cross-site token and asks for confirmation in the
//! page; each calls the API's own handler with the viewer's principal, so the dashboard can do
//! nothing the viewer's token could not.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;

use super::error_page;
use super::session::Viewer;
use super::view::encode;
use crate::AppState;
use crate::api::{ApiJson, Path, canary, deployments, instances};
use crate::error::ApiError;

#[derive(Debug, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub env: String,
    /// A rollback's target version (empty: the one before the current).
    pub release: Option<String>,
    /// A scale's instance count.
    pub replicas: Option<String>,
}

fn back(svc: &str, env: &str, done: &str) -> Response {
    Redirect::to(&format!(
        "/dashboard/services/{}?env={}&done={}",
        encode(svc),
        encode(env),
        encode(done)
    ))
    .into_response()
}

fn refused(e: ApiError) -> Response {
    error_page(e.status, "Not done", &e.detail, e.hint.as_deref())
}

fn bad(detail: &str, hint: &str) -> Response {
    refused(ApiError::bad_request("invalid-input", detail).hint(hint))
}

pub async fn rollback(
    State(p): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(svc): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Err(r) = viewer.check(&headers, &form.csrf) {
        return *r;
    }
    let release = match form
        .release
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(v) => match v.trim_start_matches('v').parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                return bad(
                    &format!("`{v}` is not a release version"),
                    "pick one of the listed releases",
                );
            }
        },
    };
    let body = faas_spec::api::Rollback {
        env: form.env.clone(),
        release,
    };
    match deployments::rollback(
        State(p),
        Extension(viewer.principal),
        Path(svc.clone()),
        ApiJson(body),
    )
    .await
    {
        Ok(_) => back(&svc, &form.env, "rollback started"),
        Err(e) => refused(e),
    }
}

pub async fn scale(
    State(p): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(svc): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Err(r) = viewer.check(&headers, &form.csrf) {
        return *r;
    }
    let Some(Ok(replicas)) = form.replicas.as_deref().map(|r| r.trim().parse::<u32>()) else {
        return bad(
            "the number of instances is not a whole number",
            "write a number from 0 to 100",
        );
    };
    let body = faas_spec::api::Scale {
        env: form.env.clone(),
        replicas,
    };
    match deployments::scale(
        State(p),
        Extension(viewer.principal),
        Path(svc.clone()),
        ApiJson(body),
    )
    .await
    {
        Ok(_) => back(&svc, &form.env, &format!("scaling to {replicas}")),
        Err(e) => refused(e),
    }
}

pub async fn canary(
    State(p): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((svc, command)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Err(r) = viewer.check(&headers, &form.csrf) {
        return *r;
    }
    let body = faas_spec::api::CanaryControl {
        env: form.env.clone(),
    };
    let who = Extension(viewer.principal);
    let done = match command.as_str() {
        "promote" => canary::promote(State(p), who, Path(svc.clone()), ApiJson(body))
            .await
            .map(|_| "canary promoted"),
        "abort" => canary::abort(State(p), who, Path(svc.clone()), ApiJson(body))
            .await
            .map(|_| "canary aborted"),
        other => {
            return bad(
                &format!("`{other}` is not a canary command"),
                "use promote or abort",
            );
        }
    };
    match done {
        Ok(done) => back(&svc, &form.env, done),
        Err(e) => refused(e),
    }
}

pub async fn restart(
    State(p): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((svc, id)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Err(r) = viewer.check(&headers, &form.csrf) {
        return *r;
    }
    match instances::restart_instance(
        State(p),
        Extension(viewer.principal),
        Path((svc.clone(), id.clone())),
    )
    .await
    {
        Ok(_) => back(&svc, &form.env, &format!("instance {id} restarted")),
        Err(e) => refused(e),
    }
}
