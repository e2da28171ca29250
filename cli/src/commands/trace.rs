//! `faas trace show ID`: a trace's hops through the router, drawn as a waterfall (each hop under
//! the one that called it, its bar where it ran in the trace's time).

use clap::Subcommand;
use faas_spec::api::observe::{Trace, TraceSpan};

use crate::error::{CliError, CliResult};
use crate::printer::Printer;
use crate::session;

#[derive(Debug, Subcommand)]
pub enum TraceCommand {
    /// A trace's hops, as a waterfall
    Show {
        /// The trace id (32 hex digits; a log line's trace_id, or a traceparent's second part)
        id: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

pub fn is_trace_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && s.bytes().any(|b| b != b'0')
}

const BAR: usize = 40;

/// The hops in calling order, each with its depth.
fn ordered(spans: &[TraceSpan]) -> Vec<(usize, &TraceSpan)> {
    fn visit<'a>(
        spans: &'a [TraceSpan],
        parent: Option<&str>,
        depth: usize,
        out: &mut Vec<(usize, &'a TraceSpan)>,
    ) {
        for s in spans.iter().filter(|s| s.parent_id.as_deref() == parent) {
            out.push((depth, s));
            visit(spans, Some(&s.span_id), depth + 1, out);
        }
    }
    let ids: std::collections::HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let mut out = Vec::new();
    // Roots: no parent, or a parent outside what the router saw (the caller's own span).
    for root in spans
        .iter()
        .filter(|s| s.parent_id.as_deref().is_none_or(|p| !ids.contains(p)))
    {
        out.push((0, root));
        visit(spans, Some(&root.span_id), 1, &mut out);
    }
    out
}

pub fn waterfall(t: &Trace) -> Vec<String> {
    let total = t.duration_ms.max(0.001);
    let mut lines = vec![format!(
        "trace {} · {} hop{} · {:.1} ms",
        t.trace_id,
        t.spans.len(),
        if t.spans.len() == 1 { "" } else { "s" },
        t.duration_ms
    )];
    for (depth, s) in ordered(&t.spans) {
        let from = ((s.offset_ms / total) * BAR as f64).floor() as usize;
        let len = (((s.duration_ms / total) * BAR as f64).ceil() as usize).max(1);
        let from = from.min(BAR - 1);
        let len = len.min(BAR - from);
        let bar = format!(
            "{}{}{}",
            " ".repeat(from),
            "█".repeat(len),
            " ".repeat(BAR - from - len)
        );
        let name = format!(
            "{}{} ({}){}",
            "  ".repeat(depth),
            s.service,
            s.env,
            s.version.map(|v| format!(" v{v}")).unwrap_or_default()
        );
        let caller = s
            .caller
            .as_deref()
            .map(|c| format!("  from {c}"))
            .unwrap_or_default();
        lines.push(format!(
            "{name:<28} {:<6} {:<24} {}  |{bar}| {:>8.1} ms  {}{caller}",
            s.method,
            s.path.chars().take(24).collect::<String>(),
            s.status,
            s.duration_ms,
            s.instance
        ));
    }
    lines
}

pub fn run(printer: &Printer, context: Option<&str>, cmd: TraceCommand) -> CliResult {
    match cmd {
        TraceCommand::Show { id, json } => {
            if !is_trace_id(&id) {
                return Err(CliError::usage(
                    format!("`{id}` is not a trace id"),
                    "a trace id is 32 lowercase hex digits: the trace_id of a log line, or the second part of a traceparent",
                ));
            }
            let client = session::connect(printer, context)?;
            let trace: Trace = client.get(&format!("/v1/traces/{id}"))?;
            if json {
                printer.json(&trace);
            } else {
                for line in waterfall(&trace) {
                    printer.result(line);
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(
        id: &str,
        parent: Option<&str>,
        service: &str,
        offset: f64,
        duration: f64,
    ) -> TraceSpan {
        TraceSpan {
            span_id: id.into(),
            parent_id: parent.map(str::to_owned),
            service: service.into(),
            env: "prod".into(),
            version: Some(1),
            instance: "i".into(),
            caller: None,
            method: "GET".into(),
            path: "/".into(),
            status: 200,
            start: String::new(),
            offset_ms: offset,
            duration_ms: duration,
        }
    }

    #[test]
    fn a_callee_is_drawn_under_its_caller_within_its_time() {
        let t = Trace {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            duration_ms: 10.0,
            spans: vec![
                span("a", None, "front", 0.0, 10.0),
                span("b", Some("a"), "back", 5.0, 5.0),
            ],
        };
        let lines = waterfall(&t);
        assert!(lines[0].contains("2 hops"));
        assert!(lines[1].starts_with("front (prod) v1"));
        assert!(lines[2].starts_with("  back (prod) v1"));
        let bar = |l: &str| l.split('|').nth(1).unwrap().to_owned();
        assert_eq!(bar(&lines[1]).trim().chars().count(), 40);
        assert!(bar(&lines[2]).starts_with(&" ".repeat(20)));
        assert!(!is_trace_id("00000000000000000000000000000000"));
    }
}
