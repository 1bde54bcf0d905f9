//! The AMQP side: publishing events to RabbitMQ as the gateway consumes them (topic exchange,
//! routing key = channel, `message_id` set, publisher confirms), and a bare consumer that shows
//! what the broker alone delivers.

use std::sync::Arc;

use anyhow::{bail, Context};
use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::sync::watch;

use sse_gateway::amqp::topology::declare_exchange;

use crate::payload::now_ns;
use crate::progress::Progress;
use crate::subscriber::Outcome;
use crate::tally::Tally;

/// AmqpPublisher publishes with confirms on one channel; clones share it.
#[derive(Clone)]
pub struct AmqpPublisher {
    channel: Channel,
    exchange: String,
    run: String,
    _connection: Arc<Connection>,
}

impl AmqpPublisher {
    /// Connect opens the broker connection, makes sure the exchange exists and turns on
    /// publisher confirms.
    pub async fn connect(url: &str, exchange: &str) -> anyhow::Result<Self> {
        let connection = Connection::connect(url, ConnectionProperties::default())
            .await
            .context("connecting to the broker")?;
        ensure_exchange(&connection, exchange).await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .context("enabling publisher confirms")?;
        Ok(Self {
            channel,
            exchange: exchange.to_string(),
            run: now_ns().to_string(),
            _connection: Arc::new(connection),
        })
    }

    /// Publish sends event `seq` of `channel` and waits for the broker's confirm; an event no
    /// queue is bound for (nobody consumes the channel) is returned by the broker and fails.
    pub async fn publish(&self, channel: &str, seq: u64, data: &str) -> anyhow::Result<()> {
        let properties = BasicProperties::default()
            .with_message_id(format!("{}-{channel}-{seq}", self.run).into())
            .with_content_type("text/plain".into());
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let confirm = self
            .channel
            .basic_publish(
                self.exchange.as_str().into(),
                channel.into(),
                options,
                data.as_bytes(),
                properties,
            )
            .await?
            .await?;
        if !confirm.is_ack() {
            bail!("the broker refused the message (nack)");
        }
        if confirm.take_message().is_some() {
            bail!("no queue is bound for routing key {channel:?}: is the gateway consuming?");
        }
        Ok(())
    }
}

/// Ensure_exchange checks that the topic exchange exists (as the gateway declared it), and
/// declares it durable when it does not.
async fn ensure_exchange(connection: &Connection, exchange: &str) -> anyhow::Result<()> {
    // A failed passive declare closes its channel, so each attempt gets a fresh one.
    let probe = connection.create_channel().await?;
    if declare_exchange(&probe, exchange, true).await.is_ok() {
        return Ok(());
    }
    let channel = connection.create_channel().await?;
    declare_exchange(&channel, exchange, false)
        .await
        .with_context(|| format!("declaring exchange {exchange}"))
}

/// Consumer is a bare AMQP consumer: a private queue bound to the exchange for some channels.
pub struct Consumer {
    consumer: lapin::Consumer,
    _connection: Connection,
}

impl Consumer {
    /// Connect declares a private queue, binds it for `channels` and starts consuming
    /// (auto-ack, the broker's fastest mode).
    pub async fn connect(url: &str, exchange: &str, channels: &[String]) -> anyhow::Result<Self> {
        let connection = Connection::connect(url, ConnectionProperties::default())
            .await
            .context("connecting to the broker")?;
        ensure_exchange(&connection, exchange).await?;
        let channel = connection.create_channel().await?;
        let private = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..QueueDeclareOptions::default()
        };
        let queue = channel
            .queue_declare("".into(), private, FieldTable::default())
            .await
            .context("declaring a queue")?;
        for name in channels {
            channel
                .queue_bind(
                    queue.name().clone(),
                    exchange.into(),
                    name.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .with_context(|| format!("binding the queue for {name}"))?;
        }
        let auto_ack = BasicConsumeOptions {
            no_ack: true,
            ..BasicConsumeOptions::default()
        };
        let consumer = channel
            .basic_consume(
                queue.name().clone(),
                "".into(),
                auto_ack,
                FieldTable::default(),
            )
            .await
            .context("starting the consumer")?;
        Ok(Self {
            consumer,
            _connection: connection,
        })
    }

    /// Listen tallies deliveries until `stop` changes or the broker ends the consumer.
    pub async fn listen(
        mut self,
        mut tally: Tally,
        progress: Arc<Progress>,
        mut stop: watch::Receiver<bool>,
    ) -> Outcome {
        if tally.is_complete() {
            progress.subscriber_complete();
        }
        let (closed_early, error) = loop {
            let delivery = tokio::select! {
                biased;
                _ = stop.changed() => break (false, None),
                delivery = self.consumer.next() => delivery,
            };
            match delivery {
                Some(Ok(delivery)) => {
                    if tally.record(&delivery.data, now_ns()) {
                        progress.subscriber_complete();
                    }
                }
                Some(Err(e)) => break (true, Some(e.to_string())),
                None => break (true, None),
            }
        };
        Outcome {
            tally,
            connected: true,
            closed_early,
            error,
        }
    }
}
