//! The router: an HTTP reverse proxy (hyper) that serves `<svc>.<domain>` (environment `prod`)
//! and `<svc>-<env>.<domain>` from the healthy instances of each service, with keep-alive to
//! upstreams, streamed bodies, upgrade pass-through, forwarding headers, active health checks,
//! passive ejection, draining and per-release metrics.

pub mod callers;
mod health;
pub mod metrics;
pub mod pool;
pub mod spans;
mod upstream;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::body::{Body, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use self::health::health_check_of;
use self::health::*;
pub use self::metrics::Metrics;
use self::pool::{Backend, Pool, Split, Target};
use self::upstream::*;

pub type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// An upstream client with keep-alive connections; each router worker has its own, so its
/// connections are driven on its own core. (The health checks use the router's shared one.)
fn new_client() -> Client<HttpConnector, ProxyBody> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(256)
        .build(connector)
}

pub struct Router {
    domain: String,
    /// Each environment's host, and its `-green` and `-blue` preview hosts.
    hosts: RwLock<HashMap<String, (Arc<Pool>, Target)>>,
    client: Client<HttpConnector, ProxyBody>,
    pub metrics: Arc<Metrics>,
    /// Who calls: the platform's instances by address, their dependencies, callees' policies.
    pub callers: callers::Callers,
    /// Where the platform's instances reach the router (its address on their network).
    internal: std::sync::OnceLock<SocketAddr>,
    /// The spans of its hops, on their way to the store.
    pub spans: spans::Spans,
}

impl Router {
    pub fn new(domain: &str) -> Arc<Self> {
        Arc::new(Self {
            domain: domain.to_owned(),
            hosts: RwLock::new(HashMap::new()),
            client: new_client(),
            metrics: Arc::new(Metrics::default()),
            callers: Default::default(),
            internal: Default::default(),
            spans: spans::Spans::new(
                std::env::var("FAAS_PLATFORM_TRACING").map_or(true, |v| v != "off"),
            ),
        })
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The host a service's environment is served at.
    pub fn host_for(&self, service: &str, env: &str) -> String {
        if env == "prod" {
            format!("{service}.{}", self.domain)
        } else {
            format!("{service}-{env}.{}", self.domain)
        }
    }

    /// The preview host of a blue-green or canary set: `<svc>-<env>-green.<domain>` for the
    /// new set, `…-blue…` for the one it replaces.
    pub fn preview_host(&self, service: &str, env: &str, green: bool) -> String {
        let color = if green { "green" } else { "blue" };
        format!("{service}-{env}-{color}.{}", self.domain)
    }

    pub fn pool(&self, service: &str, env: &str) -> Arc<Pool> {
        let host = self.host_for(service, env);
        if let Some((p, Target::Main)) = self
            .hosts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&host)
        {
            return p.clone();
        }
        let mut hosts = self.hosts.write().unwrap_or_else(|p| p.into_inner());
        if let Some((p, Target::Main)) = hosts.get(&host) {
            return p.clone();
        }
        let pool = Arc::new(Pool::new(service, env));
        hosts.insert(host, (pool.clone(), Target::Main));
        // A preview host never takes the place of another environment's own host.
        for (green, target) in [(true, Target::Green), (false, Target::Blue)] {
            hosts
                .entry(self.preview_host(service, env, green))
                .or_insert_with(|| (pool.clone(), target));
        }
        pool
    }

    fn pool_for_host(&self, host: &str) -> Option<(Arc<Pool>, Target)> {
        self.hosts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(host)
            .cloned()
    }

    /// How an environment's requests are split between its releases now.
    pub fn split(&self, service: &str, env: &str) -> Arc<Split> {
        self.pool(service, env).split()
    }

    /// Changes the split atomically: the next request is dealt by the new one.
    pub fn set_split(&self, service: &str, env: &str, split: Split) {
        self.pool(service, env).set_split(split);
    }

