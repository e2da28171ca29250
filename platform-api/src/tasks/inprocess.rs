//! In-process actions: handlers inside the daemon, launched without a transport. The built-in
//! ones are `faas.echo` (its output is its input) and the two of the launcher task
//! (`faas.task.launch`, `faas.task.start`); an embedder may register more.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use faas_spec::api::tasks::{Action, Launch, Transport};
use serde_json::{Value, json};

use super::{Outcome, launcher};
use crate::Platform;

pub type Handler = Arc<
    dyn Fn(Arc<Platform>, Launch) -> Pin<Box<dyn Future<Output = Outcome> + Send>> + Send + Sync,
>;

struct Entry {
    handler: Handler,
    input_schema: Value,
    output_schema: Value,
}

/// The in-process actions, by name.
pub struct Registry {
    entries: RwLock<BTreeMap<String, Entry>>,
}

impl Registry {
    pub fn with_builtins() -> Self {
        let r = Self {
            entries: RwLock::default(),
        };
        r.register("faas.echo", json!({}), json!({}), |_, launch| async move {
            Ok(launch.input)
        });
        r.register(
            "faas.task.launch",
            launcher::launch_input_schema(),
            json!({"type": "object", "required": ["run"], "properties": {"run": {"type": "string"}}}),
            |p, launch| async move { launcher::launch_task(&p, &launch) },
        );
        r.register(
            "faas.task.start",
            json!({"type": "object", "required": ["run"], "properties": {"run": {"type": "string"}}}),
            json!({"type": "object", "required": ["run"], "properties": {"run": {"type": "string"}}}),
            |p, launch| async move { launcher::start_task(&p, &launch) },
        );
        r
    }

    /// Adds (or replaces) an in-process action.
    pub fn register<F, Fut>(&self, name: &str, input_schema: Value, output_schema: Value, f: F)
    where
        F: Fn(Arc<Platform>, Launch) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |p, l| Box::pin(f(p, l)));
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                name.to_owned(),
                Entry {
                    handler,
                    input_schema,
                    output_schema,
                },
            );
    }

    pub fn get(&self, name: &str) -> Option<Handler> {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .map(|e| e.handler.clone())
    }

    /// An in-process action's input and output schemas.
    pub fn schemas(&self, name: &str) -> Option<(Value, Value)> {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .map(|e| (e.input_schema.clone(), e.output_schema.clone()))
    }

    /// The in-process actions as `GET /v1/actions` lists them (always available).
    pub fn actions(&self) -> Vec<Action> {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(name, e)| Action {
                name: name.clone(),
                tenant: "*".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                transport: Transport::Inprocess,
                address: "faas-platform".into(),
                state: "available".into(),
                workers: 1,
                last_beat: crate::store::rfc3339_ms(crate::meter::now_us()),
                input_schema: e.input_schema.clone(),
                output_schema: e.output_schema.clone(),
            })
            .collect()
    }
}
