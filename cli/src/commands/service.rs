//! `faas service status|list|releases|rollback|delete`: reading and steering a deployed service.

use std::io::IsTerminal;
use std::path::Path;

use faas_spec::ManifestFile;
use faas_spec::api::{Deployment, Release, Rollback, Scale, Service};

use crate::error::{CliError, CliResult};
use crate::printer::Printer;
use crate::{project, session};

/// The service name: from app.toml (here or above), unless given.
pub fn service_name(manifest: Option<&Path>, explicit: Option<&str>) -> CliResult<String> {
    if let Some(name) = explicit {
        return Ok(name.to_owned());
    }
    let path = project::manifest_path(manifest)?;
    Ok(ManifestFile::load(&path)?.manifest.name.as_str().to_owned())
}

pub fn status(
    printer: &Printer,
    context: Option<&str>,
    name: &str,
    env: Option<&str>,
    json: bool,
) -> CliResult {
    let client = session::connect(printer, context)?;
    let mut service: Service = client.get(&format!("/v1/services/{name}"))?;
    if let Some(env) = env {
        service.environments.retain(|e| e.env == env);
        if service.environments.is_empty() {
            return Err(CliError::usage(
                format!("{name} has nothing in environment `{env}`"),
                format!("deploy it with `faas service deploy -e {env}`"),
            ));
        }
    }
    if json {
        printer.json(&service);
        return Ok(());
    }
    printer.result(format!("{} (owner {})", service.name, service.owner));
    if service.environments.is_empty() {
        printer.result("  not deployed yet");
    }
    let month = super::costs::month_so_far(&client, &service.owner, &service.name);
    for e in &service.environments {
        let release = e.release.as_ref().map_or("no release".to_owned(), |r| {
            format!("v{} ({})", r.version, short(&r.image))
        });
        printer.result(format!("  {:<10} {release:<24} {}", e.env, e.url));
        if let Some(month) = &month {
            let cost = month.get(&e.env).map_or("nothing yet", String::as_str);
            printer.result(format!(
                "  {:<10} this month so far: {cost} (accrued, not forecast)",
                ""
            ));
        }
        if let Some(d) = &e.deployment {
            printer.result(format!("  {:<10} deployment {d} under way", ""));
        }
        match e.canary_weight {
            Some(0) => printer.result(format!(
                "  {:<10} a blue-green set waits for its switch (no traffic yet)",
                ""
            )),
            Some(w) => printer.result(format!("  {:<10} the canary takes {w}% of requests", "")),
            None => {}
        }
        if let Some(until) = &e.standby_until {
            printer.result(format!(
                "  {:<10} the previous set stays warm until {until}: `faas service rollback -e {}` switches back",
                "", e.env
            ));
        }
        for c in &e.cron {
            if let Some(last) = c.last.as_ref().filter(|l| {
                matches!(
                    l.state.as_str(),
                    "failed" | "timed_out" | "oom_killed" | "lost" | "missed"
                )
            }) {
                printer.warn(format!(
                    "{} ({}): cron `{}` {}: {}",
                    service.name,
                    e.env,
                    c.name,
                    last.state,
                    super::cron::tick_line(last)
                ));
            }
        }
        for db in &e.databases {
            let rotating = if db.rotating { ", rotating" } else { "" };
            printer.result(format!(
                "  {:<10}   database {} ({}, {}): {}{rotating}",
                "", db.name, db.engine, db.provider, db.state
            ));
        }
        for i in &e.instances {
            // Health says it all, unless the instance is on its way in or out.
            let mut health = if i.healthy {
                "healthy".to_owned()
            } else {
                "unhealthy".to_owned()
            };
            if matches!(i.state.as_str(), "starting" | "draining") {
                health = format!("{health}, {}", i.state);
            }
            if let Some(role) = &i.role {
                health = format!("{health}, {role}");
            }
            printer.result(format!(
                "  {:<10}   {}  v{:<4} {:<20} {}",
                "",
                i.id,
                i.version,
                health,
                i.address.clone().unwrap_or_default()
            ));
            if let Some(pod) = &i.pod {
                let restarts = match pod.restarts {
                    0 => String::new(),
                    1 => ", 1 restart".to_owned(),
                    n => format!(", {n} restarts"),
                };
                printer.result(format!(
                    "  {:<10}     pod {} on node {}, {}{restarts}",
                    "",
                    pod.name,
                    pod.node.as_deref().unwrap_or("(none yet)"),
                    if pod.ready { "ready" } else { "not ready" },
                ));
            }
        }
    }
    Ok(())
}

fn short(id: &str) -> &str {
    // `sha256:…`, or a registry's `REPO@sha256:…`.
    let hex = id.rsplit_once("sha256:").map_or(id, |(_, hex)| hex);
    &hex[..hex.len().min(12)]
}

pub fn list(printer: &Printer, context: Option<&str>, json: bool) -> CliResult {
    let client = session::connect(printer, context)?;
    let services: Vec<Service> = client.get("/v1/services")?;
    if json {
        printer.json(&services);
        return Ok(());
    }
    if services.is_empty() {
        printer.info("no services yet: `faas launch` creates and deploys one");
    }
    for s in services {
        let envs: Vec<String> = s
            .environments
            .iter()
            .map(|e| {
                format!(
                    "{}={}",
                    e.env,
                    e.release
                        .as_ref()
                        .map_or("-".into(), |r| format!("v{}", r.version))
                )
            })
            .collect();
        printer.result(format!("{:<24} {:<28} {}", s.name, s.owner, envs.join(" ")));
    }
    Ok(())
}

