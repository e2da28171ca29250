//! RabbitMQ: for each principal a vhost of its own and a user (no tags, so no management UI)
//! with every permission there and none elsewhere, made through the management HTTP API. The
//! password reaches the server only salted and hashed as RabbitMQ stores it
//! (`rabbit_password_hashing_sha256`), so it is on no command line and in no log.

use base64::Engine;
use sha2::Digest;

#[derive(Debug, thiserror::Error)]
pub enum RabbitError {
    #[error("the RabbitMQ management API at {server} does not answer its admin: {why}")]
    Unreachable { server: String, why: String },
    #[error("RabbitMQ refused `{what}`: {status} {why}")]
    Refused {
        what: String,
        status: u16,
        why: String,
    },
}

pub type Result<T> = std::result::Result<T, RabbitError>;

/// What exists of a principal: its user and its vhost, and whether the user may use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Present {
    pub user: bool,
    pub vhost: bool,
    pub permitted: bool,
}

/// How RabbitMQ keeps a password: base64 of a 4-byte salt and the SHA-256 of the salt and the
/// password.
fn password_hash(password: &str) -> String {
    use rand::Rng;
    let salt: [u8; 4] = rand::rng().random();
    let mut h = sha2::Sha256::new();
    h.update(salt);
    h.update(password.as_bytes());
    let mut out = salt.to_vec();
    out.extend_from_slice(&h.finalize());
    base64::engine::general_purpose::STANDARD.encode(out)
}

/// The URL a service connects with (AMQP 0-9-1; its vhost is its principal).
pub fn url(principal: &str, password: &str, host: &str, port: u16) -> String {
    format!("amqp://{principal}:{password}@{host}:{port}/{principal}")
}

/// An admin of one server, through its management API.
pub struct RabbitAdmin {
    http: reqwest::Client,
    /// `http://HOST:PORT`, without the credentials.
    base: String,
    user: String,
    password: String,
}

impl RabbitAdmin {
    /// The management API as its admin: `http://USER:PASSWORD@HOST:PORT`. Checks it answers.
    pub async fn connect(admin_url: &str) -> Result<Self> {
        let server = super::redact(admin_url);
        let unreachable = |why: String| RabbitError::Unreachable {
            server: server.clone(),
            why,
        };
        let parsed = reqwest::Url::parse(admin_url).map_err(|e| unreachable(e.to_string()))?;
        let user = parsed.username().to_owned();
        let password = parsed.password().unwrap_or("").to_owned();
        let base = format!(
            "{}://{}:{}",
            parsed.scheme(),
            parsed.host_str().unwrap_or("localhost"),
            parsed.port_or_known_default().unwrap_or(15672)
        );
        let admin = Self {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .map_err(|e| unreachable(e.to_string()))?,
            base,
            user,
            password,
        };
        admin
            .call(reqwest::Method::GET, "/api/overview", None)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(admin)
    }

    /// One call; 404 is None, any other failure an error.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Option<serde_json::Value>> {
        let what = format!("{method} {path}");
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .basic_auth(&self.user, Some(&self.password));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| RabbitError::Refused {
            what: what.clone(),
            status: 0,
            why: e.to_string(),
        })?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(RabbitError::Refused {
                what,
                status: status.as_u16(),
                why: text,
            });
        }
        Ok(Some(
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        ))
    }

    /// What exists of `principal`.
    pub async fn present(&self, principal: &str) -> Result<Present> {
        let get = |path: String| async move { self.call(reqwest::Method::GET, &path, None).await };
        Ok(Present {
            user: get(format!("/api/users/{principal}")).await?.is_some(),
            vhost: get(format!("/api/vhosts/{principal}")).await?.is_some(),
            permitted: get(format!("/api/permissions/{principal}/{principal}"))
                .await?
                .is_some(),
        })
    }

    /// Makes `principal` a vhost and a user that logs in with `password` and may do anything
    /// there, nothing elsewhere. Each call sets the whole of it, so it converges.
    pub async fn ensure(&self, principal: &str, password: &str) -> Result<()> {
        self.call(
            reqwest::Method::PUT,
            &format!("/api/vhosts/{principal}"),
            Some(serde_json::json!({ "description": "faas: one service's environment" })),
        )
        .await?;
        self.ensure_user(principal, principal, password).await
    }

    /// Makes `user` log in with `password` and do anything in `vhost`, nothing elsewhere
    /// (rotation's second user of a vhost).
    pub async fn ensure_user(&self, user: &str, vhost: &str, password: &str) -> Result<()> {
        self.rotate(user, password).await?;
        // A node that has just booted may not yet see a vhost or user it has just made
        // (`vhost_or_user_not_found`): asked again, up to 10 s.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let set = self
                .call(
                    reqwest::Method::PUT,
                    &format!("/api/permissions/{vhost}/{user}"),
                    Some(serde_json::json!({ "configure": ".*", "write": ".*", "read": ".*" })),
                )
                .await;
            match set {
                Err(RabbitError::Refused { why, .. })
                    if why.contains("not_found") && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                other => return other.map(|_| ()),
            }
        }
    }

    /// Deletes a user (a missing one is fine); the vhost stays.
    pub async fn delete_user(&self, user: &str) -> Result<()> {
        self.call(reqwest::Method::DELETE, &format!("/api/users/{user}"), None)
            .await?;
        Ok(())
    }

    /// A new password for `principal` (connections already open go on).
    pub async fn rotate(&self, principal: &str, password: &str) -> Result<()> {
        self.call(
            reqwest::Method::PUT,
            &format!("/api/users/{principal}"),
            Some(serde_json::json!({
                "password_hash": password_hash(password),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": "",
            })),
        )
        .await?;
        Ok(())
    }

    /// Detaches: the user loses its permission on the vhost and its connections are closed; the
    /// vhost's queues and messages stay.
    pub async fn detach(&self, principal: &str) -> Result<()> {
        self.call(
            reqwest::Method::DELETE,
            &format!("/api/permissions/{principal}/{principal}"),
            None,
        )
        .await?;
        let connections = self
            .call(
                reqwest::Method::GET,
                &format!("/api/vhosts/{principal}/connections"),
                None,
            )
            .await?
            .unwrap_or_default();
        for c in connections.as_array().into_iter().flatten() {
            if c["user"] == principal
                && let Some(name) = c["name"].as_str()
            {
                let name: String = url_escape(name);
                self.call(
                    reqwest::Method::DELETE,
                    &format!("/api/connections/{name}"),
                    None,
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Deletes the vhost (every queue and message in it) and the user.
    pub async fn destroy(&self, principal: &str) -> Result<()> {
        self.call(
            reqwest::Method::DELETE,
            &format!("/api/vhosts/{principal}"),
            None,
        )
        .await?;
        self.call(
            reqwest::Method::DELETE,
            &format!("/api/users/{principal}"),
            None,
        )
        .await?;
        Ok(())
    }
}

/// Percent-encodes everything but unreserved characters (connection names hold spaces,
/// arrows and colons).
fn url_escape(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_sent_salted_and_hashed() {
        let h = password_hash("hunter2");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&h)
            .unwrap_or_default();
        assert_eq!(raw.len(), 4 + 32);
        let mut d = sha2::Sha256::new();
        d.update(&raw[..4]);
        d.update(b"hunter2");
        assert_eq!(&raw[4..], d.finalize().as_slice());
        assert_ne!(password_hash("hunter2"), h, "a new salt each time");
        assert_eq!(url_escape("127.0.0.1:5 -> x"), "127.0.0.1%3A5%20-%3E%20x");
    }
}
