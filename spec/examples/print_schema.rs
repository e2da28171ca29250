//! Prints the app.toml JSON Schema (`cargo run -p faas-spec --example print_schema`).
#![allow(clippy::print_stdout)]
fn main() {
    print!("{}", faas_spec::schema::app_schema_json());
}
