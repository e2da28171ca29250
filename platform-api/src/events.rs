//! Live deployment steps: each persisted step is also broadcast, so `…/events` can replay the
//! history from the store and then follow without a gap.

use std::collections::HashMap;
use std::sync::Mutex;

use faas_spec::api::Step;
use tokio::sync::broadcast;

#[derive(Default)]
pub struct Events {
    channels: Mutex<HashMap<String, broadcast::Sender<Step>>>,
}

impl Events {
    pub fn subscribe(&self, deployment: &str) -> broadcast::Receiver<Step> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        channels
            .entry(deployment.to_owned())
            .or_insert_with(|| broadcast::channel(256).0)
            .subscribe()
    }

    pub fn publish(&self, deployment: &str, step: &Step) {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = channels.get(deployment) {
            let _ = tx.send(step.clone());
        }
        if step.state.is_terminal() {
            channels.remove(deployment);
        }
    }
}
