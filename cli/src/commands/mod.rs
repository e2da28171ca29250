//! One module per command. Each is a plain function of resolved arguments and the printer.

pub mod action;
pub mod auth;
pub mod billing;
pub mod canary;
pub mod completions;
pub mod context;
pub mod costs;
pub mod create;
pub mod cron;
pub mod database;
pub mod databases;
pub mod debug;
pub mod dependency;
pub mod deploy;
pub mod dev;
pub mod dev_databases;
pub mod dev_dependencies;
pub mod function;
pub mod info;
pub mod invoices;
pub mod ledger;
pub mod logs;
pub mod metrics;
pub mod platform;
pub mod problems;
pub mod secrets;
pub mod service;
pub mod tariff;
pub mod task;
pub mod templates;
pub mod trace;
pub mod validate;

/// `KEY=VALUE` arguments of a repeatable flag (`--env`, `--build-arg`), as pairs.
pub fn key_values<C: FromIterator<(String, String)>>(
    items: &[String],
    flag: &str,
) -> crate::error::CliResult<C> {
    items
        .iter()
        .map(|item| {
            item.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| {
                    crate::error::CliError::usage(
                        format!("`--{flag} {item}` is not KEY=VALUE"),
                        format!("write e.g. `--{flag} NAME=value`"),
                    )
                })
        })
        .collect()
}
