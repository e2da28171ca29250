//! `faas service logs`: the captured output of a service's instances. A followed stream that
//! drops reconnects and resumes after the last record it printed: no gap, no duplicate.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use console::{Color, style};
use faas_spec::api::LogRecord;

use crate::cli::LogsArgs;
use crate::client::encode;
use crate::error::{CliError, CliResult};
use crate::printer::Printer;
use crate::session;

fn colour_of(instance: &str) -> Color {
    const COLOURS: [Color; 6] = [
        Color::Cyan,
        Color::Magenta,
        Color::Yellow,
        Color::Green,
        Color::Blue,
        Color::Red,
    ];
    let sum: usize = instance.bytes().map(usize::from).sum();
    COLOURS[sum % COLOURS.len()]
}

pub fn run(printer: &Printer, context: Option<&str>, service: &str, a: &LogsArgs) -> CliResult {
    if let Some(id) = &a.trace
        && !crate::commands::trace::is_trace_id(id)
    {
        return Err(crate::error::CliError::usage(
            format!("`{id}` is not a trace id"),
            "a trace id is 32 lowercase hex digits: the trace_id of a log line, or the second part of a traceparent",
        ));
    }
    let client = session::connect(printer, context)?;
    let mut query = format!("env={}", encode(&a.env));
    if let Some(id) = &a.trace {
        query.push_str(&format!("&grep={id}"));
    }
    for (key, value) in [
        ("since", &a.since),
        ("until", &a.until),
        ("instance", &a.instance),
        ("release", &a.release),
        ("grep", &a.grep),
    ] {
        if let Some(v) = value {
            query.push_str(&format!("&{key}={}", encode(v)));
        }
    }
    let tail = a.lines.or(if a.since.is_some() { None } else { Some(100) });
    let terminal = std::io::stdout().is_terminal() && printer.color;
    let mut last: Option<u64> = None;
    let mut retries = 0u32;
    loop {
        let mut path = format!("/v1/services/{service}/logs?{query}");
        match last {
            Some(seq) => path.push_str(&format!("&after={seq}")),
            None => {
                if let Some(n) = tail {
                    path.push_str(&format!("&tail={n}"));
                }
            }
        }
        if a.follow {
            path.push_str("&follow=true");
        }
        let mut stdout = std::io::stdout().lock();
        let result = client.stream(&path, |r: LogRecord| {
            last = Some(last.map_or(r.seq, |l| l.max(r.seq)));
            let text = if a.json {
                serde_json::to_string(&r).unwrap_or_default()
            } else if terminal {
                let prefix =
                    style(format!("{} {}", &r.ts[11..23], r.instance)).fg(colour_of(&r.instance));
                if r.stream == "event" {
                    format!("{prefix} {}", style(&r.line).dim())
                } else {
                    format!("{prefix} {}", r.line)
                }
            } else {
                format!("{} {} {} {}", r.ts, r.instance, r.stream, r.line)
            };
            writeln!(stdout, "{text}").is_ok()
        });
        drop(stdout);
        match result {
            Ok(()) if !a.follow => return Ok(()),
            Ok(()) => {}
            Err(e @ CliError::Platform { .. }) => return Err(e),
            Err(e) if !a.follow => return Err(e),
            Err(e) => {
                retries += 1;
                if retries > 30 {
                    return Err(e);
                }
                printer.warn(format!("the log stream dropped ({e}); reconnecting"));
            }
        }
        if !a.follow {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