    /// Adds an instance; it takes requests once its health check passes.
    /// The calls per caller of every environment, in Prometheus text.
    pub fn render_calls(&self) -> String {
        use std::fmt::Write as _;
        let mut pools: Vec<Arc<Pool>> = Vec::new();
        for (pool, target) in self
            .hosts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            if *target == Target::Main {
                pools.push(pool.clone());
            }
        }
        pools.sort_by(|a, b| (&a.service, &a.env).cmp(&(&b.service, &b.env)));
        let mut out = String::from(
            "# HELP faas_router_calls_total Requests the router answered, by caller (`-`: from outside the platform).\n# TYPE faas_router_calls_total counter\n",
        );
        for pool in pools {
            let mut calls = pool.calls();
            calls.sort();
            for (caller, n) in calls {
                let _ = writeln!(
                    out,
                    "faas_router_calls_total{{service=\"{}\",env=\"{}\",caller=\"{caller}\"}} {n}",
                    pool.service, pool.env
                );
            }
        }
        out
    }

    /// The router's address on the instances' network, once it listens there.
    pub fn internal(&self) -> Option<SocketAddr> {
        self.internal.get().copied()
    }

    pub fn set_internal(&self, addr: SocketAddr) {
        let _ = self.internal.set(addr);
    }

    pub fn add_backend(
        self: &Arc<Self>,
        service: &str,
        env: &str,
        backend: Backend,
    ) -> Arc<Backend> {
        self.callers.register(backend.addr.ip(), service, env);
        let backend = Arc::new(backend);
        let checker = tokio::spawn(health_loop(self.clone(), backend.clone()));
        backend.set_checker(checker.abort_handle());
        self.pool(service, env).add(backend.clone());
        backend
    }

    pub fn backend(&self, service: &str, env: &str, instance: &str) -> Option<Arc<Backend>> {
        self.pool(service, env).get(instance)
    }

    /// Drains an instance (no new requests; in-flight ones finish, up to `timeout`), then takes
    /// it out of its pool.
    pub async fn drain_and_remove(
        &self,
        service: &str,
        env: &str,
        instance: &str,
        timeout: Duration,
    ) -> usize {
        let pool = self.pool(service, env);
        let Some(backend) = pool.get(instance) else {
            return 0;
        };
        let left = backend.drain(timeout).await;
        backend.stop_checker();
        pool.remove(instance);
        self.callers.forget(backend.addr.ip());
        left
    }

    /// Sends an instance's requests to a new address (its pod was replaced): a fresh backend
    /// there, healthy once its check passes; a draining one is left to finish.
    pub fn readdress(
        self: &Arc<Self>,
        service: &str,
        env: &str,
        instance: &str,
        addr: std::net::SocketAddr,
    ) -> bool {
        let pool = self.pool(service, env);
        let Some(old) = pool.get(instance) else {
            return false;
        };
        if old.addr == addr || old.is_draining() {
            return false;
        }
        old.stop_checker();
        self.callers.forget(old.addr.ip());
        self.add_backend(
            service,
            env,
            Backend::new(instance, &old.release, addr, old.check.clone()),
        );
        true
    }

    pub fn remove_backend(&self, service: &str, env: &str, instance: &str) {
        if let Some(b) = self.pool(service, env).remove(instance) {
            b.stop_checker();
            self.callers.forget(b.addr.ip());
        }
    }

    pub fn remove_environment(&self, service: &str, env: &str) {
        let host = self.host_for(service, env);
        let mut hosts = self.hosts.write().unwrap_or_else(|p| p.into_inner());
        if let Some((pool, Target::Main)) = hosts.get(&host).cloned() {
            hosts.retain(|_, (p, _)| !Arc::ptr_eq(p, &pool));
            for b in pool.backends().iter() {
                b.stop_checker();
                self.callers.forget(b.addr.ip());
            }
        }
    }

    /// Serves the router on `listener` until `shutdown` turns true; then stops accepting and
    /// gives open requests up to `drain` to finish.
    ///
    /// Like nginx's workers, one single-threaded event loop per core accepts from the shared
    /// listener and keeps its own upstream connections, so a request and its upstream call
    /// stay on one core instead of waking each other across cores.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: watch::Receiver<bool>,
        drain: Duration,
    ) {
        let listener = match listener.into_std() {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("router: cannot share the listener: {e}");
                return;
            }
        };
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut threads = Vec::with_capacity(workers);
        for i in 0..workers {
            let Ok(listener) = listener.try_clone() else {
                continue;
            };
            let router = self.clone();
            let shutdown = shutdown.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("faas-router-{i}"))
                .spawn(move || {
                    match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt.block_on(router.serve_worker(listener, shutdown, drain)),
                        Err(e) => tracing::error!("router: cannot start worker {i}: {e}"),
                    }
                });
            match spawned {
                Ok(handle) => threads.push(handle),
                Err(e) => tracing::error!("router: cannot start worker {i}: {e}"),
            }
        }
        drop(listener);
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }

    async fn serve_worker(
        self: Arc<Self>,
        listener: std::net::TcpListener,
        mut shutdown: watch::Receiver<bool>,
        drain: Duration,
    ) {
        let listener = match TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("router: worker cannot listen: {e}");
                return;
            }
        };
        let client = new_client();
        let connections = tokio_util::task::TaskTracker::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, peer)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    let router = self.clone();
                    let client = client.clone();
                    let service = hyper::service::service_fn(move |req| {
                        let router = router.clone();
                        let client = client.clone();
                        async move { Ok::<_, Infallible>(router.handle(req, peer, &client).await) }
                    });
                    let mut stop = shutdown.clone();
                    connections.spawn(async move {
                        let conn = hyper::server::conn::http1::Builder::new()
                            .keep_alive(true)
                            .serve_connection(TokioIo::new(stream), service)
                            .with_upgrades();
                        tokio::pin!(conn);
                        tokio::select! {
                            _ = conn.as_mut() => {}
                            _ = stop.changed() => {
                                // Finish the request under way, then close the connection.
                                conn.as_mut().graceful_shutdown();
                                let _ = conn.await;
                            }
                        }
                    });
                }
                _ = shutdown.changed() => break,
            }
        }
        drop(listener);
        connections.close();
        if tokio::time::timeout(drain, connections.wait())
            .await
            .is_err()
        {
            tracing::warn!("router: requests still open after {drain:?}; closing them");
        }
    }

    async fn handle(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        peer: SocketAddr,
        client: &Client<HttpConnector, ProxyBody>,
    ) -> Response<ProxyBody> {
        let started = Instant::now();
        let request_id = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 200)
            .map(str::to_owned)
            .unwrap_or_else(new_request_id);
        let host = request_host(&req);
        let Some((pool, target)) = self.pool_for_host(&host) else {
            self.metrics
                .unrouted
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return json_error(
                StatusCode::NOT_FOUND,
                "no-such-service",
                &format!("no service is served at {host}"),
                &request_id,
            );
        };

        // Only a split reads the session cookie.
        let session = if pool.is_split() {
            session_of(req.headers())
        } else {
            None
        };
        // The caller is whoever the connection comes from, never what the request says.
        let caller = if self.spans.enabled {
            self.callers.caller_of(peer.ip())
        } else {
            None
        };
        let source = caller.as_ref().map(|(s, e)| format!("{s}/{e}"));
        pool.count_call(source.as_deref().unwrap_or("-"));
        if let Some(c) = &caller
            && !self.callers.allowed(c, &pool.service, &pool.env)
        {
            return json_error(
                StatusCode::FORBIDDEN,
                "caller-not-declared",
                &format!(
                    "{} ({}) may not call {}: {} takes calls only from services that list it in their [[dependencies]] (access.callers = \"declared\"); add it there: faas service dependency add {}",
                    c.0, c.1, pool.service, pool.service, pool.service
                ),
                &request_id,
            );
        }
        let upgrade = is_upgrade(req.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        parts.headers.remove("x-source");
        if let Some(source) = &source
            && let Ok(v) = http::HeaderValue::from_str(source)
        {
            parts.headers.insert("x-source", v);
        }
        // The trace goes on with this hop's span as its parent.
        let trace = self.spans.enabled.then(|| {
            let ctx = spans::continue_or_start(
                parts
                    .headers
                    .get("traceparent")
                    .and_then(|v| v.to_str().ok()),
            );
            let span_id = spans::new_span_id();
            if let Ok(v) =
                http::HeaderValue::from_str(&format!("00-{}-{span_id}-{}", ctx.trace_id, ctx.flags))
            {
                parts.headers.insert("traceparent", v);
            }
            (ctx, span_id)
        });
        let hop = spans::Hop {
            trace: &trace,
            service: &pool.service,
            env: &pool.env,
            caller: source.as_deref(),
            method: parts.method.as_str(),
            path: parts.uri.path(),
            start_us: crate::meter::now_us(),
            started,
        };
        // A request without a body can be sent again to another instance when the first one
        // refuses the connection; one with a body is streamed once.
        let replayable = body.is_end_stream() || body.size_hint().exact() == Some(0);
        let mut body = Some(body.boxed());
        let mut tried: Option<String> = None;

        for _attempt in 0..3 {
            let slot = match pool.pick_for(tried.as_deref(), target, session.as_deref()) {
                Ok(Some(slot)) => slot,
                Ok(None) => break,
                Err(pool::NoPreviewSet) => {
                    let color = if target == Target::Green {
                        "green"
                    } else {
                        "blue"
                    };
                    return json_error(
                        StatusCode::NOT_FOUND,
                        "no-preview-set",
                        &format!(
                            "{} ({}) has no {color} set now: one exists while a blue-green or canary deployment runs, and while the previous set is kept warm",
                            pool.service, pool.env
                        ),
                        &request_id,
                    );
                }
            };
            let backend = slot.backend().clone();
            let upstream_body = if replayable {
                Empty::<Bytes>::new()
                    .map_err(|never| match never {})
                    .boxed()
            } else {
                match body.take() {
                    Some(b) => b,
                    None => break,
                }
            };
            let upstream = match build_upstream(
                &parts,
                backend.addr,
                &host,
                peer,
                &request_id,
                upgrade,
                upstream_body,
            ) {
                Ok(r) => r,
                Err(e) => {
                    return json_error(StatusCode::BAD_REQUEST, "bad-request", &e, &request_id);
                }
            };
            match client.request(upstream).await {
                Ok(mut response) => {
                    backend
                        .failures
                        .store(0, std::sync::atomic::Ordering::Relaxed);
                    let status = response.status();
                    self.series_of(&pool, &backend)
                        .record(status.as_u16(), started.elapsed());
                    self.spans.hop_done(&hop, Some(&backend), status.as_u16());
                    if status == StatusCode::SWITCHING_PROTOCOLS
                        && let Some(client_side) = client_upgrade
                    {
                        let backend_side = hyper::upgrade::on(&mut response);
                        tokio::spawn(async move {
                            let _slot = slot;
                            if let (Ok(a), Ok(b)) = (client_side.await, backend_side.await) {
                                let _ = tokio::io::copy_bidirectional(
                                    &mut TokioIo::new(a),
                                    &mut TokioIo::new(b),
                                )
                                .await;
                            }
                        });
                        let (mut head, _) = response.into_parts();
                        head.headers
                            .insert("x-request-id", header_value(&request_id));
                        return Response::from_parts(
                            head,
                            Empty::new().map_err(|never| match never {}).boxed(),
                        );
                    }
                    let (mut head, incoming) = response.into_parts();
                    strip_hop_by_hop(&mut head.headers);
                    head.headers
                        .insert("x-request-id", header_value(&request_id));
                    return Response::from_parts(
                        head,
                        GuardedBody {
                            inner: incoming,
                            _slot: slot,
                        }
                        .boxed(),
                    );
                }
                Err(e) => {
                    // Passive ejection: the instance refused or dropped the connection.
                    if e.is_connect() || replayable {
                        backend.set_healthy(false);
                        backend
                            .failures
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    tracing::debug!(instance = %backend.instance, error = %e, "upstream request failed");
                    if !replayable && !e.is_connect() {
                        self.series_of(&pool, &backend)
                            .record(502, started.elapsed());
                        self.spans.hop_done(&hop, Some(&backend), 502);
                        return json_error(
                            StatusCode::BAD_GATEWAY,
                            "upstream-failed",
                            &format!("the instance failed to answer: {e}"),
                            &request_id,
                        );
                    }
                    tried = Some(backend.instance.clone());
                    if !replayable && body.is_none() {
                        break;
                    }
                }
            }
        }
        self.spans.hop_done(&hop, None, 503);
        json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no-healthy-instance",
            &format!(
                "{} ({}) has no healthy instance to answer",
                pool.service, pool.env
            ),
            &request_id,
        )
    }
}

