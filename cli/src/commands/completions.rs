//! `faas completions <shell>`

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::CliResult;

pub fn run(shell: clap_complete::Shell) -> CliResult {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "faas", &mut std::io::stdout());
    Ok(())
}
