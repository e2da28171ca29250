//! `faas templates list`

use crate::error::CliResult;
use crate::printer::Printer;
use crate::templates;

pub fn list(printer: &Printer, json: bool) -> CliResult {
    let all = templates::all();
    if json {
        printer.json(&all);
        return Ok(());
    }
    let width = all.iter().map(|t| t.name.len()).max().unwrap_or(0);
    for t in &all {
        printer.result(format!("{:width$}  {}", t.name, t.description));
    }
    Ok(())
}
