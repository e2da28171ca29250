//! The router in-process against a tiny backend written on raw TCP: forwarding headers, request
//! ids, hop-by-hop headers, upgrades, 503 without a healthy instance, retry past a dead
//! instance, draining that waits for in-flight requests, and a graceful stop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use faas_platform::router::Router;
use faas_platform::router::pool::{Backend, HealthCheck};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A backend: `/_info` 200, `/headers` echoes the request head, `/slow` answers after 500 ms,
/// `/len` answers the body's length, and `Upgrade: echo` switches to echoing bytes.
async fn backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(serve_connection(stream));
        }
    });
    addr
}

async fn serve_connection(mut stream: TcpStream) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let lower = head.to_ascii_lowercase();
        let length: usize = lower
            .lines()
            .find_map(|l| {
                l.strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap_or(0))
            })
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let mut chunk = vec![0u8; 65536];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..head_end + length);
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
        if lower.contains("upgrade: echo") {
            let _ = stream.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n").await;
            let mut chunk = [0u8; 1024];
            while let Ok(n) = stream.read(&mut chunk).await {
                if n == 0 || stream.write_all(&chunk[..n]).await.is_err() {
                    return;
                }
            }
            return;
        }
        let body = match path.as_str() {
            "/headers" => head.clone(),
            "/slow" => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                "slow".to_owned()
            }
            "/len" => length.to_string(),
            _ => "ok".to_owned(),
        };
        let status = if path.starts_with("/nope") {
            "404 Not Found"
        } else {
            "200 OK"
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nX-Backend-Hop: 1\r\nConnection: keep-alive, x-backend-hop\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn check(path: &str) -> HealthCheck {
    HealthCheck {
        path: Some(path.into()),
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(500),
    }
}

struct Running {
    router: Arc<Router>,
    port: u16,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

async fn running_router() -> Running {
    let router = Router::new("test");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(router.clone().serve(listener, rx, Duration::from_secs(5)));
    Running {
        router,
        port,
        stop,
        task,
    }
}

async fn healthy(
    router: &Arc<Router>,
    service: &str,
    instance: &str,
    addr: SocketAddr,
) -> Arc<Backend> {
    let b = router.add_backend(
        service,
        "prod",
        Backend::new(instance, "rel-1", addr, check("/_info")),
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !b.is_healthy() {
        assert!(
            Instant::now() < deadline,
            "the backend never turned healthy"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    b
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test]
async fn requests_carry_forwarding_headers_and_a_request_id_and_lose_hop_headers() {
    let r = running_router().await;
    healthy(&r.router, "svc", "a", backend().await).await;
    let url = format!("http://127.0.0.1:{}/headers", r.port);

    let resp = client()
        .get(&url)
        .header("host", "svc.test:8080")
        .header("connection", "keep-alive, x-secret-hop")
        .header("x-secret-hop", "must not pass")
        .header("x-forwarded-for", "10.1.2.3")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(
        !resp.headers().contains_key("x-backend-hop"),
        "hop-by-hop response headers are stripped"
    );
    let seen = resp.text().await.unwrap().to_ascii_lowercase();
    assert!(
        seen.contains("x-forwarded-for: 10.1.2.3, 127.0.0.1"),
        "{seen}"
    );
    assert!(seen.contains("x-forwarded-proto: http"), "{seen}");
    assert!(seen.contains("x-forwarded-host: svc.test:8080"), "{seen}");
    assert!(seen.contains(&format!("x-request-id: {id}")), "{seen}");
    assert!(!seen.contains("x-secret-hop"), "{seen}");

    let resp = client()
        .get(&url)
        .header("host", "svc.test")
        .header("x-request-id", "given-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "given-42");
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("x-request-id: given-42")
    );
}

#[tokio::test]
async fn bodies_stream_through_both_ways() {
    let r = running_router().await;
    healthy(&r.router, "svc", "a", backend().await).await;
    let body = vec![b'x'; 5 * 1024 * 1024];
    let resp = client()
        .post(format!("http://127.0.0.1:{}/len", r.port))
        .header("host", "svc.test")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), (5 * 1024 * 1024).to_string());
}

#[tokio::test]
async fn an_upgrade_passes_through_and_bytes_flow_both_ways() {
    let r = running_router().await;
    healthy(&r.router, "svc", "a", backend().await).await;
    let mut s = TcpStream::connect(("127.0.0.1", r.port)).await.unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: svc.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut b = [0u8; 256];
        let n = s.read(&mut b).await.unwrap();
        assert!(n > 0, "closed before the 101");
        head.extend_from_slice(&b[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    for msg in [&b"ping"[..], b"pong again"] {
        s.write_all(msg).await.unwrap();
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(got, msg);
    }
}

#[tokio::test]
async fn without_a_healthy_instance_the_answer_is_a_503_json_and_an_unknown_host_404() {
    let r = running_router().await;
    r.router.add_backend(
        "sick",
        "prod",
        Backend::new("a", "rel-1", backend().await, check("/nope-404")),
    );
    let resp = client()
        .get(format!("http://127.0.0.1:{}/", r.port))
        .header("host", "sick.test")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "no-healthy-instance");
    let resp = client()
        .get(format!("http://127.0.0.1:{}/", r.port))
        .header("host", "other.test")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn a_dead_instance_is_skipped_and_ejected_without_failing_requests() {
    let r = running_router().await;
    healthy(&r.router, "svc", "good", backend().await).await;
    // An instance whose port refuses connections, taken for healthy (as just before it died).
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dead = r.router.add_backend(
        "svc",
        "prod",
        Backend::new("dead", "rel-1", dead_port, check("/_info")),
    );
    dead.set_healthy(true);
    for _ in 0..20 {
        let resp = client()
            .get(format!("http://127.0.0.1:{}/", r.port))
            .header("host", "svc.test")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    assert!(!dead.is_healthy(), "the dead instance was ejected");
}

#[tokio::test]
async fn draining_waits_for_the_request_in_flight_and_sends_no_new_one() {
    let r = running_router().await;
    let a = healthy(&r.router, "svc", "a", backend().await).await;
    let port = r.port;
    let slow = tokio::spawn(async move {
        client()
            .get(format!("http://127.0.0.1:{port}/slow"))
            .header("host", "svc.test")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.in_flight() == 0 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = Instant::now();
    let left = r
        .router
        .drain_and_remove("svc", "prod", "a", Duration::from_secs(5))
        .await;
    assert_eq!(left, 0);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the drain waited for the slow request"
    );
    assert_eq!(
        slow.await.unwrap(),
        "slow",
        "the request in flight finished"
    );
    let resp = client()
        .get(format!("http://127.0.0.1:{port}/"))
        .header("host", "svc.test")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503, "a drained instance gets no new request");
}

#[tokio::test]
async fn a_graceful_stop_lets_the_open_request_finish() {
    let r = running_router().await;
    let a = healthy(&r.router, "svc", "a", backend().await).await;
    let port = r.port;
    let slow = tokio::spawn(async move {
        client()
            .get(format!("http://127.0.0.1:{port}/slow"))
            .header("host", "svc.test")
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    while a.in_flight() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    r.stop.send(true).unwrap();
    assert_eq!(slow.await.unwrap().unwrap(), 200);
    tokio::time::timeout(Duration::from_secs(5), r.task)
        .await
        .unwrap()
        .unwrap();
    assert!(
        TcpStream::connect(("127.0.0.1", port)).await.is_err(),
        "no longer accepting"
    );
}
