//! faas-platform: the daemon the CLI talks to. `app(state)` builds the HTTP API apart from the
//! socket, so tests drive it without one.

pub mod info;

use axum::Router;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    pub started: std::time::Instant,
}

impl AppState {
    pub fn new() -> Self {
        Self {
            started: std::time::Instant::now(),
        }
    }
}

impl Default for AppState {
    fn default() -> Self {
        Self::new()
    }
}

/// The platform API.
pub fn app(state: AppState) -> Router {
    Router::new().merge(info::router()).with_state(state)
}
