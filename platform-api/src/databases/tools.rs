//! The engines' own tools, run as a service's login: a dump and its restore (pg_dump and
//! pg_restore; a snapshot of the environment's Redis keys), and an interactive client (psql,
//! redis-cli) prepared in the managed server's container. The password goes to the tool in its
//! environment (`PGPASSWORD`, `REDISCLI_AUTH`), never on a command line.

use faas_spec::Engine;
use faas_spec::api::databases::ConnectSession;

use super::admin::{Admin, Login};
use super::provision::{engine_of, logins};
use super::redis::prefix;
use crate::Platform;
use crate::store::DatabaseRow;

fn login(p: &Platform, row: &DatabaseRow) -> Result<Login, String> {
    logins(p, row)
        .map_err(|e| format!("cannot open the login of database {}: {e}", row.name))?
        .into_iter()
        .next()
        .ok_or_else(|| "no login".to_owned())
}

/// Runs a PostgreSQL tool as the database's login: in the managed server's container, or on
/// this host against an external server.
async fn pg_tool(
    p: &Platform,
    row: &DatabaseRow,
    tool: &str,
    args: &[&str],
    stdin: Option<Vec<u8>>,
) -> Result<Vec<u8>, String> {
    let (user, pw) = login(p, row)?;
    let env = vec![("PGPASSWORD".to_owned(), pw)];
    let container = p.databases.container(p, Engine::Postgresql);
    let (host, port) = match container {
        Some(_) => ("127.0.0.1".to_owned(), 5432),
        None => p.databases.service_addr(p, Engine::Postgresql),
    };
    let mut cmd: Vec<String> = [tool, "-h", &host, "-p", &port.to_string(), "-U", &user]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    cmd.extend(args.iter().map(|s| (*s).to_owned()));
    let (code, stdout, stderr) = match container {
        Some(container) => {
            let out = p
                .runtime
                .exec(&container, &cmd, &env, stdin)
                .await
                .map_err(|e| e.to_string())?;
            (out.code, out.stdout, out.stderr)
        }
        None => local(&cmd, &env, stdin).await?,
    };
    if code != 0 {
        return Err(format!(
            "{tool} failed (exit {code}): {}",
            String::from_utf8_lossy(&stderr).trim()
        ));
    }
    Ok(stdout)
}

/// Runs a command on this host (the PostgreSQL client tools of an external server).
async fn local(
    cmd: &[String],
    env: &[(String, String)],
    stdin: Option<Vec<u8>>,
) -> Result<(i64, Vec<u8>, Vec<u8>), String> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(&cmd[0])
        .args(&cmd[1..])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot run {} on the platform's host ({e}): install the PostgreSQL client tools there",
                cmd[0]
            )
        })?;
    let mut input = child.stdin.take();
    let feed = async move {
        if let (Some(pipe), Some(bytes)) = (input.as_mut(), stdin) {
            let _ = pipe.write_all(&bytes).await;
        }
        drop(input);
    };
    let (_, out) = tokio::join!(feed, child.wait_with_output());
    let out = out.map_err(|e| e.to_string())?;
    Ok((
        i64::from(out.status.code().unwrap_or(-1)),
        out.stdout,
        out.stderr,
    ))
}

/// A dump of the database: pg_dump's custom format, or a snapshot of the environment's Redis
/// keys.
pub async fn backup(p: &Platform, row: &DatabaseRow) -> Result<Vec<u8>, String> {
    match engine_of(row) {
        Engine::Postgresql => {
            pg_tool(
                p,
                row,
                "pg_dump",
                &["-Fc", "--no-owner", "--no-acl", &row.principal],
                None,
            )
            .await
        }
        Engine::Redis => match p.databases.ready(p, Engine::Redis).await? {
            Admin::Redis(a) => a
                .dump(&prefix(&row.service, &row.env))
                .await
                .map_err(|e| e.to_string()),
            _ => Err("not a Redis server".into()),
        },
        other => Err(format!(
            "faas cannot back up {} databases yet",
            other.as_str()
        )),
    }
}

/// Loads a dump made by [`backup`] (of this database or another of the same engine) into the
/// database, replacing what has the same name.
pub async fn restore(p: &Platform, row: &DatabaseRow, dump: Vec<u8>) -> Result<String, String> {
    match engine_of(row) {
        Engine::Postgresql => {
            if !dump.starts_with(b"PGDMP") {
                return Err(
                    "the file is not a PostgreSQL backup (made by `faas service db backup`)".into(),
                );
            }
            pg_tool(
                p,
                row,
                "pg_restore",
                &[
                    "--clean",
                    "--if-exists",
                    "--no-owner",
                    "--no-acl",
                    "--single-transaction",
                    "-d",
                    &row.principal,
                ],
                Some(dump),
            )
            .await?;
            Ok(format!("restored into database {}", row.name))
        }
        Engine::Redis => match p.databases.ready(p, Engine::Redis).await? {
            Admin::Redis(a) => {
                let n = a
                    .restore(&prefix(&row.service, &row.env), &dump)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(format!("restored {n} keys into database {}", row.name))
            }
            _ => Err("not a Redis server".into()),
        },
        other => Err(format!(
            "faas cannot restore {} databases yet",
            other.as_str()
        )),
    }
}

/// Prepares the engine's client in the managed server's container, logged in as the
/// database's login, with `args` after the connection's.
pub async fn connect(
    p: &Platform,
    row: &DatabaseRow,
    args: &[String],
    tty: bool,
) -> Result<ConnectSession, String> {
    let engine = engine_of(row);
    let container = p.databases.container(p, engine).ok_or_else(|| {
        let var = format!("{}_URL", row.name.to_ascii_uppercase().replace('-', "_"));
        format!(
            "database {} is on an external {} server: connect to it with your own client (its URL is the service's {var} variable)",
            row.name,
            engine.as_str(),
        )
    })?;
    let (user, pw) = login(p, row)?;
    let (mut command, env): (Vec<String>, Vec<(String, String)>) = match engine {
        Engine::Postgresql => (
            ["psql", "-h", "127.0.0.1", "-U", &user, "-d", &row.principal]
                .map(str::to_owned)
                .to_vec(),
            vec![("PGPASSWORD".into(), pw)],
        ),
        Engine::Redis => (
            ["redis-cli", "--user", &user, "--no-auth-warning"]
                .map(str::to_owned)
                .to_vec(),
            vec![("REDISCLI_AUTH".into(), pw)],
        ),
        other => {
            return Err(format!(
                "faas has no interactive client for {} yet",
                other.as_str()
            ));
        }
    };
    command.extend(args.iter().cloned());
    let exec = p
        .runtime
        .prepare_exec(&container, &command, &env, tty)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ConnectSession {
        container,
        exec,
        command,
    })
}
