//! Where each engine's server comes from: `managed`, a container the platform runs itself (one
//! per engine, its data in a named volume, adopted by name after a restart), or `external`, a
//! server the platform's admin names by an admin URL. [`Servers::ready`] hands back an admin
//! connection to a server that answers.

use std::collections::HashMap;
use std::time::Duration;

use faas_spec::Engine;
use serde::Deserialize;

use super::admin::Admin;
use crate::Platform;
use crate::runtime::ServerSpec;

/// A server named by the platform's admin.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ExternalServer {
    /// How the platform reaches it as its admin: `postgres://USER:PASSWORD@HOST:PORT`,
    /// `redis://USER:PASSWORD@HOST:PORT`, or RabbitMQ's management API
    /// `http://USER:PASSWORD@HOST:PORT`.
    pub admin_url: String,
    /// `HOST:PORT` services connect to, when not the admin URL's (always for RabbitMQ, whose
    /// admin URL is its management API; `HOST:5672` by default).
    pub service_addr: Option<String>,
}

/// The external servers, by engine; an engine without one is managed.
pub type ServersConfig = HashMap<Engine, ExternalServer>;

/// The default port services connect to.
pub fn service_port(engine: Engine) -> u16 {
    match engine {
        Engine::Postgresql => 5432,
        Engine::Redis => 6379,
        Engine::Rabbitmq => 5672,
        Engine::Mongodb => 27017,
    }
}

/// The major version of the managed server of `engine` (the image it runs).
pub fn managed_version(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgresql => "15",
        Engine::Redis => "7",
        Engine::Rabbitmq => "3",
        Engine::Mongodb => "",
    }
}

/// `host` and `port` of a URL's authority.
fn authority(url: &str) -> Option<(String, Option<u16>)> {
    let rest = url.split_once("://")?.1;
    let auth = rest.split(['/', '?']).next()?;
    let hostport = auth.rsplit_once('@').map_or(auth, |(_, h)| h);
    match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => {
            Some((h.to_owned(), p.parse().ok()))
        }
        _ => Some((hostport.to_owned(), None)),
    }
}

/// Checks an external server's settings; the error says which engine and what to give.
pub fn check_external(engine: Engine, server: &ExternalServer) -> anyhow::Result<()> {
    let want = match engine {
        Engine::Postgresql => &["postgres://", "postgresql://"][..],
        Engine::Redis => &["redis://"][..],
        Engine::Rabbitmq => &["http://", "https://"][..],
        Engine::Mongodb => anyhow::bail!(
            "this platform cannot provision MongoDB databases yet: leave `mongodb` out of the external servers"
        ),
    };
    if !want.iter().any(|w| server.admin_url.starts_with(w)) {
        anyhow::bail!(
            "the {} admin URL `{}` should start with {}",
            engine.as_str(),
            super::redact(&server.admin_url),
            want.join(" or ")
        );
    }
    if authority(&server.admin_url).is_none_or(|(h, _)| h.is_empty()) {
        anyhow::bail!(
            "the {} admin URL `{}` names no host",
            engine.as_str(),
            super::redact(&server.admin_url)
        );
    }
    if let Some(addr) = &server.service_addr {
        addr_parts(addr).ok_or_else(|| {
            anyhow::anyhow!(
                "the {} service address `{addr}` is not HOST:PORT",
                engine.as_str()
            )
        })?;
    }
    Ok(())
}

fn addr_parts(addr: &str) -> Option<(String, u16)> {
    let (h, p) = addr.rsplit_once(':')?;
    Some((h.to_owned(), p.parse().ok()?)).filter(|(h, _)| !h.is_empty())
}

/// The servers of every engine, as configured.
pub struct Servers {
    external: ServersConfig,
    /// One start of a managed server at a time per engine.
    starting: HashMap<Engine, tokio::sync::Mutex<()>>,
}

impl Servers {
    pub fn new(external: ServersConfig) -> Self {
        Self {
            external,
            starting: Engine::ALL
                .iter()
                .map(|e| (*e, tokio::sync::Mutex::new(())))
                .collect(),
        }
    }

