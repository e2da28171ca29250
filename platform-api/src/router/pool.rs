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

/// How an environment's requests are split between its releases.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    /// The release that takes the requests; `None`: every release (a rolling rollout mixes
    /// them).
    pub live: Option<String>,
    /// A release beside it and its percent of the requests (0: reachable only at the green
    /// preview host, as a blue-green set before its switch).
    pub canary: Option<(String, u8)>,
    /// A warm release that takes no requests: blue-green's previous set, kept for rollback.
    pub standby: Option<String>,
}

impl Split {
    /// `live` takes the requests, and `canary` its `weight` percent of them (0: it answers only
    /// at the green preview host).
    pub fn canary(live: &str, canary: &str, weight: u8) -> Self {
        Self {
            live: Some(live.to_owned()),
            canary: Some((canary.to_owned(), weight)),
            standby: None,
        }
    }

    /// Only `live` takes requests; `standby`, if any, stays warm without.
    pub fn live(live: &str, standby: Option<&str>) -> Self {
        Self {
            live: Some(live.to_owned()),
            canary: None,
            standby: standby.map(str::to_owned),
        }
    }

    /// The release the `-green` preview host serves: the new set.
    pub fn green(&self) -> Option<&str> {
        match (&self.canary, &self.standby) {
            (Some((c, _)), _) => Some(c),
            (None, Some(_)) => self.live.as_deref(),
            _ => None,
        }
    }

    /// The release the `-blue` preview host serves: the set the new one replaces.
    pub fn blue(&self) -> Option<&str> {
        match (&self.canary, &self.standby) {
            (Some(_), _) => self.live.as_deref(),
            (None, Some(s)) => Some(s),
            _ => None,
        }
    }
}

/// A request for a preview host whose set does not exist now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoPreviewSet;

/// Which set a host serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The environment's own host: the live set, and the canary's share.
    Main,
    /// `<svc>-<env>-green.<domain>`.
    Green,
    /// `<svc>-<env>-blue.<domain>`.
    Blue,
}

/// The bucket (0..100) of a client that carries a session: the same for every request of the
/// session, so its requests stay on one side while the weight only grows.
pub fn sticky_bucket(session: &str, canary_release: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    session.hash(&mut h);
    canary_release.hash(&mut h);
    h.finish() % 100
}

/// The backends of one service in one environment.
#[derive(Debug)]
pub struct Pool {
    pub service: String,
    pub env: String,
    backends: std::sync::RwLock<Arc<Vec<Arc<Backend>>>>,
    split: std::sync::RwLock<Arc<Split>>,
    /// Whether `split` is other than the default: without a split (most of the time) a request
    /// does not read it.
    split_active: AtomicBool,
    next: AtomicUsize,
    /// Requests without a session, counted to deal them out by weight.
    deck: std::sync::atomic::AtomicU64,
    /// Calls per caller (`service/env`, `-` from outside).
    calls: std::sync::RwLock<std::collections::HashMap<String, std::sync::atomic::AtomicU64>>,
}

impl Pool {
    /// Counts a call by `caller` (no allocation once the caller was seen).
    pub fn count_call(&self, caller: &str) {
        use std::sync::atomic::Ordering;
        if let Some(n) = self
            .calls
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(caller)
        {
            n.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.calls
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(caller.to_owned())
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The calls per caller so far.
    pub fn calls(&self) -> Vec<(String, u64)> {
        self.calls
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.load(std::sync::atomic::Ordering::Relaxed)))
            .collect()
    }

