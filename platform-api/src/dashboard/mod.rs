//! The dashboard at `/dashboard`: server-rendered pages (minijinja, HTML escaped), one small
//! embedded script for live updates, confirmations and log streaming, and charts drawn by the
//! server as inline SVG. Everything is in the binary: no build step, no network.
//!
//! A platform token signs in once ([`session`]); pages then read the same store the API does
//! and show a member only its tenant's services; actions ([`actions`]) call the API's own
//! handlers with the session's principal, behind a per-session cross-site token.

pub mod actions;
pub mod charts;
pub mod live;
pub mod pages;
pub mod service;
pub mod session;
pub mod traces;
pub mod view;

use std::sync::OnceLock;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::Environment;

use crate::AppState;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("overview.html", include_str!("templates/overview.html")),
    ("releases.html", include_str!("templates/releases.html")),
    ("service.html", include_str!("templates/service.html")),
    ("problems.html", include_str!("templates/problems.html")),
    ("error.html", include_str!("templates/error.html")),
    ("traces.html", include_str!("templates/traces.html")),
];

const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("dashboard template {name}: {e:#}"));
        }
        env
    })
}

/// A page rendered from its template; a template error is a 500 that says which.
pub fn render(name: &str, ctx: minijinja::Value) -> Response {
    render_status(StatusCode::OK, name, ctx)
}

pub fn render_status(status: StatusCode, name: &str, ctx: minijinja::Value) -> Response {
    match templates().get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => (status, secure_headers(), Html(html)).into_response(),
        Err(e) => {
            tracing::error!("dashboard: cannot render {name}: {e:#}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the dashboard could not draw this page; the daemon's log says why",
            )
                .into_response()
        }
    }
}

/// A page that says what went wrong, with its status.
pub fn error_page(status: StatusCode, title: &str, detail: &str, hint: Option<&str>) -> Response {
    render_status(
        status,
        "error.html",
        minijinja::context! { title, detail, hint, status => status.as_u16() },
    )
}

/// No framing by other sites, no sniffing, scripts only from here.
fn secure_headers() -> [(header::HeaderName, HeaderValue); 4] {
    [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
            ),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ),
    ]
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SCRIPT,
    )
        .into_response()
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        STYLE,
    )
        .into_response()
}

/// The dashboard's routes, under `/dashboard`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(pages::overview))
        .route("/dashboard/", get(pages::overview))
        .route("/dashboard/releases", get(pages::releases))
        .route("/dashboard/problems", get(pages::problems))
        .route("/dashboard/traces", get(traces::page))
        .route(
            "/dashboard/login",
            get(session::login_page).post(session::login),
        )
        .route("/dashboard/logout", post(session::logout))
        .route("/dashboard/live", get(live::changes))
        .route("/dashboard/services/{svc}", get(service::page))
        .route("/dashboard/services/{svc}/logs", get(live::logs))
        .route(
            "/dashboard/services/{svc}/rollback",
            post(actions::rollback),
        )
        .route("/dashboard/services/{svc}/scale", post(actions::scale))
        .route(
            "/dashboard/services/{svc}/canary/{command}",
            post(actions::canary),
        )
        .route(
            "/dashboard/services/{svc}/instances/{id}/restart",
            post(actions::restart),
        )
        .route("/dashboard/assets/app.js", get(script))
        .route("/dashboard/assets/app.css", get(style))
        .route("/dashboard/{*rest}", get(not_found))
}

async fn not_found() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no such page on this dashboard.",
        Some("Go back to the overview."),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_parses() {
        for (name, _) in super::TEMPLATES {
            super::templates().get_template(name).unwrap();
        }
    }
}
