//! A service's databases as the API shows them: never a password.

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// One database of a service's environment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DatabaseInfo {
    pub name: String,
    pub env: String,
    /// `postgresql`, `redis` or `rabbitmq`.
    pub engine: String,
    /// `managed` (a server the platform runs) or `external` (one its admin named).
    pub provider: String,
    /// `provisioning`, `ready`, or `detached` (no login opens it; its data is kept).
    pub state: String,
    /// The role and database, ACL user or vhost of this service's environment.
    pub principal: String,
    /// The login instances are given now.
    pub login: String,
    /// Where services reach its server, `HOST:PORT`.
    pub server: String,
    /// The variables it injects (`MAIN_URL`, `DATABASE_URL`, …) while app.toml declares it.
    pub variables: Vec<String>,
    /// A rotation is under way: the old login still opens until the environment's next
    /// deployment has succeeded.
    pub rotating: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// `POST …/databases/{name}/rotate`: the deployment that moves the environment to the new login.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Rotation {
    pub database: DatabaseInfo,
    pub deployment: String,
}

/// `POST …/databases/{name}/connect`: a session prepared in the managed server's container,
/// logged in as the service's user; the client starts and attaches to it on the engine.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ConnectSession {
    /// The container of the managed server.
    pub container: String,
    /// The engine's id of the prepared command.
    pub exec: String,
    /// The command prepared (without any password).
    pub command: Vec<String>,
}

/// `POST …/databases/{name}/connect`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ConnectRequest {
    /// Arguments given to the client after the connection's (`-c "SELECT 1"`, a Redis command).
    #[serde(default)]
    pub args: Vec<String>,
    /// Whether the client gets a terminal.
    #[serde(default)]
    pub tty: bool,
}
