//! One module per command. Each is a plain function of resolved arguments and the printer.

pub mod completions;
pub mod create;
pub mod database;
pub mod info;
pub mod templates;
pub mod validate;
