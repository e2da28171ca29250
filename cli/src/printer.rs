//! The one place that writes to the terminal. stdout carries results only; progress, warnings,
//! hints and errors go to stderr. Colors are decided once, at start-up.

use std::io::{IsTerminal, Write};

use console::style;

use crate::env_vars;

#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub color: bool,
    pub quiet: bool,
}

impl Printer {
    /// Colors only where stderr is a terminal, and not with `--no-color`, NO_COLOR or TERM=dumb.
    pub fn new(no_color_flag: bool, quiet: bool) -> Self {
        let no_color_env = std::env::var_os(env_vars::NO_COLOR).is_some_and(|v| !v.is_empty());
        let dumb = std::env::var(env_vars::TERM).is_ok_and(|t| t == "dumb");
        let color = !no_color_flag && !no_color_env && !dumb && std::io::stderr().is_terminal();
        console::set_colors_enabled(color);
        console::set_colors_enabled_stderr(color);
        Self { color, quiet }
    }

    /// A result line on stdout.
    pub fn result(&self, text: impl std::fmt::Display) {
        let _ = writeln!(std::io::stdout().lock(), "{text}");
    }

    /// A value as pretty JSON on stdout.
    pub fn json<T: serde::Serialize>(&self, value: &T) {
        match serde_json::to_string_pretty(value) {
            Ok(text) => self.result(text),
            Err(e) => self.error(&format!("cannot encode the result as JSON: {e}"), None),
        }
    }

    /// Progress: `   Created something`, with the verb right-aligned as cargo does.
    pub fn status(&self, verb: &str, message: impl std::fmt::Display) {
        if self.quiet {
            return;
        }
        let verb = format!("{verb:>12}");
        let _ = writeln!(
            std::io::stderr().lock(),
            "{} {message}",
            style(verb).green().bold()
        );
    }

    /// A plain line of information on stderr.
    pub fn info(&self, message: impl std::fmt::Display) {
        if !self.quiet {
            let _ = writeln!(std::io::stderr().lock(), "{message}");
        }
    }

    pub fn warn(&self, message: impl std::fmt::Display) {
        let _ = writeln!(
            std::io::stderr().lock(),
            "{} {message}",
            style("warning:").yellow().bold()
        );
    }

    pub fn error(&self, message: &str, hint: Option<&str>) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{} {message}", style("error:").red().bold());
        if let Some(hint) = hint {
            let _ = writeln!(err, "  {} {hint}", style("hint:").cyan().bold());
        }
    }

    /// Text that was rendered elsewhere (a manifest report), written to stderr as it is.
    pub fn raw_stderr(&self, text: &str) {
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}