    /// `managed` or `external`; None for an engine this platform has no provider for.
    pub fn provider(&self, engine: Engine) -> Option<&'static str> {
        match (engine, self.external.contains_key(&engine)) {
            (Engine::Mongodb, _) => None,
            (_, true) => Some("external"),
            (_, false) => Some("managed"),
        }
    }

    /// Where services reach `engine`'s server: the managed container's name on the
    /// platform's network, or the external server's address.
    pub fn service_addr(&self, p: &Platform, engine: Engine) -> (String, u16) {
        match self.external.get(&engine) {
            Some(server) => server
                .service_addr
                .as_deref()
                .and_then(addr_parts)
                .or_else(|| {
                    let (host, port) = authority(&server.admin_url)?;
                    let port = match engine {
                        Engine::Rabbitmq => None,
                        _ => port,
                    };
                    Some((host, port.unwrap_or(service_port(engine))))
                })
                .unwrap_or_else(|| ("localhost".into(), service_port(engine))),
            None => (container_name(p, engine), service_port(engine)),
        }
    }

    /// The managed server's container, where commands (psql, pg_dump, redis-cli) run.
    pub fn container(&self, p: &Platform, engine: Engine) -> Option<String> {
        (!self.external.contains_key(&engine)).then(|| container_name(p, engine))
    }

    /// An admin connection to `engine`'s server, starting the managed one first when needed
    /// (and waiting, up to a minute, until it takes connections).
    pub async fn ready(&self, p: &Platform, engine: Engine) -> Result<Admin, String> {
        if let Some(server) = self.external.get(&engine) {
            return Admin::connect(engine, &server.admin_url).await;
        }
        if self.provider(engine).is_none() {
            return Err(no_provider(engine));
        }
        let _one = self.starting[&engine].lock().await;
        let admin_password = admin_password(p, engine)?;
        let name = container_name(p, engine);
        let spec = managed_spec(engine, &name, &admin_password);
        let state = p.runtime.ensure_server(&spec).await.map_err(|e| {
            let hint = if matches!(e, crate::runtime::RuntimeError::NoSuchImage(_)) {
                format!(
                    " (the image {} is not on the platform's Docker Engine: `docker pull {}`, or `./install.sh --yes` seeds it where no registry answers)",
                    spec.image, spec.image
                )
            } else {
                String::new()
            };
            format!("cannot start the managed {} server: {e}{hint}", engine.as_str())
        })?;
        let addr = p.upstream_addr(&state, spec.port).ok_or_else(|| {
            format!(
                "the managed {} server's container has no address",
                engine.as_str()
            )
        })?;
        let url = match engine {
            Engine::Postgresql => format!("postgres://postgres:{admin_password}@{addr}/postgres"),
            Engine::Redis => format!("redis://admin:{admin_password}@{addr}"),
            Engine::Rabbitmq => format!("http://admin:{admin_password}@{addr}"),
            Engine::Mongodb => return Err(no_provider(engine)),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            match Admin::connect(engine, &url).await {
                Ok(admin) => return Ok(admin),
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    let logs = p.runtime.logs_tail(&name, 10).await.join("\n");
                    return Err(format!(
                        "the managed {} server did not take connections within 60 s: {e}\n{logs}",
                        engine.as_str()
                    ));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

/// Why a database of `engine` cannot be provisioned here, and what to do.
pub fn no_provider(engine: Engine) -> String {
    match engine {
        Engine::Mongodb => "this platform has no MongoDB server: no managed one can run here, \
             and it provisions databases only on PostgreSQL, Redis and RabbitMQ servers. \
             Remove the mongodb database from app.toml, or run it yourself and give the \
             service its URL as a secret (`faas service secrets set MONGODB_URL=…`)"
            .into(),
        other => format!("no provider for {}", other.as_str()),
    }
}

/// The managed server's container and volume name: `faas-<platform>-<engine>`.
pub fn container_name(p: &Platform, engine: Engine) -> String {
    let id = p.runtime.platform_id();
    format!("faas-{}-{}", &id[..id.len().min(12)], engine.as_str())
}

/// The managed server's admin password: made once, sealed in the store.
fn admin_password(p: &Platform, engine: Engine) -> Result<String, String> {
    let aad = format!("server:{}", engine.as_str());
    let (nonce, sealed) = p
        .store
        .server_secret(engine.as_str(), || p.sealer.seal(&aad, &super::password()))
        .map_err(|e| format!("cannot keep the {} admin password: {e}", engine.as_str()))?;
    p.sealer
        .open_value(&aad, &nonce, &sealed)
        .map_err(|e| e.to_string())
}

/// How the usual image of each engine is run: its environment contract, its volume, its port.
fn managed_spec<'a>(engine: Engine, name: &'a str, admin_password: &str) -> ServerSpec<'a> {
    let spec = |image, data_path, port, health: &[&str]| ServerSpec {
        name,
        engine: engine.as_str(),
        image,
        env: Vec::new(),
        cmd: None,
        volume: name,
        data_path,
        port,
        stop_signal: None,
        health: health.iter().map(|s| (*s).to_owned()).collect(),
    };
    match engine {
        Engine::Postgresql => ServerSpec {
            env: vec![("POSTGRES_PASSWORD".into(), admin_password.to_owned())],
            // A fast shutdown (the seeded image carries no STOPSIGNAL).
            stop_signal: Some("SIGINT"),
            ..spec(
                "postgres:15",
                "/var/lib/postgresql/data",
                5432,
                &["pg_isready", "-q", "-h", "127.0.0.1", "-U", "postgres"],
            )
        },
        Engine::Redis => {
            // Users live in an ACL file on the volume (written once: ACL SAVE keeps it since);
            // the admin's password is given as its SHA-256, never in clear.
            use sha2::Digest;
            let hash = hex::encode(sha2::Sha256::digest(admin_password.as_bytes()));
            let script = format!(
                "[ -f /data/users.acl ] || printf 'user default off\\nuser admin on #{hash} ~* &* +@all\\n' > /data/users.acl; \
                 printf 'aclfile /data/users.acl\\nappendonly yes\\nsave 60 1\\n' > /data/redis.conf; \
                 exec docker-entrypoint.sh /data/redis.conf"
            );
            ServerSpec {
                cmd: Some(vec!["sh".into(), "-c".into(), script]),
                ..spec("redis:7", "/data", 6379, &["redis-cli", "ping"])
            }
        }
        Engine::Rabbitmq | Engine::Mongodb => ServerSpec {
            env: vec![
                ("RABBITMQ_DEFAULT_USER".into(), "admin".into()),
                ("RABBITMQ_DEFAULT_PASS".into(), admin_password.to_owned()),
            ],
            ..spec(
                "rabbitmq:3-management",
                "/var/lib/rabbitmq",
                15672,
                &["rabbitmq-diagnostics", "-q", "ping"],
            )
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_settings_are_checked() {
        let ok = |engine, url: &str| {
            check_external(
                engine,
                &ExternalServer {
                    admin_url: url.into(),
                    service_addr: None,
                },
            )
        };
        ok(Engine::Postgresql, "postgres://postgres@127.0.0.1:55432").unwrap();
        ok(Engine::Redis, "redis://admin:x@127.0.0.1:6379").unwrap();
        ok(Engine::Rabbitmq, "http://guest:guest@127.0.0.1:15672").unwrap();
        let err = ok(Engine::Redis, "postgres://x:secret@h:1").unwrap_err();
        assert!(err.to_string().contains("redis://"), "{err}");
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(ok(Engine::Mongodb, "mongodb://h").is_err());
        assert_eq!(
            authority("postgres://u:p@db.example:6000/x"),
            Some(("db.example".into(), Some(6000)))
        );
        assert_eq!(authority("redis://h"), Some(("h".into(), None)));
    }
}
