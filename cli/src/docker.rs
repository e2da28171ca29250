//! The local Docker Engine (bollard): image builds with progress, and `docker save` of an image
//! for a platform that does not share this engine.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::BuildImageOptionsBuilder;
use futures_util::StreamExt;
use globset::{Glob, GlobMatcher};
use sha2::{Digest, Sha256};

use crate::error::{CliError, CliResult};
use crate::printer::Printer;

fn unavailable(e: impl std::fmt::Display) -> CliError {
    CliError::failed(
        format!("the Docker Engine does not answer: {e}"),
        Some("start it (`sudo systemctl start docker`, or `./install.sh --yes` installs and starts one)".into()),
    )
}

/// A current-thread runtime for the Docker calls of one command.
pub fn runtime() -> CliResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failed(format!("cannot start an async runtime: {e}"), None))
}

pub async fn connect() -> CliResult<Docker> {
    let docker = Docker::connect_with_local_defaults().map_err(unavailable)?;
    tokio::time::timeout(Duration::from_secs(10), docker.negotiate_version())
        .await
        .map_err(|_| unavailable("no answer within 10 s"))?
        .map_err(unavailable)
}

/// The engine's ID, to tell whether the platform shares it.
pub async fn engine_id(docker: &Docker) -> CliResult<Option<String>> {
    Ok(docker.info().await.map_err(unavailable)?.id)
}

/// `.dockerignore` patterns: Go-style globs anchored at the context root, `!` re-includes,
/// the last matching pattern wins, and a matched directory takes its contents with it.
pub struct DockerIgnore {
    rules: Vec<(GlobMatcher, bool)>,
}

impl DockerIgnore {
    pub fn load(context: &Path) -> Self {
        let text = std::fs::read_to_string(context.join(".dockerignore")).unwrap_or_default();
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Self {
        let mut rules = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (negate, pattern) = match line.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, line),
            };
            let pattern = pattern
                .trim_start_matches("./")
                .trim_start_matches('/')
                .trim_end_matches('/');
            if pattern.is_empty() {
                continue;
            }
            if let Ok(glob) = globset::GlobBuilder::new(pattern)
                .literal_separator(true)
                .build()
                .map(|g: Glob| g.compile_matcher())
            {
                rules.push((glob, negate));
            }
        }
        Self { rules }
    }

    /// Whether `relative` (with `/` separators) is left out of the context.
    pub fn excludes(&self, relative: &str) -> bool {
        let mut excluded = false;
        for (glob, negate) in &self.rules {
            // A pattern matching a parent directory matches everything below it.
            let mut prefix = String::new();
            let mut hit = false;
            for part in relative.split('/') {
                if !prefix.is_empty() {
                    prefix.push('/');
                }
                prefix.push_str(part);
                if glob.is_match(&prefix) {
                    hit = true;
                    break;
                }
            }
            if hit {
                excluded = !negate;
            }
        }
        excluded
    }
}

/// The build context as a tar archive, without what `.dockerignore` leaves out (the Dockerfile
/// and `.dockerignore` themselves always go in, as the engine needs them).
pub fn context_tar(context: &Path, dockerfile: &str) -> CliResult<Vec<u8>> {
    let ignore = DockerIgnore::load(context);
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    let mut stack = vec![context.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| CliError::failed(format!("cannot read {}: {e}", dir.display()), None))?;
        let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let Ok(relative) = path.strip_prefix(context) else {
                continue;
            };
            let relative = relative.to_string_lossy().replace('\\', "/");
            let always = relative == dockerfile || relative == ".dockerignore";
            if !always && ignore.excludes(&relative) {
                continue;
            }
            let file_type = entry
                .file_type()
                .map_err(|e| CliError::failed(e.to_string(), None))?;
            if file_type.is_dir() {
                builder
                    .append_dir(&relative, &path)
                    .map_err(|e| CliError::failed(format!("cannot pack {relative}: {e}"), None))?;
                stack.push(path);
            } else {
                builder
                    .append_path_with_name(&path, &relative)
                    .map_err(|e| CliError::failed(format!("cannot pack {relative}: {e}"), None))?;
            }
        }
    }
    builder
        .into_inner()
        .map_err(|e| CliError::failed(format!("cannot pack the build context: {e}"), None))
}

