//! An HTTP service on axum. `GET /_info` is the health check faas polls.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Clone)]
struct AppState {
    started: Instant,
}

fn app() -> Router {
    Router::new()
        .route("/", get(|| async { "hello from faas\n" }))
        .route("/_info", get(info))
        .route("/echo", post(echo))
        .with_state(AppState { started: Instant::now() })
}

async fn info(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "service": env!("CARGO_PKG_NAME"),
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": state.started.elapsed().as_secs_f64(),
    }))
}

#[derive(Deserialize)]
struct EchoRequest {
    message: String,
}

async fn echo(Json(request): Json<EchoRequest>) -> Json<Value> {
    Json(json!({ "message": request.message }))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(8080);
    let addr = SocketAddr::from(([0, 0, 0, 0], port));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("{{\"msg\":\"listening\",\"addr\":\"{addr}\"}}");
    axum::serve(listener, app()).with_graceful_shutdown(shutdown()).await
}

/// Finishes in-flight requests on SIGTERM (what the platform sends when it drains an instance).
async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => return ctrl_c.await.unwrap_or(()),
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.unwrap_or(());
}
