//! `faas codegen client NAME`: a client for a service's functions, from the description its
//! python-function runtime gives (`GET /functions`, through the platform).

use std::path::Path;

use clap::Subcommand;
use serde::Deserialize;

use crate::client::encode;
use crate::error::{CliError, CliResult};
use crate::printer::Printer;
use crate::session;

const PYTHON: &str = include_str!("client.py.jinja");

#[derive(Debug, Subcommand)]
pub enum CodegenCommand {
    /// Write a client for a service's functions (timeouts, safe retries, a circuit breaker)
    Client {
        /// The service
        name: String,
        /// The client's language
        #[arg(long, default_value = "python", value_name = "LANG")]
        lang: String,
        /// Where to write it
        #[arg(long, default_value = ".", value_name = "DIR")]
        out: std::path::PathBuf,
        /// The environment whose functions are described
        #[arg(short, long, value_name = "ENV", default_value = "prod")]
        env: String,
    },
}

#[derive(Debug, Deserialize)]
pub struct Description {
    pub functions: Vec<Function>,
}

#[derive(Debug, Deserialize)]
pub struct Function {
    pub name: String,
    #[serde(default)]
    pub doc: String,
    #[serde(default)]
    pub params: Vec<Param>,
}

#[derive(Debug, Deserialize)]
pub struct Param {
    pub name: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

fn is_identifier(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `billing-api` → (`billing_api`, `BillingApiClient`).
pub fn names(service: &str) -> (String, String) {
    let snake = service.replace('-', "_");
    let class: String = service
        .split('-')
        .map(|part| {
            let mut c = part.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    (snake, format!("{class}Client"))
}

/// The python client's source.
pub fn python(service: &str, d: &Description) -> CliResult<String> {
    let (_, class_name) = names(service);
    let var = format!("{}_URL", service.to_ascii_uppercase().replace('-', "_"));
    let mut functions = Vec::new();
    for f in &d.functions {
        if !is_identifier(&f.name) || f.params.iter().any(|p| !is_identifier(&p.name)) {
            return Err(CliError::failed(
                format!(
                    "{service}'s function `{}` has a name python cannot call",
                    f.name
                ),
                None,
            ));
        }
        let timeout_arg = if f.params.iter().any(|p| p.name == "call_timeout") {
            "call_timeout_"
        } else {
            "call_timeout"
        };
        let params: Vec<serde_json::Value> = f
            .params
            .iter()
            .map(|p| {
                let kind = match p.kind.as_deref() {
                    Some(k @ ("int" | "float" | "str" | "bool" | "list" | "dict")) => Some(k),
                    _ => None,
                };
                serde_json::json!({ "name": p.name, "required": p.required, "type": kind })
            })
            .collect();
        // Required parameters first, as python wants them.
        let mut params = params;
        params.sort_by_key(|p| !p["required"].as_bool().unwrap_or(false));
        functions.push(serde_json::json!({
            "name": f.name,
            "doc": f.doc.replace('\\', "\\\\").replace("\"\"\"", "'''"),
            "params": params,
            "timeout_arg": timeout_arg,
        }));
    }
    let mut env = minijinja::Environment::new();
    env.set_keep_trailing_newline(true);
    env.add_template("client.py", PYTHON)
        .map_err(|e| CliError::failed(format!("the client template: {e}"), None))?;
    env.get_template("client.py")
        .and_then(|t| t.render(minijinja::context! { service, class_name, var, functions }))
        .map_err(|e| CliError::failed(format!("cannot write the client: {e}"), None))
}

pub fn run(printer: &Printer, context: Option<&str>, cmd: CodegenCommand) -> CliResult {
    let CodegenCommand::Client {
        name,
        lang,
        out,
        env,
    } = cmd;
    if lang != "python" {
        return Err(CliError::usage(
            format!("no client generator for `{lang}`"),
            "use --lang python (the one there is)",
        ));
    }
    let client = session::connect(printer, context)?;
    let description: Description = client.get(&format!(
        "/v1/services/{name}/functions?env={}",
        encode(&env)
    ))?;
    let source = python(&name, &description)?;
    let (snake, class_name) = names(&name);
    write(&out, &format!("{snake}_client.py"), &source)?;
    printer.status(
        "Wrote",
        format!(
            "{} ({class_name}: {} function{}); use it as `from {snake}_client import {class_name}`",
            out.join(format!("{snake}_client.py")).display(),
            description.functions.len(),
            if description.functions.len() == 1 {
                ""
            } else {
                "s"
            }
        ),
    );
    Ok(())
}

fn write(dir: &Path, file: &str, text: &str) -> CliResult {
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(dir.join(file), text))
        .map_err(|e| {
            CliError::failed(
                format!("cannot write {}: {e}", dir.join(file).display()),
                Some("check --out".into()),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_has_one_typed_method_per_function_with_optional_arguments_last() {
        let d: Description = serde_json::from_str(
            r#"{"functions": [
                {"name": "add", "doc": "The sum.", "params": [{"name": "a", "required": true, "type": "float"}, {"name": "b", "required": true, "type": "float"}]},
                {"name": "greet", "doc": "", "params": [{"name": "greeting", "required": false, "type": "str"}, {"name": "name", "required": true}]}
            ]}"#,
        )
        .unwrap();
        let py = python("billing-api", &d).unwrap();
        assert!(py.contains("class BillingApiClient:"), "{py}");
        assert!(py.contains("os.environ.get(\"BILLING_API_URL\")"), "{py}");
        assert!(
            py.contains("def add(self, a: float, b: float, *, call_timeout=None):"),
            "{py}"
        );
        assert!(
            py.contains("def greet(self, name, greeting: str = _UNSET, *, call_timeout=None):"),
            "{py}"
        );
        assert!(
            py.contains("return self._call(\"add\", {\"a\": a, \"b\": b}, call_timeout)"),
            "{py}"
        );
        assert_eq!(
            names("billing-api"),
            ("billing_api".into(), "BillingApiClient".into())
        );
        let bad: Description =
            serde_json::from_str(r#"{"functions": [{"name": "no-dash"}]}"#).unwrap();
        assert!(python("x", &bad).is_err());
    }
}
