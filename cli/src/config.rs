//! The user's configuration: contexts (which platform a command talks to) and the local
//! platform's settings, in `$XDG_CONFIG_HOME/faas/config.toml` (`FAAS_CONFIG_DIR` overrides the
//! directory).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::env_vars;
use crate::error::{CliError, CliResult};

/// The context every installation has: the platform on this machine.
pub const LOCAL: &str = "local";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The context commands use unless told otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub contexts: BTreeMap<String, ContextEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextEntry {
    pub url: String,
}

/// A resolved context.
#[derive(Debug, Clone, Serialize)]
pub struct Context {
    pub name: String,
    pub url: String,
    /// The platform this CLI starts and stops on this machine.
    pub local: bool,
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn xdg(var: &str, fallback: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| home().join(fallback))
}

pub fn config_dir() -> PathBuf {
    std::env::var_os(env_vars::FAAS_CONFIG_DIR)
        .map(PathBuf::from)
        .unwrap_or_else(|| xdg("XDG_CONFIG_HOME", ".config").join("faas"))
}

/// Where the local platform keeps its data (the daemon's own default).
pub fn local_data_dir() -> PathBuf {
    std::env::var_os(env_vars::FAAS_PLATFORM_DATA_DIR)
        .map(PathBuf::from)
        .unwrap_or_else(|| xdg("XDG_DATA_HOME", ".local/share").join("faas/platform"))
}

pub fn local_listen() -> String {
    std::env::var(env_vars::FAAS_LOCAL_LISTEN).unwrap_or_else(|_| "127.0.0.1:7700".into())
}

pub fn local_router() -> String {
    std::env::var(env_vars::FAAS_LOCAL_ROUTER).unwrap_or_else(|_| "127.0.0.1:7780".into())
}

impl Config {
    pub fn path() -> PathBuf {
        config_dir().join("config.toml")
    }

    pub fn load() -> CliResult<Self> {
        let path = Self::path();
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| {
                CliError::usage(
                    format!(
                        "{} is not a valid faas config: {}",
                        path.display(),
                        e.message()
                    ),
                    "fix it, or remove it to start afresh",
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(CliError::failed(
                format!("cannot read {}: {e}", path.display()),
                None,
            )),
        }
    }

    pub fn save(&self) -> CliResult {
        let path = Self::path();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                CliError::failed(format!("cannot create {}: {e}", dir.display()), None)
            })?;
        }
        let text =
            toml::to_string_pretty(self).map_err(|e| CliError::failed(e.to_string(), None))?;
        crate::project::write_atomically(&path, &text)
    }

    /// The context to use: `-C`/`FAAS_CONTEXT` (passed in), then the config's current one,
    /// then `local`.
    pub fn resolve(&self, wanted: Option<&str>) -> CliResult<Context> {
        let name = wanted.or(self.current.as_deref()).unwrap_or(LOCAL);
        if name == LOCAL && !self.contexts.contains_key(LOCAL) {
            return Ok(Context {
                name: LOCAL.into(),
                url: format!("http://{}", local_listen()),
                local: true,
            });
        }
        match self.contexts.get(name) {
            Some(entry) => Ok(Context {
                name: name.to_owned(),
                url: entry.url.trim_end_matches('/').to_owned(),
                local: false,
            }),
            None => Err(CliError::usage(
                format!("there is no context named `{name}`"),
                format!(
                    "`faas context list` shows them; add one with `faas context add {name} --url URL`"
                ),
            )),
        }
    }

    /// Every context, `local` first.
    pub fn all(&self) -> Vec<Context> {
        let mut out = vec![Context {
            name: LOCAL.into(),
            url: format!("http://{}", local_listen()),
            local: true,
        }];
        out.extend(
            self.contexts
                .iter()
                .filter(|(n, _)| *n != LOCAL)
                .map(|(n, e)| Context {
                    name: n.clone(),
                    url: e.url.clone(),
                    local: false,
                }),
        );
        out
    }
}
