//! The databases of a service's environment across its deployments: made ready before any
//! instance of a release starts (the `database-ready` step), handed to instances as URLs, the
//! old login of a rotation revoked and the databases no longer declared detached once a
//! deployment has succeeded, destroyed only when asked by name.
//!
//! A database is recorded, with its login's password sealed, before anything is made on its
//! server; making it converges; so a crash at any point leaves either nothing or a record that
//! the next attempt completes with the same login.

use faas_spec::{Engine, Manifest};

use super::admin::{Admin, Login, service_url};
use super::{principal, redis::prefix};
use crate::Platform;
use crate::store::{DatabaseRow, SealedLogin};

/// What the sealed password of `user` for database `name` is bound to.
fn aad(service: &str, env: &str, name: &str, user: &str) -> String {
    format!("database:{service}:{env}:{name}:{user}")
}

/// A login with its password sealed, as a row keeps it.
pub fn seal_login(
    p: &Platform,
    service: &str,
    env: &str,
    name: &str,
    login: &Login,
) -> anyhow::Result<SealedLogin> {
    let (user, pw) = login;
    let (nonce, sealed) = p.sealer.seal(&aad(service, env, name, user), pw)?;
    Ok((user.clone(), nonce, sealed))
}

fn open_login(p: &Platform, row: &DatabaseRow, login: &SealedLogin) -> anyhow::Result<Login> {
    let (user, nonce, sealed) = login;
    let pw = p
        .sealer
        .open_value(&aad(&row.service, &row.env, &row.name, user), nonce, sealed)?;
    Ok((user.clone(), pw))
}

pub fn engine_of(row: &DatabaseRow) -> Engine {
    Engine::ALL
        .into_iter()
        .find(|e| e.as_str() == row.engine)
        .unwrap_or(Engine::Mongodb)
}

/// The logins that open a database now: the current one, and the old one while a rotation is
/// under way.
pub fn logins(p: &Platform, row: &DatabaseRow) -> anyhow::Result<Vec<Login>> {
    let mut out = vec![open_login(p, row, &row.login)?];
    if let Some(old) = &row.old_login {
        out.push(open_login(p, row, old)?);
    }
    Ok(out)
}

/// Why a release's databases cannot be provisioned on this platform (an engine without a
/// provider), or None.
pub fn unprovisionable(p: &Platform, manifest: &Manifest) -> Option<String> {
    manifest.databases.iter().find_map(|(name, db)| {
        let provider = p.databases.provider(db.engine);
        if provider.is_none() {
            return Some(format!(
                "database {name}: {}",
                super::servers::no_provider(db.engine)
            ));
        }
        // A managed server runs one major version per engine; an external one is the admin's.
        let runs = super::servers::managed_version(db.engine);
        match (&db.version, provider) {
            (Some(wanted), Some("managed")) if wanted.split('.').next() != Some(runs) => Some(format!(
                "database {name}: app.toml asks for {} {wanted}, but this platform's managed {} server is version {runs}; remove `version` from [databases.{name}] or set it to \"{runs}\"",
                db.engine.as_str(),
                db.engine.as_str()
            )),
            _ => None,
        }
    })
}

/// Secrets of the environment that have the name of a variable a database injects.
pub fn clashes(p: &Platform, service: &str, env: &str, manifest: &Manifest) -> Vec<String> {
    let secrets: Vec<String> = p
        .store
        .secret_names(service, env)
        .unwrap_or_default()
        .into_iter()
        .map(|(n, _, _)| n)
        .collect();
    manifest
        .database_env_names()
        .into_iter()
        .filter(|(var, _)| secrets.contains(var))
        .map(|(var, name)| format!("{var} (database {name})"))
        .collect()
}

