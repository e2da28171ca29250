//! Service URLs that every program can open. The router serves `http://<svc>.localhost:7780`,
//! which browsers and curl resolve to loopback by themselves, but glibc's resolver (and so
//! Python, Go and most HTTP libraries on Linux) asks DNS for it and fails. Where the host of a
//! URL does not resolve here, a form that works everywhere is shown beside it.

use std::net::ToSocketAddrs;

use crate::config::Context;

/// `curl -H 'Host: <host>' http://<address>:<port>/…` for a URL whose host does not resolve on
/// this machine; None when it resolves (or is not a URL).
pub fn host_header_form(url: &str, context: &Context) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    let host = parsed.host_str()?.to_owned();
    let port = parsed.port_or_known_default()?;
    if resolves(&host, port) {
        return None;
    }
    Some(curl_form(&parsed, &host, &address_for(&host, context)?))
}

fn resolves(host: &str, port: u16) -> bool {
    (host, port)
        .to_socket_addrs()
        .is_ok_and(|mut addrs| addrs.next().is_some())
}

/// Where the router really is: loopback for `*.localhost` (RFC 6761) and the local platform,
/// otherwise the host the platform's API is reached at.
fn address_for(host: &str, context: &Context) -> Option<String> {
    if host == "localhost" || host.ends_with(".localhost") || context.local {
        return Some("127.0.0.1".to_owned());
    }
    let api = reqwest::Url::parse(&context.url).ok()?;
    api.host_str().map(str::to_owned)
}

fn curl_form(url: &reqwest::Url, host: &str, address: &str) -> String {
    let mut direct = url.clone();
    // An address always parses as a host.
    let _ = direct.set_host(Some(address));
    format!("curl -H 'Host: {host}' {direct}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> Context {
        Context {
            name: "local".into(),
            url: "http://127.0.0.1:7700".into(),
            local: true,
        }
    }

    #[test]
    fn an_unresolvable_localhost_name_gets_a_host_header_form() {
        let url = reqwest::Url::parse("http://demo.localhost:7780/").unwrap();
        assert_eq!(
            curl_form(&url, "demo.localhost", "127.0.0.1"),
            "curl -H 'Host: demo.localhost' http://127.0.0.1:7780/"
        );
        assert_eq!(
            address_for("demo.localhost", &local()).as_deref(),
            Some("127.0.0.1")
        );
    }

    #[test]
    fn a_resolving_host_needs_nothing_more() {
        assert_eq!(host_header_form("http://127.0.0.1:7780/", &local()), None);
        assert_eq!(host_header_form("not a url", &local()), None);
    }
}
