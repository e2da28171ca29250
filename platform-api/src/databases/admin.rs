//! One admin connection to a server of any engine, and what the platform does with a
//! principal there whatever the engine: make it with the logins that may open it, revoke one
//! login after a rotation, detach, destroy.
//!
//! Rotation gives the new password to a second login while the old one still opens: a second
//! role (PostgreSQL) or user (RabbitMQ) named by [`rotation_login`], or a second password on
//! the same ACL user (Redis). Once the environment runs on the new one, the old is revoked.

use faas_spec::Engine;

use super::postgres::PgAdmin;
use super::rabbitmq::RabbitAdmin;
use super::redis::RedisAdmin;

pub enum Admin {
    Postgres(PgAdmin),
    Redis(RedisAdmin),
    Rabbit(RabbitAdmin),
}

/// A login: user name and password.
pub type Login = (String, String);

/// The other login of a principal: `g_…` for `f_…` (same length, never a principal's name).
pub fn rotation_login(principal: &str) -> String {
    format!("g{}", &principal[1..])
}

/// The login a rotation moves to from `current`.
pub fn next_login(engine: Engine, principal: &str, current: &str) -> String {
    match engine {
        Engine::Redis => principal.to_owned(),
        _ if current == principal => rotation_login(principal),
        _ => principal.to_owned(),
    }
}

impl Admin {
    pub async fn connect(engine: Engine, admin_url: &str) -> Result<Admin, String> {
        match engine {
            Engine::Postgresql => PgAdmin::connect(admin_url)
                .await
                .map(Admin::Postgres)
                .map_err(|e| e.to_string()),
            Engine::Redis => RedisAdmin::connect(admin_url)
                .await
                .map(Admin::Redis)
                .map_err(|e| e.to_string()),
            Engine::Rabbitmq => RabbitAdmin::connect(admin_url)
                .await
                .map(Admin::Rabbit)
                .map_err(|e| e.to_string()),
            Engine::Mongodb => Err(super::servers::no_provider(engine)),
        }
    }

    /// Makes `principal` (of `service` in `env`) with exactly `logins` able to open it (the
    /// current one first; the old one too while a rotation is under way). Converges.
    pub async fn ensure(
        &self,
        principal: &str,
        prefix: &str,
        logins: &[Login],
    ) -> Result<(), String> {
        let own = logins.iter().find(|(user, _)| user == principal);
        let others = logins.iter().filter(|(user, _)| user != principal);
        match self {
            Admin::Postgres(a) => {
                // The principal's own password is the one of its login, else one nobody knows.
                let fresh = super::password();
                let pw = own.map_or(fresh.as_str(), |(_, pw)| pw.as_str());
                a.ensure(principal, pw).await.map_err(|e| e.to_string())?;
                for (user, pw) in others {
                    a.ensure_member(user, principal, pw)
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
            Admin::Redis(a) => {
                let passwords: Vec<&str> = logins.iter().map(|(_, pw)| pw.as_str()).collect();
                a.ensure_all(principal, prefix, &passwords)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Admin::Rabbit(a) => {
                let fresh = super::password();
                let pw = own.map_or(fresh.as_str(), |(_, pw)| pw.as_str());
                a.ensure(principal, pw).await.map_err(|e| e.to_string())?;
                for (user, pw) in others {
                    a.ensure_user(user, principal, pw)
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        Ok(())
    }

    /// The old login of a rotation no longer opens.
    pub async fn revoke(&self, principal: &str, old: &Login) -> Result<(), String> {
        let (user, pw) = old;
        match self {
            Admin::Postgres(a) => a.lock_out(user).await.map_err(|e| e.to_string()),
            Admin::Redis(a) => a
                .remove_password(principal, pw)
                .await
                .map_err(|e| e.to_string()),
            Admin::Rabbit(a) if user == principal => a
                .rotate(user, &super::password())
                .await
                .map_err(|e| e.to_string()),
            Admin::Rabbit(a) => a.delete_user(user).await.map_err(|e| e.to_string()),
        }
    }

    /// No login opens it any more and its sessions end; the data stays.
    pub async fn detach(&self, principal: &str) -> Result<(), String> {
        let other = rotation_login(principal);
        match self {
            Admin::Postgres(a) => {
                a.detach(&other).await.map_err(|e| e.to_string())?;
                a.detach(principal).await.map_err(|e| e.to_string())
            }
            Admin::Redis(a) => a.detach(principal).await.map_err(|e| e.to_string()),
            Admin::Rabbit(a) => {
                a.delete_user(&other).await.map_err(|e| e.to_string())?;
                a.detach(principal).await.map_err(|e| e.to_string())
            }
        }
    }

    /// The data and every login are gone.
    pub async fn destroy(&self, principal: &str, prefix: &str) -> Result<(), String> {
        let other = rotation_login(principal);
        match self {
            Admin::Postgres(a) => {
                a.detach(&other).await.map_err(|e| e.to_string())?;
                a.destroy(principal).await.map_err(|e| e.to_string())?;
                a.drop_role(&other).await.map_err(|e| e.to_string())
            }
            Admin::Redis(a) => a
                .destroy(principal, prefix)
                .await
                .map_err(|e| e.to_string()),
            Admin::Rabbit(a) => {
                a.delete_user(&other).await.map_err(|e| e.to_string())?;
                a.destroy(principal).await.map_err(|e| e.to_string())
            }
        }
    }
}

/// The URL a service is given for `login` to `principal` on a server at `host:port`.
pub fn service_url(
    engine: Engine,
    login: &Login,
    principal: &str,
    host: &str,
    port: u16,
) -> String {
    let (user, pw) = login;
    match engine {
        Engine::Postgresql => super::postgres::login_url(user, principal, pw, host, port),
        Engine::Redis => super::redis::url(user, pw, host, port),
        Engine::Rabbitmq => format!("amqp://{user}:{pw}@{host}:{port}/{principal}"),
        Engine::Mongodb => format!("mongodb://{user}:{pw}@{host}:{port}/{principal}"),
    }
}
