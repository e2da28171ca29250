//! `GET /_info` and `GET /metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use faas_spec::api::PlatformInfo;

use crate::AppState;

/// Health and version of the platform, and whether its Docker Engine answers.
#[utoipa::path(get, path = "/_info", tag = "platform", security(()), responses((status = 200, body = PlatformInfo)))]
pub async fn info(State(p): State<AppState>) -> Json<PlatformInfo> {
    Json(PlatformInfo {
        status: "ok".into(),
        id: p.runtime.platform_id().to_owned(),
        service: "faas-platform".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_s: p.started.elapsed().as_secs_f64(),
        domain: p.config.domain.clone(),
        router: p.config.router.to_string(),
        docker: p.runtime.status(),
        // Only a platform on loopback says where its data is: one that only this machine's
        // users reach, so that a CLI can tell its own platform from another user's.
        data_dir: p
            .config
            .listen
            .ip()
            .is_loopback()
            .then(|| p.config.data_dir.display().to_string()),
    })
}

/// The router's measurements per service, environment and release, as Prometheus text.
#[utoipa::path(get, path = "/metrics", tag = "platform", security(()), responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(p): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        p.router.metrics.render() + &p.router.render_calls(),
    )
}