impl Router {
    /// The backend's metrics series, looked up (by three strings, under a lock) on its first
    /// request only.
    fn series_of<'b>(&self, pool: &Pool, backend: &'b Backend) -> &'b metrics::Series {
        backend.series.get_or_init(|| {
            self.metrics
                .series(&pool.service, &pool.env, &backend.release)
        })
    }
}

#[cfg(test)]
mod tests {
    use http::header::{HeaderMap, HeaderValue};

    use super::*;

    #[test]
    fn hosts_are_lowercased_without_port() {
        let req = Request::get("/")
            .header("host", "Pricing.LOCALHOST:7780")
            .body(())
            .unwrap();
        assert_eq!(request_host(&req), "pricing.localhost");
        let req = Request::get("/")
            .header("host", "pricing-staging.localhost")
            .body(())
            .unwrap();
        assert_eq!(request_host(&req), "pricing-staging.localhost");
    }

    #[test]
    fn prod_has_the_short_host() {
        let r = Router::new("localhost");
        assert_eq!(r.host_for("pricing", "prod"), "pricing.localhost");
        assert_eq!(
            r.host_for("pricing", "staging"),
            "pricing-staging.localhost"
        );
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            "cookie",
            HeaderValue::from_static("theme=dark; PHPSESSID=abc123; x=1"),
        );
        assert_eq!(session_of(&h).as_deref(), Some("abc123"));
        let mut h = HeaderMap::new();
        h.insert("cookie", HeaderValue::from_static("theme=dark"));
        assert_eq!(session_of(&h), None);
        let mut h = HeaderMap::new();
        h.append("cookie", HeaderValue::from_static("a=1"));
        h.append("cookie", HeaderValue::from_static("connect.sid=s%3Axyz"));
        assert_eq!(session_of(&h).as_deref(), Some("s%3Axyz"));
    }

    #[test]
    fn preview_hosts_serve_the_same_pool() {
        let r = Router::new("localhost");
        let pool = r.pool("pricing", "prod");
        let (green, target) = r.pool_for_host("pricing-prod-green.localhost").unwrap();
        assert!(Arc::ptr_eq(&pool, &green));
        assert_eq!(target, Target::Green);
        assert_eq!(
            r.pool_for_host("pricing-prod-blue.localhost").unwrap().1,
            Target::Blue
        );
        r.remove_environment("pricing", "prod");
        assert!(r.pool_for_host("pricing-prod-green.localhost").is_none());
    }

    #[test]
    fn hop_by_hop_headers_are_stripped() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }
}
