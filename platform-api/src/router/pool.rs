//! Backends (instances) grouped by service and environment, each with its health, whether it
//! is draining, and its in-flight requests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// How an instance's health is checked.
#[derive(Debug, Clone)]
pub struct HealthCheck {
    /// An HTTP path that must answer 200; without one, a TCP connect is the check.
    pub path: Option<String>,
    pub interval: Duration,
    pub timeout: Duration,
}

#[derive(Debug)]
pub struct Backend {
    pub instance: String,
    pub release: String,
    pub addr: SocketAddr,
    pub check: HealthCheck,
    healthy: AtomicBool,
    draining: AtomicBool,
    in_flight: AtomicUsize,
    /// Consecutive failed probes (active or passive).
    pub failures: AtomicU32,
    idle: Notify,
    checker: std::sync::Mutex<Option<tokio::task::AbortHandle>>,
    /// The metrics series of its service, environment and release, looked up once.
    pub series: std::sync::OnceLock<Arc<super::metrics::Series>>,
}

impl Backend {
    pub fn new(instance: &str, release: &str, addr: SocketAddr, check: HealthCheck) -> Self {
        Self {
            instance: instance.to_owned(),
            release: release.to_owned(),
            addr,
            check,
            healthy: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            failures: AtomicU32::new(0),
            idle: Notify::new(),
            checker: std::sync::Mutex::new(None),
            series: std::sync::OnceLock::new(),
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::SeqCst)
    }

    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Takes a request slot, unless the backend is draining. The slot is counted before the
    /// draining flag is read, so a drain that sees no request in flight sees every later one
    /// refused.
    pub fn enter(self: &Arc<Self>) -> Option<InFlight> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let guard = InFlight(self.clone());
        if self.is_draining() {
            None
        } else {
            Some(guard)
        }
    }

    /// Stops new requests and waits until those in flight are done, or `timeout` passes.
    /// Returns how many were still in flight at the end.
    pub async fn drain(&self, timeout: Duration) -> usize {
        self.draining.store(true, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.idle.notified();
            let n = self.in_flight();
            if n == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.in_flight();
            }
        }
    }

    pub fn set_checker(&self, handle: tokio::task::AbortHandle) {
        if let Some(old) = self
            .checker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(handle)
        {
            old.abort();
        }
    }

    pub fn stop_checker(&self) {
        if let Some(h) = self
            .checker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            h.abort();
        }
    }
}

/// A request slot on a backend; freed when dropped (when the response body is done).
#[derive(Debug)]
pub struct InFlight(Arc<Backend>);

impl InFlight {
    pub fn backend(&self) -> &Arc<Backend> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// The backends of one service in one environment.
#[derive(Debug)]
pub struct Pool {
    pub service: String,
    pub env: String,
    backends: std::sync::RwLock<Arc<Vec<Arc<Backend>>>>,
    next: AtomicUsize,
}

impl Pool {
    pub fn new(service: &str, env: &str) -> Self {
        Self {
            service: service.to_owned(),
            env: env.to_owned(),
            backends: std::sync::RwLock::new(Arc::new(Vec::new())),
            next: AtomicUsize::new(0),
        }
    }

    pub fn backends(&self) -> Arc<Vec<Arc<Backend>>> {
        self.backends
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn add(&self, backend: Arc<Backend>) {
        let mut guard = self.backends.write().unwrap_or_else(|p| p.into_inner());
        let mut list: Vec<Arc<Backend>> = guard
            .iter()
            .filter(|b| b.instance != backend.instance)
            .cloned()
            .collect();
        list.push(backend);
        *guard = Arc::new(list);
    }

    pub fn remove(&self, instance: &str) -> Option<Arc<Backend>> {
        let mut guard = self.backends.write().unwrap_or_else(|p| p.into_inner());
        let found = guard.iter().find(|b| b.instance == instance).cloned();
        if found.is_some() {
            *guard = Arc::new(
                guard
                    .iter()
                    .filter(|b| b.instance != instance)
                    .cloned()
                    .collect(),
            );
        }
        found
    }

    pub fn get(&self, instance: &str) -> Option<Arc<Backend>> {
        self.backends()
            .iter()
            .find(|b| b.instance == instance)
            .cloned()
    }

    /// A healthy, not draining backend, round robin, skipping `exclude` (a backend that just
    /// failed this request); holds a request slot on it.
    pub fn pick(&self, exclude: Option<&str>) -> Option<InFlight> {
        let backends = self.backends();
        let n = backends.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            let b = &backends[(start + i) % n];
            if !b.is_healthy() || exclude == Some(b.instance.as_str()) {
                continue;
            }
            if let Some(slot) = b.enter() {
                return Some(slot);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(id: &str) -> Arc<Backend> {
        let check = HealthCheck {
            path: None,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
        };
        Arc::new(Backend::new(
            id,
            "r1",
            "127.0.0.1:1".parse().unwrap(),
            check,
        ))
    }

    #[test]
    fn picks_only_healthy_backends_round_robin() {
        let pool = Pool::new("svc", "prod");
        let (a, b, c) = (backend("a"), backend("b"), backend("c"));
        a.set_healthy(true);
        b.set_healthy(true);
        for x in [&a, &b, &c] {
            pool.add(x.clone());
        }
        let picked: Vec<String> = (0..4)
            .map(|_| pool.pick(None).unwrap().backend().instance.clone())
            .collect();
        assert!(picked.iter().all(|p| p != "c"));
        assert!(picked.contains(&"a".to_owned()) && picked.contains(&"b".to_owned()));
        assert_eq!(pool.pick(Some("a")).unwrap().backend().instance, "b");
    }

    #[tokio::test]
    async fn drain_waits_for_in_flight_requests_and_refuses_new_ones() {
        let pool = Pool::new("svc", "prod");
        let a = backend("a");
        a.set_healthy(true);
        pool.add(a.clone());
        let slot = pool.pick(None).unwrap();
        let drainer = {
            let a = a.clone();
            tokio::spawn(async move { a.drain(Duration::from_secs(5)).await })
        };
        tokio::task::yield_now().await;
        assert!(
            pool.pick(None).is_none(),
            "a draining backend takes no new request"
        );
        assert!(!drainer.is_finished());
        drop(slot);
        assert_eq!(drainer.await.unwrap(), 0);
    }

    #[tokio::test]
    async fn drain_gives_up_after_its_timeout() {
        let a = backend("a");
        a.set_healthy(true);
        let _slot = a.enter().unwrap();
        assert_eq!(a.drain(Duration::from_millis(50)).await, 1);
    }
}