/// Makes every database `manifest` declares ready for `service` in `env`, telling `note` of
/// each step (`database-provisioning` once recorded, `database-ready` once made).
pub async fn provision(
    p: &Platform,
    service: &str,
    env: &str,
    manifest: &Manifest,
    note: impl Fn(&str, &str),
) -> Result<(), String> {
    // One admin connection per engine for the whole step.
    let mut admins: std::collections::HashMap<Engine, Admin> = Default::default();
    for (name, db) in &manifest.databases {
        let engine = db.engine;
        let provider = p
            .databases
            .provider(engine)
            .ok_or_else(|| super::servers::no_provider(engine))?;
        let principal = principal(service, env, name.as_str());
        let existing = p
            .store
            .database(service, env, name.as_str())
            .map_err(|e| e.to_string())?;
        let row = match existing {
            Some(row) => row,
            None => {
                let login = (principal.clone(), super::password());
                let sealed = seal_login(p, service, env, name.as_str(), &login)
                    .map_err(|e| e.to_string())?;
                let row = p
                    .store
                    .record_database(&DatabaseRow {
                        service: service.to_owned(),
                        env: env.to_owned(),
                        name: name.to_string(),
                        engine: engine.as_str().to_owned(),
                        provider: provider.to_owned(),
                        principal: principal.clone(),
                        login: sealed,
                        old_login: None,
                        state: "provisioning".into(),
                        created_at: String::new(),
                        updated_at: String::new(),
                    })
                    .map_err(|e| e.to_string())?;
                note(
                    "database-provisioning",
                    &format!(
                        "database {name} ({}, {provider}) recorded as {principal}",
                        engine.as_str()
                    ),
                );
                row
            }
        };
        // Made again even when ready: it converges, and the server may have been reset.
        let admin = match admins.entry(engine) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(p.databases.ready(p, engine).await?)
            }
        };
        let logins = logins(p, &row)
            .map_err(|e| format!("cannot open the login of database {name}: {e}"))?;
        admin
            .ensure(&row.principal, &prefix(service, env), &logins)
            .await
            .map_err(|e| {
                format!(
                    "cannot provision database {name} ({}): {e}",
                    engine.as_str()
                )
            })?;
        let was = row.state.clone();
        p.store
            .set_database_state(service, env, name.as_str(), "ready")
            .map_err(|e| e.to_string())?;
        let how = if was == "detached" {
            "attached again, its data as it was"
        } else {
            "ready"
        };
        note(
            "database-ready",
            &format!("database {name} ({}, {provider}) {how}", engine.as_str()),
        );
    }
    Ok(())
}

/// The variables `manifest`'s databases inject into an instance of `service` in `env`.
pub fn instance_env(
    p: &Platform,
    service: &str,
    env: &str,
    manifest: &Manifest,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (var, name) in manifest.database_env_names() {
        let row = p
            .store
            .database(service, env, name.as_str())?
            .ok_or_else(|| anyhow::anyhow!("database {name} is not provisioned"))?;
        let engine = engine_of(&row);
        let login = open_login(p, &row, &row.login)?;
        let (host, port) = p.databases.service_addr(p, engine);
        out.push((
            var,
            service_url(engine, &login, &row.principal, &host, port),
        ));
    }
    Ok(out)
}

/// After a deployment of `manifest` succeeded: the old login of any rotation is revoked (no
/// instance uses it any more), and the databases `manifest` no longer declares are detached
/// (their logins revoked, their data kept). What fails is left for the next deployment.
pub async fn settle(
    p: &Platform,
    service: &str,
    env: &str,
    manifest: &Manifest,
    note: impl Fn(&str, &str),
) {
    let rows = p.store.databases(service, Some(env)).unwrap_or_default();
    for row in rows {
        let declared = manifest.databases.keys().any(|n| n.as_str() == row.name);
        let engine = engine_of(&row);
        if let Some(old) = &row.old_login
            && declared
        {
            let done = async {
                let admin = p.databases.ready(p, engine).await?;
                let old = open_login(p, &row, old).map_err(|e| e.to_string())?;
                admin.revoke(&row.principal, &old).await
            }
            .await;
            match done {
                Ok(()) => {
                    let _ = p.store.forget_old_login(service, env, &row.name);
                    note(
                        "database-rotated",
                        &format!("database {}: the old login no longer opens it", row.name),
                    );
                }
                Err(e) => {
                    tracing::warn!(service, env, database = %row.name, "cannot revoke the old login yet: {e}")
                }
            }
        }
        if !declared && row.state != "detached" {
            match detach(p, &row).await {
                Ok(()) => note(
                    "database-detached",
                    &format!(
                        "database {} is no longer in app.toml: detached, its data kept (`faas service db destroy {} -e {env} --confirm {}` drops it)",
                        row.name, row.name, row.name
                    ),
                ),
                Err(e) => {
                    tracing::warn!(service, env, database = %row.name, "cannot detach it yet: {e}")
                }
            }
        }
    }
}

/// Revokes every login of a database; its data stays.
pub async fn detach(p: &Platform, row: &DatabaseRow) -> Result<(), String> {
    let admin: Admin = p.databases.ready(p, engine_of(row)).await?;
    admin.detach(&row.principal).await?;
    p.store
        .set_database_state(&row.service, &row.env, &row.name, "detached")
        .map_err(|e| e.to_string())
}

/// Drops a database with its data, and forgets it.
pub async fn destroy(p: &Platform, row: &DatabaseRow) -> Result<(), String> {
    let admin = p.databases.ready(p, engine_of(row)).await?;
    admin
        .destroy(&row.principal, &prefix(&row.service, &row.env))
        .await?;
    p.store
        .remove_database(&row.service, &row.env, &row.name)
        .map_err(|e| e.to_string())
}