pub struct BuildRequest<'a> {
    pub context: &'a Path,
    pub dockerfile: &'a str,
    pub tag: &'a str,
    pub args: HashMap<String, String>,
    pub target: Option<&'a str>,
    pub no_cache: bool,
}

/// Builds an image; shows the steps (a spinner on a terminal, plain lines otherwise); on a
/// failing step prints that step's output. Returns the image ID.
pub async fn build(printer: &Printer, docker: &Docker, req: BuildRequest<'_>) -> CliResult<String> {
    let tar = context_tar(req.context, req.dockerfile)?;
    let mut options = BuildImageOptionsBuilder::default()
        .dockerfile(req.dockerfile)
        .t(req.tag)
        .rm(true)
        .forcerm(true)
        .nocache(req.no_cache)
        .buildargs(&req.args);
    if let Some(target) = req.target {
        options = options.target(target);
    }
    let fancy = std::io::stderr().is_terminal() && printer.color && !printer.quiet;
    let spinner = fancy.then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    });
    let mut stream =
        docker.build_image(options.build(), None, Some(bollard::body_full(tar.into())));
    let mut step_output: Vec<String> = Vec::new();
    let mut image_id = None;
    while let Some(item) = stream.next().await {
        let info = match item {
            Ok(info) => info,
            Err(bollard::errors::Error::DockerStreamError { error }) => {
                if let Some(bar) = &spinner {
                    bar.finish_and_clear();
                }
                printer.raw_stderr(&step_output.join(""));
                return Err(CliError::failed(
                    format!("the build failed: {}", error.trim()),
                    Some("the output of the failing step is above".into()),
                ));
            }
            Err(e) => return Err(unavailable(e)),
        };
        if let Some(aux) = info.aux.and_then(|a| a.id) {
            image_id = Some(aux);
        }
        if let Some(text) = info.stream {
            if text.starts_with("Step ") {
                step_output.clear();
                match &spinner {
                    Some(bar) => bar.set_message(text.trim().to_owned()),
                    None if !printer.quiet => {
                        let _ = std::io::stderr().write_all(text.as_bytes());
                    }
                    None => {}
                }
            } else if spinner.is_none() && !printer.quiet {
                let _ = std::io::stderr().write_all(text.as_bytes());
            }
            step_output.push(text);
        }
        if let Some(detail) = info.error_detail.and_then(|d| d.message) {
            if let Some(bar) = &spinner {
                bar.finish_and_clear();
            }
            printer.raw_stderr(&step_output.join(""));
            return Err(CliError::failed(
                format!("the build failed: {}", detail.trim()),
                None,
            ));
        }
    }
    if let Some(bar) = &spinner {
        bar.finish_and_clear();
    }
    match image_id {
        Some(id) => Ok(id),
        None => docker
            .inspect_image(req.tag)
            .await
            .map_err(unavailable)?
            .id
            .ok_or_else(|| CliError::failed("the build produced no image", None)),
    }
}

/// `docker save` of one image into `file`; returns its size and SHA-256.
pub async fn save(docker: &Docker, image: &str, file: &Path) -> CliResult<(u64, String)> {
    let mut out = std::fs::File::create(file)
        .map_err(|e| CliError::failed(format!("cannot write {}: {e}", file.display()), None))?;
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    let mut stream = docker.export_image(image);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(unavailable)?;
        hasher.update(&chunk);
        len += chunk.len() as u64;
        out.write_all(&chunk)
            .map_err(|e| CliError::failed(format!("cannot write {}: {e}", file.display()), None))?;
    }
    Ok((len, hex::encode(hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::DockerIgnore;

    #[test]
    fn dockerignore_patterns_are_anchored_and_negatable() {
        let ig = DockerIgnore::parse("# comment\ntarget\n*.log\n!keep.log\ndocs/**/*.md\n.git/\n");
        assert!(ig.excludes("target"));
        assert!(
            ig.excludes("target/debug/app"),
            "a matched directory takes its contents"
        );
        assert!(
            !ig.excludes("src/target"),
            "patterns are anchored at the root"
        );
        assert!(ig.excludes("a.log"));
        assert!(!ig.excludes("keep.log"));
        assert!(!ig.excludes("src/a.log"), "`*` does not cross `/`");
        assert!(ig.excludes("docs/x/y.md"));
        assert!(ig.excludes(".git/HEAD"));
        assert!(!ig.excludes("src/main.rs"));
    }
}
