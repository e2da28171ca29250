//! Every environment variable faas reads, in one place.

/// Path of the manifest to use instead of searching for app.toml (same as `--manifest`).
pub const FAAS_MANIFEST: &str = "FAAS_MANIFEST";
/// Any non-empty value turns colors off (https://no-color.org).
pub const NO_COLOR: &str = "NO_COLOR";
/// `dumb` turns colors and animations off.
pub const TERM: &str = "TERM";
/// Any non-empty value answers no prompt, as `--no-input` does.
pub const FAAS_NO_INPUT: &str = "FAAS_NO_INPUT";
/// The context to use (as `-C/--context`).
pub const FAAS_CONTEXT: &str = "FAAS_CONTEXT";
/// A token for the platform; wins over `faas login` (for CI).
pub const FAAS_TOKEN: &str = "FAAS_TOKEN";
/// The directory of config.toml and credentials.toml [default: $XDG_CONFIG_HOME/faas].
pub const FAAS_CONFIG_DIR: &str = "FAAS_CONFIG_DIR";
/// Any non-empty value keeps tokens out of the OS keyring (the 0600 file is used).
pub const FAAS_NO_KEYRING: &str = "FAAS_NO_KEYRING";
/// The local platform's data directory [default: $XDG_DATA_HOME/faas/platform].
pub const FAAS_PLATFORM_DATA_DIR: &str = "FAAS_PLATFORM_DATA_DIR";
/// Where the local platform's API listens [default: 127.0.0.1:7700].
pub const FAAS_LOCAL_LISTEN: &str = "FAAS_LOCAL_LISTEN";
/// Where the local platform's router listens [default: 127.0.0.1:7780].
pub const FAAS_LOCAL_ROUTER: &str = "FAAS_LOCAL_ROUTER";
/// `always` uploads the image even when the platform shares this Docker Engine (what a remote
/// platform gets; useful to try that path locally).
pub const FAAS_UPLOAD: &str = "FAAS_UPLOAD";
