//! Traces across hops (W3C Trace Context): the router takes a valid `traceparent` or starts a
//! trace, records a span for its hop (service, release, instance, status, duration, caller) and
//! passes the trace on with its own span as the parent. Spans leave the request path into a
//! bounded buffer (dropped and counted when it is full, never waited for) that the platform
//! writes out in batches.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Room for spans waiting to be written.
const QUEUE: usize = 65_536;

/// A `traceparent`'s parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: String,
    pub parent_id: Option<String>,
    pub flags: String,
}

fn hex_of(len: usize, s: &str) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A trace id as `faas trace show` takes it: 32 lowercase hex digits, not all zero.
pub fn is_trace_id(s: &str) -> bool {
    is_trace_id_shape(s) && s.bytes().any(|b| b != b'0')
}

/// 32 lowercase hex digits: what `GET /v1/traces/{id}` accepts (all zeros is no trace).
pub fn is_trace_id_shape(s: &str) -> bool {
    hex_of(32, s)
}

/// Reads a `traceparent` (`00-<trace>-<parent>-<flags>`); None when it is not a valid one.
pub fn parse(header: &str) -> Option<TraceContext> {
    let mut parts = header.trim().split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version == "ff" || !hex_of(2, version) || !hex_of(2, flags) {
        return None;
    }
    // Version 00 has exactly four parts; later versions may add some.
    if version == "00" && parts.next().is_some() {
        return None;
    }
    if !is_trace_id(trace) || !hex_of(16, parent) || parent.bytes().all(|b| b == b'0') {
        return None;
    }
    Some(TraceContext {
        trace_id: trace.to_owned(),
        parent_id: Some(parent.to_owned()),
        flags: flags.to_owned(),
    })
}

fn random_trace_id() -> String {
    use rand::Rng;
    hex::encode(rand::rng().random::<[u8; 16]>())
}

/// The incoming trace, or a new one (sampled).
pub fn continue_or_start(header: Option<&str>) -> TraceContext {
    header.and_then(parse).unwrap_or_else(|| TraceContext {
        trace_id: random_trace_id(),
        parent_id: None,
        flags: "01".into(),
    })
}

pub fn new_span_id() -> String {
    use rand::Rng;
    hex::encode(rand::rng().random::<[u8; 8]>())
}

/// One hop through the router.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Span {
    pub trace_id: String,
    pub span_id: String,
    pub parent_id: Option<String>,
    pub service: String,
    pub env: String,
    pub release: String,
    pub instance: String,
    pub caller: Option<String>,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub start_us: i64,
    pub duration_us: i64,
}

/// What a hop's span is made of, gathered as the request goes.
pub struct Hop<'a> {
    pub trace: &'a Option<(TraceContext, String)>,
    pub service: &'a str,
    pub env: &'a str,
    pub caller: Option<&'a str>,
    pub method: &'a str,
    pub path: &'a str,
    pub start_us: i64,
    pub started: std::time::Instant,
}

/// Where the router's spans wait to be written: a buffer the writer empties every 200 ms (no
/// wake-up per span: the request path only pushes), bounded (dropped and counted when full).
pub struct Spans {
    buffer: Mutex<Vec<Span>>,
    pub dropped: AtomicU64,
    /// Whether spans are recorded and `traceparent` handled at all.
    pub enabled: bool,
}

impl Spans {
    pub fn new(enabled: bool) -> Self {
        Self {
            buffer: Mutex::new(Vec::with_capacity(4096)),
            dropped: AtomicU64::new(0),
            enabled,
        }
    }

    pub fn record(&self, span: Span) {
        let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        if buffer.len() >= QUEUE {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            buffer.push(span);
        }
    }

    /// Records a hop's span (when tracing is on).
    pub fn hop_done(&self, hop: &Hop<'_>, backend: Option<&super::pool::Backend>, status: u16) {
        let Some((ctx, span_id)) = hop.trace else {
            return;
        };
        self.record(Span {
            trace_id: ctx.trace_id.clone(),
            span_id: span_id.clone(),
            parent_id: ctx.parent_id.clone(),
            service: hop.service.to_owned(),
            env: hop.env.to_owned(),
            release: backend.map(|b| b.release.clone()).unwrap_or_default(),
            instance: backend.map(|b| b.instance.clone()).unwrap_or_default(),
            caller: hop.caller.map(str::to_owned),
            method: hop.method.to_owned(),
            path: hop.path.chars().take(200).collect(),
            status,
            start_us: hop.start_us,
            duration_us: hop.started.elapsed().as_micros() as i64,
        });
    }

    /// What waits to be written, taken out.
    pub fn take(&self) -> Vec<Span> {
        std::mem::take(&mut *self.buffer.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_are_read_by_the_w3c_rules() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let t = parse(good).unwrap();
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.parent_id.as_deref(), Some("00f067aa0ba902b7"));
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "garbage",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        let fresh = continue_or_start(Some("garbage"));
        assert!(is_trace_id(&fresh.trace_id) && fresh.parent_id.is_none());
        assert_eq!(new_span_id().len(), 16);
    }
}
