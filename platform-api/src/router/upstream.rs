//! What the proxy does to one request on its way up and back: its id, its host and session,
//! the headers an upstream gets, the router's own error answers, and a body that holds the
//! in-flight count until it is read.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::ProxyBody;
use super::pool::InFlight;

/// Headers that describe one hop, not the request: never forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// A unique request id without a system call: a random prefix drawn once per process, and a
/// counter.
pub(super) fn new_request_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(rand::random::<u64>);
    format!(
        "{prefix:016x}{:016x}",
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub(super) fn request_host<B>(req: &Request<B>) -> String {
    let raw = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()))
        .unwrap_or_default();
    host_without_port(&raw)
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

pub(super) fn host_without_port(raw: &str) -> &str {
    if raw.starts_with('[') {
        // [::1]:7780
        return raw.find(']').map_or(raw, |end| &raw[..=end]);
    }
    match raw.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => raw,
    }
}

/// The value of the request's session cookie, which keeps a client on one side of a canary: the
/// first cookie whose name says session (`session`, `sessionid`, `PHPSESSID`, `connect.sid`…).
pub(super) fn session_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| {
            let name = name.to_ascii_lowercase();
            !value.is_empty()
                && (name.contains("sess")
                    || name == "sid"
                    || name.ends_with(".sid")
                    || name.ends_with("_sid"))
        })
        .map(|(_, value)| value.to_owned())
}

pub(super) fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
}

pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers named in Connection are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

pub(super) fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

pub(super) fn build_upstream(
    parts: &http::request::Parts,
    addr: SocketAddr,
    host: &str,
    peer: SocketAddr,
    request_id: &str,
    upgrade: bool,
    body: ProxyBody,
) -> Result<Request<ProxyBody>, String> {
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let uri: Uri = format!("http://{addr}{path}")
        .parse()
        .map_err(|e| format!("bad request target: {e}"))?;
    let mut headers = parts.headers.clone();
    let upgrade_value = headers.get(header::UPGRADE).cloned();
    strip_hop_by_hop(&mut headers);
    if upgrade && let Some(v) = upgrade_value {
        headers.insert(header::UPGRADE, v);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prior) => format!("{prior}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    headers.insert("x-forwarded-for", header_value(&forwarded_for));
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    if let Some(original) = parts.headers.get(header::HOST) {
        headers.insert("x-forwarded-host", original.clone());
    } else {
        headers.insert("x-forwarded-host", header_value(host));
    }
    headers.insert("x-request-id", header_value(request_id));
    let mut request = Request::builder()
        .method(parts.method.clone())
        .uri(uri)
        .version(http::Version::HTTP_11);
    if let Some(h) = request.headers_mut() {
        *h = headers;
    }
    request.body(body).map_err(|e| e.to_string())
}

pub(super) fn json_error(
    status: StatusCode,
    code: &str,
    message: &str,
    request_id: &str,
) -> Response<ProxyBody> {
    let body = serde_json::json!({ "error": { "code": code, "message": message, "request_id": request_id } });
    let mut response = Response::new(
        Full::new(Bytes::from(body.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert("x-request-id", header_value(request_id));
    response
}

/// A response body that holds its instance's request slot until the body is done, so that
/// draining waits for streamed responses too.
pub(super) struct GuardedBody {
    pub(super) inner: Incoming,
    pub(super) _slot: InFlight,
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
