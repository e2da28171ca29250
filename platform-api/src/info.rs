//! `GET /_info`: health and version.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::AppState;

#[derive(Debug, Serialize)]
pub struct Info {
    pub status: &'static str,
    pub service: &'static str,
    pub version: &'static str,
    pub uptime_s: f64,
}

pub fn router() -> Router<AppState> {
    Router::new().route("/_info", get(info))
}

async fn info(State(state): State<AppState>) -> Json<Info> {
    Json(Info {
        status: "ok",
        service: "faas-platform",
        version: env!("CARGO_PKG_VERSION"),
        uptime_s: state.started.elapsed().as_secs_f64(),
    })
}
