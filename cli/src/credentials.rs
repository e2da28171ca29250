//! Tokens: `FAAS_TOKEN` wins (for CI); otherwise the OS keyring, and where no keyring service
//! answers (headless Linux has no Secret Service) a 0600 file, with a warning. The local
//! context needs no login: it reads the admin token its platform wrote.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::{Context, config_dir, local_data_dir};
use crate::env_vars;
use crate::error::{CliError, CliResult};
use crate::printer::Printer;

const KEYRING_SERVICE: &str = "faas";

#[derive(Debug, Default, Serialize, Deserialize)]
struct TokenFile {
    #[serde(default)]
    tokens: BTreeMap<String, String>,
}

fn file_path() -> PathBuf {
    config_dir().join("credentials.toml")
}

fn read_file() -> TokenFile {
    std::fs::read_to_string(file_path())
        .ok()
        .and_then(|t| toml::from_str(&t).ok())
        .unwrap_or_default()
}

fn write_file(file: &TokenFile) -> CliResult {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let path = file_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::failed(format!("cannot create {}: {e}", dir.display()), None))?;
    }
    let text = toml::to_string(file).map_err(|e| CliError::failed(e.to_string(), None))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut f = options
        .open(&path)
        .map_err(|e| CliError::failed(format!("cannot write {}: {e}", path.display()), None))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    f.write_all(text.as_bytes())
        .map_err(|e| CliError::failed(format!("cannot write {}: {e}", path.display()), None))
}

/// Where a stored token lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Keyring,
    File,
}

fn keyring_disabled() -> bool {
    std::env::var_os(env_vars::FAAS_NO_KEYRING).is_some_and(|v| !v.is_empty())
}

/// Saves a context's token: in the keyring when one answers, else in the 0600 file.
pub fn save(printer: &Printer, context: &str, token: &str) -> CliResult<Store> {
    if !keyring_disabled() {
        let stored =
            keyring::Entry::new(KEYRING_SERVICE, context).and_then(|e| e.set_password(token));
        match stored {
            Ok(()) => {
                // A stale file copy would shadow nothing, but keep one place only.
                let mut file = read_file();
                if file.tokens.remove(context).is_some() {
                    write_file(&file)?;
                }
                return Ok(Store::Keyring);
            }
            Err(e) => printer.warn(format!(
                "no keyring service answers ({e}); the token goes to {} (readable by you alone)",
                file_path().display()
            )),
        }
    }
    let mut file = read_file();
    file.tokens.insert(context.to_owned(), token.to_owned());
    write_file(&file)?;
    Ok(Store::File)
}

pub fn forget(context: &str) -> CliResult<bool> {
    let mut removed = false;
    if !keyring_disabled()
        && let Ok(entry) = keyring::Entry::new(KEYRING_SERVICE, context)
    {
        removed |= entry.delete_credential().is_ok();
    }
    let mut file = read_file();
    if file.tokens.remove(context).is_some() {
        write_file(&file)?;
        removed = true;
    }
    Ok(removed)
}

/// The token for a context, if there is one.
pub fn token(context: &Context) -> Option<String> {
    if let Some(t) = login_token(context) {
        return Some(t);
    }
    if context.local {
        let path = local_data_dir().join("admin-token");
        return std::fs::read_to_string(path)
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
    }
    None
}

/// The token someone gave for a context (`FAAS_TOKEN` or `faas login`), not the local
/// platform's own admin token: who is logged in, if anyone.
pub fn login_token(context: &Context) -> Option<String> {
    if let Ok(t) = std::env::var(env_vars::FAAS_TOKEN)
        && !t.trim().is_empty()
    {
        return Some(t.trim().to_owned());
    }
    if !keyring_disabled()
        && let Ok(t) =
            keyring::Entry::new(KEYRING_SERVICE, &context.name).and_then(|e| e.get_password())
    {
        return Some(t);
    }
    read_file().tokens.get(&context.name).cloned()
}
