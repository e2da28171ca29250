//! `faas service create [NAME] [--template T] [--kind K] [--owner EMAIL] [--dir D] [--no-input]`
//!
//! Prompts (on a terminal) for what the flags did not say; without a terminal a missing answer
//! is an error that names its flag. The service is rendered into a hidden directory beside the
//! target and renamed into place, so a failure leaves nothing behind.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::owner;

use dialoguer::theme::ColorfulTheme;
use dialoguer::{Input, Select};
use faas_spec::names::{self, NameError};

use crate::cli::{CreateArgs, KindArg};
use crate::error::{CliError, CliResult};
use crate::printer::Printer;
use crate::project::display_path;
use crate::templates::{self, DEFAULT_TEMPLATE, Template, Vars};

/// Answers to the questions `create` asks, however they were given.
struct Answers {
    name: String,
    template: Template,
    owner: String,
    kind: KindArg,
    description: String,
    dir: PathBuf,
}

pub fn run(printer: &Printer, context: Option<&str>, args: CreateArgs) -> CliResult {
    run_for_launch(printer, context, args, true).map(drop)
}

/// Creates the service; returns its directory. `print_dir` puts the directory on stdout (the
/// result of `create`; `launch` prints the URL instead).
pub fn run_for_launch(
    printer: &Printer,
    context: Option<&str>,
    args: CreateArgs,
    print_dir: bool,
) -> CliResult<PathBuf> {
    let interactive =
        !args.no_input && std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let answers = ask(printer, context, &args, interactive)?;
    create(printer, &answers, print_dir)?;
    Ok(answers.dir)
}

fn invalid(e: NameError, what: &str) -> CliError {
    CliError::usage(e.message, format!("{what} is {}", e.rule))
}

fn prompt_error(e: dialoguer::Error) -> CliError {
    CliError::failed(
        format!("the prompt failed: {e}"),
        Some("pass the answers as flags with --no-input".into()),
    )
}

fn ask(
    printer: &Printer,
    context: Option<&str>,
    args: &CreateArgs,
    interactive: bool,
) -> CliResult<Answers> {
    let theme = ColorfulTheme::default();

    let name = match &args.name {
        Some(name) => {
            names::check_service_name(name).map_err(|e| invalid(e, "a service name"))?;
            name.clone()
        }
        None if interactive => Input::<String>::with_theme(&theme)
            .with_prompt("Service name")
            .validate_with(|s: &String| names::check_service_name(s).map_err(|e| e.message))
            .interact_text()
            .map_err(prompt_error)?,
        None => {
            return Err(CliError::usage(
                "missing the service's name",
                "pass it as an argument: `faas service create NAME`",
            ));
        }
    };

    let all = templates::all();
    let template = match &args.template {
        Some(wanted) => templates::find(wanted).ok_or_else(|| {
            let known: Vec<&str> = all.iter().map(|t| t.name.as_str()).collect();
            CliError::usage(
                format!("there is no template named `{wanted}`"),
                format!(
                    "use one of {} (`faas templates list` describes them)",
                    known.join(", ")
                ),
            )
        })?,
        None if interactive => {
            let items: Vec<String> = all
                .iter()
                .map(|t| format!("{:16} {}", t.name, t.description))
                .collect();
            let default = all
                .iter()
                .position(|t| t.name == DEFAULT_TEMPLATE)
                .unwrap_or(0);
            let chosen = Select::with_theme(&theme)
                .with_prompt("Template")
                .items(&items)
                .default(default)
                .interact()
                .map_err(prompt_error)?;
            all[chosen].clone()
        }
        None => templates::find(DEFAULT_TEMPLATE).ok_or_else(|| {
            CliError::failed("the default template is missing from this build", None)
        })?,
    };

    let owner = match &args.owner {
        Some(owner) => {
            names::check_email(owner).map_err(|e| invalid(e, "an owner"))?;
            owner.clone()
        }
        None if interactive => {
            let mut input = Input::<String>::with_theme(&theme)
                .with_prompt("Owner (the e-mail billed for it)")
                .validate_with(|s: &String| names::check_email(s).map_err(|e| e.message));
            if let Some((email, _)) = owner::default_owner(context) {
                input = input.default(email);
            }
            input.interact_text().map_err(prompt_error)?
        }
        None => match owner::default_owner(context) {
            Some((email, from)) => {
                printer.info(format!(
                    "Owner: {email} (from {from}; --owner EMAIL names another)"
                ));
                email
            }
            None => {
                return Err(CliError::usage(
                    "missing the service's owner: nobody is logged in and git has no user.email",
                    "pass --owner EMAIL: the tenant that owns the service and is billed for it (or `faas login`, or `git config --global user.email you@example.com`)",
                ));
            }
        },
    };

    let kind = match args.kind {
        Some(kind) => kind,
        None if interactive => {
            let chosen = Select::with_theme(&theme)
                .with_prompt("Kind")
                .items([
                    "business (a product service)",
                    "infrastructure (a service others stand on)",
                ])
                .default(0)
                .interact()
                .map_err(prompt_error)?;
            if chosen == 0 {
                KindArg::Business
            } else {
                KindArg::Infrastructure
            }
        }
        None => KindArg::Business,
    };

    let description = args
        .description
        .clone()
        .unwrap_or_else(|| template.default_description.clone());
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(&name));
    Ok(Answers {
        name,
        template,
        owner,
        kind,
        description,
        dir,
    })
}

