//! A service's dependencies at deploy: each other service's address, injected as `<NAME>_URL`
//! for the environment of the same name (or the dependency's `fallback`), and the host names
//! the instances resolve to the router on their own network, where the router tells who calls.

use std::net::IpAddr;

use faas_spec::Manifest;

use crate::Platform;

/// One dependency, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub service: String,
    /// The dependency's environment that is called.
    pub env: String,
    pub host: String,
    /// `BILLING_URL`.
    pub var: String,
    pub url: String,
}

/// `billing-api` → `BILLING_API_URL`.
pub fn var_name(service: &str) -> String {
    format!("{}_URL", service.to_ascii_uppercase().replace('-', "_"))
}

/// Every dependency of `m` deployed to `env`, or why one cannot be called.
pub fn resolve(p: &Platform, env: &str, m: &Manifest) -> Result<Vec<Resolved>, String> {
    let mut out = Vec::new();
    for d in &m.dependencies {
        let name = d.service.as_str();
        if p.store.service(name).map_err(|e| e.to_string())?.is_none() {
            return Err(format!(
                "dependency `{name}` is not a service on this platform: create and deploy it first, or remove it (faas service dependency remove {name})"
            ));
        }
        let served: Vec<String> = p
            .store
            .environments(name)
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|(_, current)| current.is_some())
            .map(|(e, _)| e)
            .collect();
        let used = if served.iter().any(|e| e == env) {
            env.to_owned()
        } else if let Some(f) = d.fallback.as_ref().map(|f| f.as_str().to_owned())
            && served.contains(&f)
        {
            f
        } else {
            let fallback = match &d.fallback {
                Some(f) => format!(" nor its fallback `{f}`"),
                None => String::new(),
            };
            return Err(format!(
                "dependency `{name}` serves no environment `{env}`{fallback} (it serves: {}); deploy it there, or set `fallback = \"prod\"` on it in app.toml",
                if served.is_empty() {
                    "none".to_owned()
                } else {
                    served.join(", ")
                }
            ));
        };
        let host = p.router.host_for(name, &used);
        let url = p.url_of_host(&host);
        out.push(Resolved {
            service: name.to_owned(),
            env: used,
            var: var_name(name),
            host,
            url,
        });
    }
    Ok(out)
}

/// Variables (`BILLING_URL`, its URL) and host entries (a dependency's host, the router's
/// address on the instances' network).
pub type InstanceEnv = (Vec<(String, String)>, Vec<(String, IpAddr)>);

/// The variables and host entries an instance of `m` in `env` gets for its dependencies.
pub fn instance_env(p: &Platform, env: &str, m: &Manifest) -> Result<InstanceEnv, String> {
    let resolved = resolve(p, env, m)?;
    let vars = resolved
        .iter()
        .map(|r| (r.var.clone(), r.url.clone()))
        .collect();
    let hosts = match p.router.internal() {
        Some(addr) => resolved.into_iter().map(|r| (r.host, addr.ip())).collect(),
        None => Vec::new(),
    };
    Ok((vars, hosts))
}

/// Serves the router on the instances' network too (the gateway of the platform's Docker
/// network, on the router's port): the instances call their dependencies there, and the router
/// tells each caller by its address. Waits for the engine; gives up where there is no such
/// network (another runtime).
pub async fn listen_on_network(
    p: std::sync::Arc<Platform>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut waiting = tokio::time::interval(std::time::Duration::from_secs(2));
    let ip = loop {
        waiting.tick().await;
        if *stop.borrow() {
            return;
        }
        if let Some(ip) = p.runtime.gateway().await {
            break ip;
        }
        if p.runtime.status().available {
            tracing::info!(
                "the runtime has no network of the platform's own: dependencies are called through the router's address only"
            );
            return;
        }
    };
    let addr = std::net::SocketAddr::new(ip, p.config.router.port());
    match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => {
            p.router.set_internal(addr);
            tracing::info!(%addr, "the router takes the instances' calls on their network");
            p.router
                .clone()
                .serve(listener, stop, p.config.shutdown_drain)
                .await;
        }
        Err(e) => tracing::warn!(
            "cannot listen on {addr} for the instances' calls ({e}): their dependencies' URLs will not answer"
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn variable_names_are_shell_names() {
        assert_eq!(super::var_name("billing"), "BILLING_URL");
        assert_eq!(super::var_name("billing-api"), "BILLING_API_URL");
    }
}
