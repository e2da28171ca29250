//! `faas service build` and `faas service deploy`: build with the local Docker Engine, upload
//! when the platform does not share it, create the deployment, and follow it step by step.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Command;

use console::style;
use faas_spec::api::{
    CreateDeployment, CreateService, Deployment, DeploymentState, ImagesLoaded, Step,
};
use faas_spec::{ManifestFile, Strategy};

use crate::client::Client;
use crate::docker;
use crate::error::{CliError, CliResult};
use crate::printer::Printer;
use crate::project;
use crate::session;

/// `faas/<svc>:<git-sha>`, `-dirty` when the tree has changes; without git, a time stamp.
pub fn image_tag(service: &str, dir: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(sha) if !sha.is_empty() => {
            let dirty = git(&["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
            format!("faas/{service}:{sha}{}", if dirty { "-dirty" } else { "" })
        }
        _ => {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            format!("faas/{service}:build-{secs}")
        }
    }
}

pub struct Built {
    pub tag: String,
    #[allow(dead_code)] // kept for callers that pin the exact image
    pub id: String,
}

/// Builds the service's image as app.toml's `[build]` says (for `env`'s overrides).
pub fn build(
    printer: &Printer,
    manifest_path: &Path,
    env: Option<&str>,
    no_cache: bool,
    build_args: &[String],
) -> CliResult<Built> {
    let file = ManifestFile::load(manifest_path)?;
    let m = file
        .effective(env)
        .map_err(|r| CliError::Manifest(Box::new(r)))?;
    if let Some(image) = &m.build.image {
        return Err(CliError::usage(
            format!("app.toml names a prebuilt image ({image}): there is nothing to build"),
            "deploy it with `faas service deploy`, or remove `build.image` to build from the Dockerfile",
        ));
    }
    let dir = manifest_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let context = dir.join(m.build.context());
    let mut args: HashMap<String, String> = m.build.args.clone().into_iter().collect();
    args.extend(super::key_values::<HashMap<_, _>>(build_args, "build-arg")?);
    let tag = image_tag(m.name.as_str(), &dir);
    printer.status(
        "Building",
        format!(
            "{tag} from {}",
            project::display_path(&context.join(m.build.dockerfile()))
        ),
    );
    let rt = docker::runtime()?;
    let id = rt.block_on(async {
        let d = docker::connect().await?;
        docker::build(
            printer,
            &d,
            docker::BuildRequest {
                context: &context,
                dockerfile: m.build.dockerfile(),
                tag: &tag,
                args,
                target: m.build.target.as_deref(),
                no_cache,
            },
        )
        .await
    })?;
    printer.status("Built", format!("{tag} ({})", short(&id)));
    Ok(Built { tag, id })
}

fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

/// Sends the image to the platform unless it uses this very Docker Engine.
pub fn upload_if_needed(printer: &Printer, client: &Client, image: &str) -> CliResult<String> {
    let info = client.info()?;
    let rt = docker::runtime()?;
    let (local_engine, saved) = rt.block_on(async {
        let d = docker::connect().await?;
        let local = docker::engine_id(&d).await?;
        let forced = std::env::var(crate::env_vars::FAAS_UPLOAD).is_ok_and(|v| v == "always");
        if !forced && local.is_some() && local == info.docker.engine_id {
            return Ok::<_, CliError>((local, None));
        }
        let dir = std::env::temp_dir().join(format!("faas-upload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| CliError::failed(e.to_string(), None))?;
        let file = dir.join("image.tar");
        let (len, sha) = docker::save(&d, image, &file).await?;
        Ok((local, Some((dir, file, len, sha))))
    })?;
    let _ = local_engine;
    let Some((dir, file, len, sha)) = saved else {
        return Ok(image.to_owned());
    };
    printer.status(
        "Uploading",
        format!(
            "{image} ({:.1} MB) to {}",
            len as f64 / 1e6,
            client.context.url
        ),
    );
    let handle = std::fs::File::open(&file).map_err(|e| CliError::failed(e.to_string(), None))?;
    let loaded: CliResult<ImagesLoaded> =
        client.upload(&format!("/v1/images?sha256={sha}"), handle, len);
    let _ = std::fs::remove_dir_all(&dir);
    loaded?;
    Ok(image.to_owned())
}

/// Creates the service on the platform if it is not there yet.
fn ensure_service(printer: &Printer, client: &Client, name: &str, owner: &str) -> CliResult {
    match client.get::<faas_spec::api::Service>(&format!("/v1/services/{name}")) {
        Ok(_) => Ok(()),
        Err(CliError::Platform { status: 404, .. }) => {
            let _: faas_spec::api::Service = client.post(
                "/v1/services",
                &CreateService {
                    name: name.to_owned(),
                    owner: Some(owner.to_owned()),
                },
            )?;
            printer.status(
                "Created",
                format!("service `{name}` on {}", client.context.name),
            );
            Ok(())
        }
        Err(e) => Err(e),
    }
}

pub struct DeployOptions<'a> {
    pub env: &'a str,
    pub strategy: Option<Strategy>,
    /// A canary held at each step until promoted.
    pub manual: bool,
    pub image: Option<&'a str>,
    pub detach: bool,
    pub yes: bool,
    pub no_cache: bool,
    pub build_args: &'a [String],
}

pub fn deploy(
    printer: &Printer,
    manifest: Option<&Path>,
    context: Option<&str>,
    o: DeployOptions<'_>,
) -> CliResult {
    faas_spec::names::check_env_name(o.env)
        .map_err(|e| CliError::usage(e.message, format!("an environment name is {}", e.rule)))?;
    let path: PathBuf = project::manifest_path(manifest)?;
    let file = ManifestFile::load(&path)?;
    let effective = file
        .effective(Some(o.env))
        .map_err(|r| CliError::Manifest(Box::new(r)))?;
    let name = effective.name.as_str().to_owned();
    let strategy = o.strategy.unwrap_or(effective.deploy.strategy);
    if o.manual && strategy != Strategy::Canary {
        return Err(CliError::usage(
            format!("--manual holds the steps of a canary, but this deploy is `{strategy}`"),
            "add --strategy canary, or set `deploy.strategy = \"canary\"` in app.toml",
        ));
    }
    confirm_prod(o.env, &name, o.yes)?;

    let client = session::connect(printer, context)?;
    let image = match (o.image, &effective.build.image) {
        (Some(image), _) => image.to_owned(),
        (None, Some(image)) => image.clone(),
        (None, None) => build(printer, &path, Some(o.env), o.no_cache, o.build_args)?.tag,
    };
    let image = upload_if_needed(printer, &client, &image)?;
    ensure_service(printer, &client, &name, effective.owner.as_str())?;
    let source = std::fs::read_to_string(&path)
        .map_err(|e| CliError::failed(format!("cannot read {}: {e}", path.display()), None))?;
    let deployment: Deployment = client.post(
        &format!("/v1/services/{name}/deployments"),
        &CreateDeployment {
            env: o.env.to_owned(),
            image,
            manifest: source,
            strategy: o.strategy,
            manual: o.manual,
        },
    )?;
    printer.status(
        "Deploying",
        format!(
            "{name} v{} to {} ({}, deployment {})",
            deployment.version, o.env, deployment.strategy, deployment.id
        ),
    );
    if o.detach {
        printer.info(format!("follow it with `faas service status -e {}`", o.env));
        if deployment.strategy == Strategy::Canary {
            printer.info(format!(
                "watch the canary with `faas service canary status -e {}`",
                o.env
            ));
        }
        printer.result(&deployment.id);
        return Ok(());
    }
    follow(printer, &client, &deployment)
}

fn confirm_prod(env: &str, service: &str, yes: bool) -> CliResult {
    if env != "prod" || yes {
        return Ok(());
    }
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(CliError::usage(
            format!(
                "deploying {service} to prod needs a confirmation, and there is no terminal to ask on"
            ),
            "pass --yes",
        ));
    }
    let go = dialoguer::Confirm::new()
        .with_prompt(format!("Deploy {service} to prod?"))
        .default(false)
        .interact()
        .map_err(|e| CliError::failed(format!("the prompt failed: {e}"), None))?;
    if go {
        Ok(())
    } else {
        Err(CliError::failed("not deployed", None))
    }
}

fn print_step(printer: &Printer, step: &Step) {
    let kind = match step.kind.as_str() {
        "succeeded" | "instance-healthy" | "canary-passed" | "smoke-passed" | "switched"
        | "canary-complete" => style(format!("{:>18}", step.kind)).green(),
        "instance-failed" | "rolling-back" | "rolled-back" | "failed" | "analysis-failed"
        | "smoke-failed" | "aborted" => style(format!("{:>18}", step.kind)).red(),
        "canary-holding" | "canary-waiting" => style(format!("{:>18}", step.kind)).yellow(),
        _ => style(format!("{:>18}", step.kind)).cyan(),
    };
    printer.info(format!("{kind} {}", step.message));
    // A step's figures, once it has measured something (its start only sets the weights).
    if let Some(report) = step.canary.as_ref().filter(|r| r.window_s > 0.0) {
        for line in super::canary::figures_table(report) {
            printer.info(format!("{:>18} {line}", ""));
        }
    }
    if !step.logs.is_empty() {
        printer.info(format!(
            "{:>18} last {} lines of its output:",
            "",
            step.logs.len()
        ));
        for line in &step.logs {
            printer.info(format!("{:>18} │ {line}", ""));
        }
    }
}

/// Shows each step as it happens; exit 0 when the deployment succeeds (the URL on stdout), 1
/// with the reason when it fails or rolls back.
pub fn follow(printer: &Printer, client: &Client, deployment: &Deployment) -> CliResult {
    let mut last: Option<Step> = None;
    let path = format!(
        "/v1/services/{}/deployments/{}/events",
        deployment.service, deployment.id
    );
    // A canary's figures so far redraw one line on a terminal; elsewhere the steps that judge
    // carry them.
    let term = console::Term::stderr();
    let live = term.is_term() && !printer.quiet;
    let mut progress_shown = false;
    client.stream(&path, |step: Step| {
        if step.kind == "canary-progress" {
            if live {
                // One line, never wrapped, so that the next one replaces it.
                let width = usize::from(term.size().1).max(40) - 1;
                let line = format!(
                    "{} {}",
                    style(format!("{:>18}", "measuring")).dim(),
                    step.message
                );
                let _ = term.clear_line();
                let _ = term.write_str(&console::truncate_str(&line, width, "…"));
                progress_shown = true;
            }
            return true;
        }
        if progress_shown {
            let _ = term.clear_line();
            progress_shown = false;
        }
        print_step(printer, &step);
        let done = step.state.is_terminal();
        last = Some(step);
        !done
    })?;
    let state = last
        .as_ref()
        .map(|s| s.state)
        .unwrap_or(DeploymentState::Unknown);
    match state {
        DeploymentState::Succeeded => {
            printer.status(
                "Deployed",
                format!(
                    "{} v{} to {}",
                    deployment.service, deployment.version, deployment.env
                ),
            );
            printer.result(&deployment.url);
            if let Some(form) = crate::reach::host_header_form(&deployment.url, &client.context) {
                printer.info(format!(
                    "(curl and browsers open that URL; programs whose resolver asks DNS for the name, as Python's and Go's do, reach it as: {form})"
                ));
            }
            Ok(())
        }
        _ => {
            let d: Deployment = client.get(&format!(
                "/v1/services/{}/deployments/{}",
                deployment.service, deployment.id
            ))?;
            Err(CliError::failed(
                format!(
                    "the deployment of {} v{} to {} {}: {}",
                    d.service,
                    d.version,
                    d.env,
                    if d.state == DeploymentState::RolledBack {
                        "was rolled back"
                    } else {
                        "failed"
                    },
                    d.reason.unwrap_or_else(|| "no reason given".into())
                ),
                Some("the failed instance's output is above".into()),
            ))
        }
    }
}