pub fn releases(
    printer: &Printer,
    context: Option<&str>,
    name: &str,
    env: &str,
    json: bool,
) -> CliResult {
    let client = session::connect(printer, context)?;
    let releases: Vec<Release> = client.get(&format!("/v1/services/{name}/releases?env={env}"))?;
    if json {
        printer.json(&releases);
        return Ok(());
    }
    if releases.is_empty() {
        printer.info(format!("{name} has no release in {env}"));
    }
    let costs = client
        .get::<Service>(&format!("/v1/services/{name}"))
        .ok()
        .and_then(|s| super::costs::per_release(&client, &s.owner, name));
    for r in releases {
        let mark = if r.current { "*" } else { " " };
        let cost = costs.as_ref().map_or(String::new(), |c| {
            format!("  cost {}", c.get(&r.id).map_or("0", String::as_str))
        });
        printer.result(format!(
            "{mark} v{:<5} {}  {:<32} {}{cost}",
            r.version,
            short(&r.image),
            r.image_ref,
            r.created_at
        ));
    }
    Ok(())
}

pub fn rollback(
    printer: &Printer,
    context: Option<&str>,
    name: &str,
    env: &str,
    to: Option<u64>,
) -> CliResult {
    let client = session::connect(printer, context)?;
    let d: Deployment = client.post(
        &format!("/v1/services/{name}/rollback"),
        &Rollback {
            env: env.to_owned(),
            release: to,
        },
    )?;
    printer.status("Rolling back", format!("{name} in {env} to v{}", d.version));
    super::deploy::follow(printer, &client, &d)
}

pub fn delete(
    printer: &Printer,
    context: Option<&str>,
    name: &str,
    yes: bool,
    purge: bool,
) -> CliResult {
    if !yes {
        if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
            return Err(CliError::usage(
                format!("deleting {name} needs a confirmation, and there is no terminal to ask on"),
                "pass --yes",
            ));
        }
        let typed: String = dialoguer::Input::new()
            .with_prompt(if purge {
                format!("This removes {name} everywhere, and its databases with their data. Type its name to confirm")
            } else {
                format!("This removes {name} everywhere (its databases are kept). Type its name to confirm")
            })
            .allow_empty(true)
            .interact_text()
            .map_err(|e| CliError::failed(format!("the prompt failed: {e}"), None))?;
        if typed.trim() != name {
            return Err(CliError::failed("not deleted", None));
        }
    }
    let client = session::connect(printer, context)?;
    client.delete(&format!("/v1/services/{name}?confirm={name}&purge={purge}"))?;
    printer.status("Deleted", format!("{name} on {}", client.context.name));
    if !purge {
        printer.info(format!(
            "its databases were detached and their data kept; a service named {name} gets them back, `faas service delete --purge` drops them"
        ));
    }
    Ok(())
}

pub fn scale(
    printer: &Printer,
    context: Option<&str>,
    name: &str,
    env: &str,
    replicas: u32,
) -> CliResult {
    let client = session::connect(printer, context)?;
    let d: Deployment = client.post(
        &format!("/v1/services/{name}/scale"),
        &Scale {
            env: env.to_owned(),
            replicas,
        },
    )?;
    printer.status(
        "Scaling",
        format!(
            "{name} in {env} to {replicas} instance{}",
            if replicas == 1 { "" } else { "s" }
        ),
    );
    super::deploy::follow(printer, &client, &d)?;
    printer.info("this lasts until the next release; set `scale.replicas` in app.toml to keep it");
    Ok(())
}

/// The git branch of the directory, as an environment name.
fn branch_env(dir: &Path) -> CliResult<(String, String)> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--abbrev-ref", "HEAD"])
        .current_dir(dir)
        .output()
        .map_err(|e| {
            CliError::failed(format!("cannot run git: {e}"), Some("install git".into()))
        })?;
    let branch = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || branch.is_empty() {
        return Err(CliError::usage(
            "this service is not in a git repository with a commit",
            "`faas service push` deploys the current branch: `git init`, commit, then push",
        ));
    }
    if branch == "HEAD" {
        return Err(CliError::usage(
            "HEAD is detached: there is no branch to name a preview after",
            "check out a branch",
        ));
    }
    let env = faas_spec::names::to_dns_label(&branch, 20);
    if env.is_empty() {
        return Err(CliError::usage(
            format!("the branch `{branch}` makes no environment name"),
            "use a branch name with letters",
        ));
    }
    Ok((branch, env))
}

pub fn push(
    printer: &Printer,
    manifest: Option<&Path>,
    context: Option<&str>,
    delete: bool,
) -> CliResult {
    let path = project::manifest_path(manifest)?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let (branch, env) = branch_env(&dir)?;
    let name = ManifestFile::load(&path)?.manifest.name.as_str().to_owned();
    if delete {
        let client = session::connect(printer, context)?;
        // A preview's databases go with it.
        client.delete(&format!(
            "/v1/services/{name}/environments/{env}?purge=true"
        ))?;
        printer.status(
            "Removed",
            format!("the preview {env} of {name} (branch {branch}), with its databases"),
        );
        return Ok(());
    }
    printer.status(
        "Pushing",
        format!("branch {branch} to the preview environment {env}"),
    );
    super::deploy::deploy(
        printer,
        Some(&path),
        context,
        super::deploy::DeployOptions {
            env: &env,
            strategy: None,
            manual: false,
            image: None,
            detach: false,
            yes: false,
            no_cache: false,
            build_args: &[],
        },
    )
}
