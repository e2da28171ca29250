//! Over RabbitMQ: each action's launches go to its durable queue (persistent messages, publisher
//! confirms: a launch counts as sent once the broker has it); results come back on this
//! platform's own durable results queue, and each is acknowledged only after it is stored.
//! A worker acknowledges its launch after its result is confirmed, so a worker that dies
//! leaves its launch to the broker, which delivers it again.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use faas_spec::api::tasks::{Launch, LaunchResult, outcome};
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

use super::record_result;
use crate::Platform;

/// The broker launches go through, if the platform has one.
pub struct Broker {
    url: Option<String>,
    publisher: tokio::sync::Mutex<Option<Publisher>>,
    results: OnceLock<String>,
}

struct Publisher {
    _conn: Connection,
    channel: Channel,
    declared: HashSet<String>,
}

async fn connect(url: &str, name: &str) -> Result<Connection, String> {
    let props = ConnectionProperties::default().with_connection_name(name.into());
    tokio::time::timeout(Duration::from_secs(10), Connection::connect(url, props))
        .await
        .map_err(|_| "the broker did not answer in 10 s".to_owned())?
        .map_err(|e| e.to_string())
}

async fn declare(channel: &Channel, queue: &str) -> Result<(), String> {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map(drop)
        .map_err(|e| format!("cannot declare the queue `{queue}`: {e}"))
}

impl Publisher {
    async fn open(url: &str) -> Result<Self, String> {
        let conn = connect(url, "faas-platform launches").await?;
        let channel = conn.create_channel().await.map_err(|e| e.to_string())?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        Ok(Self {
            _conn: conn,
            channel,
            declared: HashSet::new(),
        })
    }

    async fn send(&mut self, queue: &str, launch: &Launch, reply_to: &str) -> Result<(), String> {
        if !self.declared.contains(queue) {
            declare(&self.channel, queue).await?;
            self.declared.insert(queue.to_owned());
        }
        let body = serde_json::to_vec(launch).map_err(|e| e.to_string())?;
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(launch.id.as_str().into())
            .with_reply_to(reply_to.into());
        let confirm = self
            .channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                &body,
                properties,
            )
            .await
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        if confirm.is_ack() {
            Ok(())
        } else {
            Err(format!("the broker refused the launch for `{queue}`"))
        }
    }
}

impl Broker {
    pub fn new(url: Option<String>) -> Self {
        Self {
            url,
            publisher: tokio::sync::Mutex::new(None),
            results: OnceLock::new(),
        }
    }

    pub fn configured(&self) -> bool {
        self.url.is_some()
    }

    /// This platform's results queue: `faas.results.<platform id>`.
    pub fn results_queue(&self, p: &Platform) -> String {
        self.results
            .get_or_init(|| {
                let id = p
                    .store
                    .meta("platform_id")
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| "local".into());
                format!("faas.results.{id}")
            })
            .clone()
    }

    /// Publishes a launch to an action's queue and waits for the broker's confirm; one
    /// reconnection is tried when the connection was lost.
    pub async fn publish(
        &self,
        p: &Platform,
        queue: &str,
        mut launch: Launch,
    ) -> Result<(), String> {
        let Some(url) = &self.url else {
            return Err("this platform has no RabbitMQ for task launches".into());
        };
        let reply_to = self.results_queue(p);
        launch.reply_to = Some(reply_to.clone());
        let mut guard = self.publisher.lock().await;
        let mut last = String::new();
        for _ in 0..2 {
            if guard.is_none() {
                *guard = Some(Publisher::open(url).await?);
            }
            let Some(publisher) = guard.as_mut() else {
                continue;
            };
            match publisher.send(queue, &launch, &reply_to).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    last = e;
                    *guard = None;
                }
            }
        }
        Err(last)
    }
}

/// Consumes this platform's results queue for as long as the daemon runs, reconnecting after
/// a lost connection.
pub async fn consume_results(p: Arc<Platform>) {
    let Some(url) = p.tasks.broker.url.clone() else {
        return;
    };
    let queue = p.tasks.broker.results_queue(&p);
    let mut wait = Duration::from_millis(200);
    loop {
        match consume_once(&p, &url, &queue).await {
            Ok(()) => wait = Duration::from_millis(200),
            Err(e) => {
                tracing::warn!(queue = %queue, "task results: {e}; connecting again in {wait:?}");
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
        tokio::time::sleep(wait).await;
    }
}

async fn consume_once(p: &Arc<Platform>, url: &str, queue: &str) -> Result<(), String> {
    let conn = connect(url, "faas-platform results").await?;
    let channel = conn.create_channel().await.map_err(|e| e.to_string())?;
    declare(&channel, queue).await?;
    channel
        .basic_qos(256, BasicQosOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "faas-platform".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(queue, "consuming task results");
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery.map_err(|e| e.to_string())?;
        let stored = match serde_json::from_slice::<LaunchResult>(&delivery.data) {
            Ok(result) => store(p, result).await,
            Err(e) => {
                tracing::warn!("a message on the results queue is not a result ({e}); dropped");
                Ok(())
            }
        };
        match stored {
            Ok(()) => {
                delivery
                    .ack(BasicAckOptions::default())
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Err(e) => {
                tracing::warn!("cannot store a result: {e}; the broker keeps it");
                delivery
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                // The store is failing: give it a moment before the broker delivers again.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    Err("the broker closed the consumer".into())
}

/// A result from the queue: dropped if it does not prove it holds the launch; stored (or found
/// stale) otherwise. Err only when the store could not be written.
async fn store(p: &Arc<Platform>, result: LaunchResult) -> Result<(), String> {
    let Some(launch) = result.launch.clone() else {
        tracing::warn!("a result without its launch id; dropped");
        return Ok(());
    };
    if p.tasks.token(p, &launch) != result.token {
        tracing::warn!(launch = %launch, "a result with a wrong token; dropped");
        return Ok(());
    }
    let outcome = outcome(result.output, result.error)
        .unwrap_or_else(|| Err("the worker's result has neither `output` nor `error`".into()));
    record_result(p, &launch, outcome, result.worker.as_deref())
        .await
        .map(drop)
}