fn create(printer: &Printer, a: &Answers, print_dir: bool) -> CliResult {
    let shown = display_path(&a.dir);
    let target_exists = a.dir.exists();
    if target_exists {
        let empty = std::fs::read_dir(&a.dir)
            .map_err(|e| CliError::failed(format!("cannot read {shown}: {e}"), None))?
            .next()
            .is_none();
        if !empty {
            return Err(CliError::usage(
                format!("{shown} already exists and is not empty"),
                "choose another directory with --dir, or another name",
            ));
        }
    }
    let parent = match a.dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)
        .map_err(|e| CliError::failed(format!("cannot create {}: {e}", parent.display()), None))?;

    let staging = parent.join(format!(".faas-create-{}-{}", a.name, std::process::id()));
    let result = render_into(&staging, a).and_then(|files| {
        if target_exists {
            std::fs::remove_dir(&a.dir)
                .map_err(|e| CliError::failed(format!("cannot replace {shown}: {e}"), None))?;
        }
        std::fs::rename(&staging, &a.dir)
            .map_err(|e| CliError::failed(format!("cannot create {shown}: {e}"), None))?;
        Ok(files)
    });
    let files = match result {
        Ok(files) => files,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };

    printer.status(
        "Created",
        format!(
            "service `{}` from template {} in {shown} ({} files)",
            a.name,
            a.template.name,
            files.len()
        ),
    );
    match git_init(&a.dir) {
        GitInit::Done => printer.status("Initialized", "a git repository"),
        GitInit::InsideRepository => {
            printer.info("(inside a git repository already: no `git init`)")
        }
        GitInit::NoGit => {}
        GitInit::Failed(why) => printer.warn(format!("`git init` failed: {why}")),
    }
    if print_dir {
        printer.info(format!(
            "\nNext:\n  cd {shown}\n  faas service validate\n  faas service deploy -e prod"
        ));
        printer.result(a.dir.display());
    }
    Ok(())
}

fn render_into(staging: &Path, a: &Answers) -> CliResult<Vec<PathBuf>> {
    std::fs::create_dir_all(staging)
        .map_err(|e| CliError::failed(format!("cannot create {}: {e}", staging.display()), None))?;
    let kind = match a.kind {
        KindArg::Business => "business",
        KindArg::Infrastructure => "infrastructure",
    };
    let vars = Vars {
        name: &a.name,
        owner: &a.owner,
        kind,
        description: &a.description,
        schema_url: &schema_url(),
    };
    let files = templates::render(&a.template, &vars, staging).map_err(CliError::Other)?;
    // The scaffold must validate: a template that renders an invalid manifest is a bug here.
    let manifest = staging.join(faas_spec::MANIFEST_FILE);
    faas_spec::ManifestFile::load(&manifest).map_err(|e| {
        CliError::failed(
            format!(
                "template {} rendered an invalid app.toml: {e}",
                a.template.name
            ),
            None,
        )
    })?;
    Ok(files)
}

/// Where editors find app.toml's schema: the copy this CLI keeps beside its config (written
/// now when absent or stale), as a `file://` URL; none when it cannot be written.
fn schema_url() -> String {
    let path = crate::config::config_dir().join(faas_spec::schema::SCHEMA_FILE);
    let text = faas_spec::schema::app_schema_json();
    let current = std::fs::read_to_string(&path).is_ok_and(|t| t == text);
    if !current {
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, &text));
        if written.is_err() {
            return String::new();
        }
    }
    let absolute = std::path::absolute(&path).unwrap_or(path);
    format!("file://{}", absolute.display())
}

enum GitInit {
    Done,
    InsideRepository,
    NoGit,
    Failed(String),
}

fn git_init(dir: &Path) -> GitInit {
    let inside = Command::new("git")
        .args(["rev-parse", "--is-inside-work-tree"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match inside {
        Err(_) => return GitInit::NoGit,
        Ok(status) if status.success() => return GitInit::InsideRepository,
        Ok(_) => {}
    }
    match Command::new("git")
        .args(["init", "-q"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => GitInit::Done,
        Ok(out) => GitInit::Failed(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
        Err(e) => GitInit::Failed(e.to_string()),
    }
}
