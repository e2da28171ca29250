//! Manifest problems with their place in the file, rendered the way rustc renders errors: the
//! file:line:column, the source line with the span underlined, what was expected and a hint.

use std::fmt;
use std::ops::Range;

use codespan_reporting::diagnostic::{Diagnostic as CsDiagnostic, Label};
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term::{self, Config};
use serde::Serialize;

/// One problem in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// A stable machine code such as `unknown-key`.
    pub code: &'static str,
    pub message: String,
    /// Byte range in the source.
    #[serde(skip)]
    pub span: Range<usize>,
    /// The words under the underline.
    pub label: String,
    pub expected: Option<String>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(code: &'static str, span: Range<usize>, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            span,
            label: String::new(),
            expected: None,
            help: None,
        }
    }
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }
    pub fn expected(mut self, expected: impl Into<String>) -> Self {
        self.expected = Some(expected.into());
        self
    }
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    pub fn help_opt(mut self, help: Option<String>) -> Self {
        if help.is_some() {
            self.help = help;
        }
        self
    }
}

/// A file that is not TOML at all: where the parser stopped, and its first line of why.
pub fn toml_syntax(file_name: &str, e: &toml_edit::TomlError) -> Diagnostic {
    let message = e.message().trim();
    Diagnostic::new(
        "toml-syntax",
        e.span().unwrap_or(0..0),
        format!("{file_name} is not valid TOML"),
    )
    .label(message.lines().next().unwrap_or_default())
    .help("see https://toml.io for the syntax; strings need quotes, tables are `[name]`")
}

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// Every problem found in one manifest file.
#[derive(Debug, Clone)]
pub struct Report {
    pub file_name: String,
    pub source: String,
    pub diagnostics: Vec<Diagnostic>,
}

/// A problem as `--json` shows it: with its position resolved.
#[derive(Debug, Serialize)]
pub struct LocatedDiagnostic<'a> {
    pub file: &'a str,
    pub line: usize,
    pub column: usize,
    #[serde(flatten)]
    pub diagnostic: &'a Diagnostic,
}

impl Report {
    pub fn position(&self, offset: usize) -> Position {
        let offset = offset.min(self.source.len());
        let before = &self.source[..floor_char_boundary(&self.source, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position {
            line,
            column: before[line_start..].chars().count() + 1,
        }
    }

    pub fn located(&self) -> Vec<LocatedDiagnostic<'_>> {
        self.diagnostics
            .iter()
            .map(|d| {
                let p = self.position(d.span.start);
                LocatedDiagnostic {
                    file: &self.file_name,
                    line: p.line,
                    column: p.column,
                    diagnostic: d,
                }
            })
            .collect()
    }

    /// The whole report as text; `color` adds ANSI styles.
    pub fn render(&self, color: bool) -> String {
        let file = SimpleFile::new(self.file_name.as_str(), self.source.as_str());
        let config = Config::default();
        let mut out = String::new();
        for d in &self.diagnostics {
            let span = clamp_span(&self.source, &d.span);
            let mut label = Label::primary((), span);
            if !d.label.is_empty() {
                label = label.with_message(d.label.clone());
            }
            let mut notes = Vec::new();
            if let Some(e) = &d.expected {
                notes.push(format!("expected: {e}"));
            }
            if let Some(h) = &d.help {
                notes.push(format!("help: {h}"));
            }
            let cs = CsDiagnostic::error()
                .with_code(d.code)
                .with_message(d.message.clone())
                .with_labels(vec![label])
                .with_notes(notes);
            let rendered = if color {
                render_color(&config, &file, &cs)
            } else {
                term::emit_into_string(&config, &file, &cs).ok()
            };
            match rendered {
                Some(text) => out.push_str(&text),
                None => {
                    let p = self.position(d.span.start);
                    out.push_str(&format!(
                        "error[{}]: {}\n  --> {}:{}:{}\n",
                        d.code, d.message, self.file_name, p.line, p.column
                    ));
                }
            }
        }
        let n = self.diagnostics.len();
        out.push_str(&format!(
            "error: {} has {n} problem{}\n",
            self.file_name,
            if n == 1 { "" } else { "s" }
        ));
        out
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(false))
    }
}

impl std::error::Error for Report {}

fn render_color(
    config: &Config,
    file: &SimpleFile<&str, &str>,
    diagnostic: &CsDiagnostic<()>,
) -> Option<String> {
    use term::termcolor::Ansi;
    let mut buffer = Ansi::new(Vec::new());
    let styles = term::Styles::default();
    let mut writer = term::StylesWriter::new(&mut buffer, &styles);
    term::emit_to_write_style(&mut writer, config, file, diagnostic).ok()?;
    String::from_utf8(buffer.into_inner()).ok()
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn clamp_span(source: &str, span: &Range<usize>) -> Range<usize> {
    let start = floor_char_boundary(source, span.start.min(source.len()));
    let end = floor_char_boundary(source, span.end.min(source.len())).max(start);
    start..end
}
