//! Active health checks of each backend, and the one-off request a smoke check makes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};

use super::Router;
use super::pool::{Backend, HealthCheck};

/// Active health checks of one backend: quickly until it first passes (so a deploy waits no
/// longer than needed), then every `interval`. Two failures in a row mark it unhealthy.
pub(super) async fn health_loop(router: Arc<Router>, backend: Arc<Backend>) {
    let mut ever_healthy = false;
    loop {
        let ok = probe(&router, &backend).await;
        if ok {
            backend
                .failures
                .store(0, std::sync::atomic::Ordering::Relaxed);
            backend.set_healthy(true);
            ever_healthy = true;
        } else {
            let failures = backend
                .failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1;
            if failures >= 2 || !ever_healthy {
                backend.set_healthy(false);
            }
        }
        let pause = if backend.is_healthy() {
            backend.check.interval
        } else {
            Duration::from_millis(100).min(backend.check.interval)
        };
        tokio::time::sleep(pause).await;
    }
}

impl Router {
    /// `GET path` on one instance directly (a smoke check): its status, or why it gave none.
    pub async fn get_status(
        &self,
        addr: SocketAddr,
        path: &str,
        timeout: Duration,
    ) -> Result<StatusCode, String> {
        let uri: Uri = format!("http://{addr}{path}")
            .parse()
            .map_err(|e| format!("cannot be requested: {e}"))?;
        let request = Request::get(uri)
            .header(header::USER_AGENT, "faas-smoke-check")
            .body(
                Empty::<Bytes>::new()
                    .map_err(|never| match never {})
                    .boxed(),
            )
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(timeout, self.client.request(request)).await {
            Ok(Ok(response)) => {
                let status = response.status();
                let _ = tokio::time::timeout(timeout, response.into_body().collect()).await;
                Ok(status)
            }
            Ok(Err(e)) => Err(format!("failed: {e}")),
            Err(_) => Err(format!("did not answer within {timeout:?}")),
        }
    }
}

pub(super) async fn probe(router: &Router, backend: &Backend) -> bool {
    let timeout = backend.check.timeout;
    match &backend.check.path {
        None => matches!(
            tokio::time::timeout(timeout, tokio::net::TcpStream::connect(backend.addr)).await,
            Ok(Ok(_))
        ),
        Some(path) => {
            let Ok(uri) = format!("http://{}{path}", backend.addr).parse::<Uri>() else {
                return false;
            };
            let request = Request::get(uri)
                .header(header::USER_AGENT, "faas-health-check")
                .body(
                    Empty::<Bytes>::new()
                        .map_err(|never| match never {})
                        .boxed(),
                );
            let Ok(request) = request else { return false };
            match tokio::time::timeout(timeout, router.client.request(request)).await {
                Ok(Ok(response)) => {
                    let ok = response.status() == StatusCode::OK;
                    let _ = tokio::time::timeout(timeout, response.into_body().collect()).await;
                    ok
                }
                _ => false,
            }
        }
    }
}

pub fn health_check_of(manifest: &faas_spec::Manifest) -> HealthCheck {
    HealthCheck {
        path: manifest.health.path.clone(),
        interval: manifest
            .health
            .interval
            .as_std()
            .max(Duration::from_millis(100)),
        timeout: manifest
            .health
            .timeout
            .as_std()
            .max(Duration::from_millis(50)),
    }
}
