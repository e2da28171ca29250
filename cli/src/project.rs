//! Finding the service's app.toml and writing it back without ever leaving it half-written.

use std::path::{Path, PathBuf};

use faas_spec::MANIFEST_FILE;

use crate::error::{CliError, CliResult};

/// `--manifest` when given, else app.toml in the current directory or its nearest parent.
pub fn manifest_path(explicit: Option<&Path>) -> CliResult<PathBuf> {
    if let Some(path) = explicit {
        if path.is_dir() {
            return Ok(path.join(MANIFEST_FILE));
        }
        return Ok(path.to_path_buf());
    }
    let cwd = std::env::current_dir()
        .map_err(|e| CliError::failed(format!("cannot read the current directory: {e}"), None))?;
    for dir in cwd.ancestors() {
        let candidate = dir.join(MANIFEST_FILE);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(CliError::usage(
        format!(
            "no {MANIFEST_FILE} in {} or any parent directory",
            cwd.display()
        ),
        "run this inside a service (`faas service create` makes one), or pass --manifest PATH",
    ))
}

/// A path as a user wants to read it: relative to the current directory when inside it.
pub fn display_path(path: &Path) -> String {
    let cwd = std::env::current_dir().ok();
    match cwd.as_deref().and_then(|c| path.strip_prefix(c).ok()) {
        Some(rel) if rel.as_os_str().is_empty() => ".".to_owned(),
        Some(rel) => rel.display().to_string(),
        None => path.display().to_string(),
    }
}

/// Replaces a file's contents atomically: a temporary file beside it, then a rename.
pub fn write_atomically(path: &Path, contents: &str) -> CliResult {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("app.toml");
    let tmp = dir.join(format!(".{name}.faas-tmp-{}", std::process::id()));
    let fail =
        |e: std::io::Error| CliError::failed(format!("cannot write {}: {e}", path.display()), None);
    std::fs::write(&tmp, contents).map_err(fail)?;
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(&tmp, meta.permissions());
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail(e)
    })
}
