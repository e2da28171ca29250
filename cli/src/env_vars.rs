//! Every environment variable faas reads, in one place.

/// Path of the manifest to use instead of searching for app.toml (same as `--manifest`).
pub const FAAS_MANIFEST: &str = "FAAS_MANIFEST";
/// Any non-empty value turns colors off (https://no-color.org).
pub const NO_COLOR: &str = "NO_COLOR";
/// `dumb` turns colors and animations off.
pub const TERM: &str = "TERM";
/// Any non-empty value answers no prompt, as `--no-input` does.
pub const FAAS_NO_INPUT: &str = "FAAS_NO_INPUT";