    pub fn new(service: &str, env: &str) -> Self {
        Self {
            service: service.to_owned(),
            env: env.to_owned(),
            backends: std::sync::RwLock::new(Arc::new(Vec::new())),
            split: std::sync::RwLock::new(Arc::new(Split::default())),
            split_active: AtomicBool::new(false),
            calls: Default::default(),
            next: AtomicUsize::new(0),
            deck: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Whether the requests are split between releases now.
    pub fn is_split(&self) -> bool {
        self.split_active.load(Ordering::Relaxed)
    }

    pub fn split(&self) -> Arc<Split> {
        self.split.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Changes the split at once: the next request is dealt by the new one.
    pub fn set_split(&self, split: Split) {
        let mut guard = self.split.write().unwrap_or_else(|p| p.into_inner());
        self.split_active
            .store(split != Split::default(), Ordering::SeqCst);
        *guard = Arc::new(split);
    }

    /// The bucket (0..100) of a request without a session. Each run of 100 requests is a
    /// shuffled deck: a weight of `w` sends exactly `w` of every 100 to the canary, in an order
    /// that changes from deck to deck.
    fn deal(&self) -> u64 {
        // Multipliers coprime to 100: `(a * i + b) % 100` visits 0..100 once for i in 0..100.
        const COPRIME: [u64; 8] = [1, 3, 7, 11, 13, 17, 19, 23];
        let n = self.deck.fetch_add(1, Ordering::Relaxed);
        let (deck, i) = (n / 100, n % 100);
        let mix = deck
            .wrapping_add(0x9E37_79B9_7F4A_7C15)
            .wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let mix = (mix ^ (mix >> 31)).wrapping_mul(0x94D0_49BB_1331_11EB);
        let a = COPRIME[(mix % COPRIME.len() as u64) as usize];
        let b = (mix >> 8) % 100;
        (a * i + b) % 100
    }

    /// The release a request for `target` goes to first, and the one to fall back to when the
    /// first has no healthy instance. `None` as the first: any release but a standby or an
    /// unweighted one.
    #[allow(clippy::type_complexity)]
    fn choose<'a>(
        &self,
        split: &'a Split,
        target: Target,
        session: Option<&str>,
    ) -> Result<(Option<&'a str>, Option<&'a str>), NoPreviewSet> {
        match target {
            Target::Green => split.green().map(|r| (Some(r), None)).ok_or(NoPreviewSet),
            Target::Blue => split.blue().map(|r| (Some(r), None)).ok_or(NoPreviewSet),
            Target::Main => match (&split.canary, split.live.as_deref()) {
                (Some((canary, weight)), Some(live)) if *weight > 0 => {
                    let bucket = match session {
                        Some(s) => sticky_bucket(s, canary),
                        None => self.deal(),
                    };
                    if bucket < u64::from(*weight) {
                        Ok((Some(canary), Some(live)))
                    } else {
                        Ok((Some(live), Some(canary)))
                    }
                }
                (_, live) => Ok((live, None)),
            },
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

    /// A healthy, not draining backend of the release the split deals this request to, round
    /// robin, skipping `exclude` (a backend that just failed this request); holds a request
    /// slot on it.
    pub fn pick_for(
        &self,
        exclude: Option<&str>,
        target: Target,
        session: Option<&str>,
    ) -> Result<Option<InFlight>, NoPreviewSet> {
        if target == Target::Main && !self.split_active.load(Ordering::Relaxed) {
            return Ok(self.pick_where(&self.backends(), exclude, |_| true));
        }
        let split = self.split();
        let (first, fallback) = self.choose(&split, target, session)?;
        let backends = self.backends();
        let unrouted = |release: &str| {
            split.standby.as_deref() == Some(release)
                || split.canary.as_ref().is_some_and(|(c, _)| c == release)
        };
        let slot = match first {
            Some(release) => self.pick_where(&backends, exclude, |b| b.release == release),
            None => self.pick_where(&backends, exclude, |b| !unrouted(&b.release)),
        };
        Ok(slot.or_else(|| {
            fallback
                .and_then(|release| self.pick_where(&backends, exclude, |b| b.release == release))
        }))
    }

    /// `pick_for` the environment's own host, without a session.
    pub fn pick(&self, exclude: Option<&str>) -> Option<InFlight> {
        self.pick_for(exclude, Target::Main, None).ok().flatten()
    }

    fn pick_where(
        &self,
        backends: &[Arc<Backend>],
        exclude: Option<&str>,
        matches: impl Fn(&Backend) -> bool,
    ) -> Option<InFlight> {
        let n = backends.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            let b = &backends[(start + i) % n];
            if !b.is_healthy() || exclude == Some(b.instance.as_str()) || !matches(b) {
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

    /// An unhealthy backend until told otherwise.
    fn backend(id: &str) -> Arc<Backend> {
        let b = backend_of(id, "r1");
        b.set_healthy(false);
        b
    }

    fn backend_of(id: &str, release: &str) -> Arc<Backend> {
        let check = HealthCheck {
            path: None,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
        };
        let b = Arc::new(Backend::new(
            id,
            release,
            "127.0.0.1:1".parse().unwrap(),
            check,
        ));
        b.set_healthy(true);
        b
    }

    fn share_of(
        pool: &Pool,
        release: &str,
        n: usize,
        session: impl Fn(usize) -> Option<String>,
    ) -> usize {
        (0..n)
            .filter(|i| {
                let s = session(*i);
                pool.pick_for(None, Target::Main, s.as_deref())
                    .unwrap()
                    .unwrap()
                    .backend()
                    .release
                    == release
            })
            .count()
    }

    #[test]
    fn weights_deal_exact_shares_and_sessions_stick() {
        let pool = Pool::new("svc", "prod");
        for (id, rel) in [("a", "old"), ("b", "old"), ("c", "new")] {
            pool.add(backend_of(id, rel));
        }
        for weight in [1u8, 10, 33, 50, 90] {
            pool.set_split(Split::canary("old", "new", weight));
            // Every run of 100 requests without a session gives the canary exactly its weight.
            assert_eq!(
                share_of(&pool, "new", 1000, |_| None),
                usize::from(weight) * 10
            );
        }
        // With a session: the same side every time, and roughly the weight over many sessions.
        let session = |i: usize| Some(format!("session-{i}"));
        let first = share_of(&pool, "new", 2000, session);
        assert!((1700..=1900).contains(&first), "{first} of 2000 at 90%");
        for i in 0..50 {
            let s = format!("session-{i}");
            let sides: std::collections::HashSet<String> = (0..20)
                .map(|_| {
                    pool.pick_for(None, Target::Main, Some(&s))
                        .unwrap()
                        .unwrap()
                        .backend()
                        .release
                        .clone()
                })
                .collect();
            assert_eq!(sides.len(), 1, "session {s} moved between sets");
        }
        // A session on the canary at 10% is still on it at 50%.
        pool.set_split(Split::canary("old", "new", 10));
        let on_canary: Vec<String> = (0..500)
            .map(|i| format!("s{i}"))
            .filter(|s| {
                pool.pick_for(None, Target::Main, Some(s))
                    .unwrap()
                    .unwrap()
                    .backend()
                    .release
                    == "new"
            })
            .collect();
        pool.set_split(Split::canary("old", "new", 50));
        assert!(on_canary.iter().all(|s| {
            pool.pick_for(None, Target::Main, Some(s))
                .unwrap()
                .unwrap()
                .backend()
                .release
                == "new"
        }));
    }

    #[test]
    fn previews_standby_and_fallback() {
        let pool = Pool::new("svc", "prod");
        let (a, b) = (backend_of("a", "blue"), backend_of("b", "green"));
        pool.add(a.clone());
        pool.add(b.clone());
        // Before any split, every release serves.
        assert!(pool.pick_for(None, Target::Green, None).is_err());
        // A blue-green set before its switch: weight 0, only at the green host.
        pool.set_split(Split::canary("blue", "green", 0));
        assert_eq!(share_of(&pool, "blue", 100, |_| None), 100);
        let green = pool.pick_for(None, Target::Green, None).unwrap().unwrap();
        assert_eq!(green.backend().release, "green");
        let blue = pool.pick_for(None, Target::Blue, None).unwrap().unwrap();
        assert_eq!(blue.backend().release, "blue");
        // After the switch the previous set is warm but takes nothing from the main host.
        pool.set_split(Split::live("green", Some("blue")));
        assert_eq!(share_of(&pool, "green", 100, |_| None), 100);
        assert_eq!(
            pool.pick_for(None, Target::Blue, None)
                .unwrap()
                .unwrap()
                .backend()
                .release,
            "blue"
        );
        // A weighted canary without a healthy instance: the live set answers.
        pool.set_split(Split::canary("blue", "green", 50));
        b.set_healthy(false);
        assert_eq!(share_of(&pool, "blue", 100, |_| None), 100);
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
