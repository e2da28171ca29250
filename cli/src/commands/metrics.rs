//! `faas service metrics`: an environment's golden figures per release over a span (requests/s,
//! 5xx ratio, p50/p95/p99, CPU and memory, absolute and as a share of the size), and per
//! function where the service exposes metrics.

use clap::Args;
use faas_spec::api::observe::{Figures, ServiceMetrics};

use crate::client::encode;
use crate::error::CliResult;
use crate::printer::Printer;
use crate::session;

#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// The environment
    #[arg(short, long, value_name = "ENV", default_value = "prod")]
    pub env: String,
    /// How far back, e.g. `15m`, `1h`, `7d`
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub since: String,
    /// The service [default: app.toml's name]
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
}

fn figures(f: &Figures) -> String {
    format!(
        "{:>9} {:>8.2} {:>7.2}% {:>8} {:>8} {:>8}",
        f.requests,
        f.rps,
        f.error_ratio * 100.0,
        ms(f.p50_ms),
        ms(f.p95_ms),
        ms(f.p99_ms)
    )
}

fn mib(b: u64) -> String {
    format!("{:.1}Mi", b as f64 / (1024.0 * 1024.0))
}

pub fn run(
    printer: &Printer,
    context: Option<&str>,
    service: &str,
    args: MetricsArgs,
) -> CliResult {
    let client = session::connect(printer, context)?;
    let m: ServiceMetrics = client.get(&format!(
        "/v1/services/{service}/metrics?env={}&since={}",
        encode(&args.env),
        encode(&args.since)
    ))?;
    if args.json {
        printer.json(&m);
        return Ok(());
    }
    printer.result(format!("{service} ({}) from {} to {}", m.env, m.from, m.to));
    if m.releases.is_empty() {
        printer.result("no requests or readings in this span");
        return Ok(());
    }
    printer.result(format!(
        "{:<10} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}  {:<16} {}",
        "RELEASE", "REQUESTS", "REQ/S", "5XX", "P50 ms", "P95 ms", "P99 ms", "CPU", "MEMORY"
    ));
    for r in &m.releases {
        let cpu = match (r.cpu_cores, r.cpu_percent) {
            (Some(c), Some(p)) => format!("{c:.3} ({p:.0}%)"),
            (Some(c), None) => format!("{c:.3}"),
            _ => "-".into(),
        };
        let memory = match (r.memory_bytes, r.memory_limit, r.memory_percent) {
            (Some(b), Some(l), Some(p)) => format!("{} of {} ({p:.0}%)", mib(b), mib(l)),
            (Some(b), _, _) => mib(b),
            _ => "-".into(),
        };
        let name = format!("v{}{}", r.version, if r.current { "*" } else { "" });
        printer.result(format!(
            "{name:<10} {}  {cpu:<16} {memory}",
            figures(&r.figures)
        ));
    }
    if !m.functions.is_empty() {
        printer.result("");
        printer.result(format!(
            "{:<20} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "FUNCTION", "CALLS", "CALLS/S", "5XX", "P50 ms", "P95 ms", "P99 ms"
        ));
        for f in &m.functions {
            printer.result(format!("{:<20} {}", f.function, figures(&f.figures)));
        }
    }
    Ok(())
}
