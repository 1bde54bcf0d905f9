//! The broker resources a gateway instance uses: the exchange, and one durable queue per
//! instance and channel (or one per instance bound with `#`), named from the instance id so that
//! a restarted gateway finds its queue and what was published while it was away.

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

use crate::channel::ChannelName;
use crate::config::ChannelSpec;

/// The prefix of every queue the gateway declares.
pub const QUEUE_PREFIX: &str = "sse-gateway";

/// Binding is one queue of this instance and what it is bound with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The queue's name.
    pub queue: String,
    /// The binding key on the exchange.
    pub key: String,
    /// The channel its deliveries go to; `None` when the routing key names the channel.
    pub channel: Option<ChannelName>,
}

/// Bindings lists this instance's queues: one bound with `#` when every channel is served, else
/// one per listed channel, bound with its binding key (the channel name by default).
pub fn bindings(instance_id: &str, channels: &[ChannelSpec]) -> Vec<Binding> {
    if channels.is_empty() {
        return vec![Binding {
            queue: format!("{QUEUE_PREFIX}.{instance_id}"),
            key: "#".to_string(),
            channel: None,
        }];
    }
    channels
        .iter()
        .map(|spec| Binding {
            queue: format!("{QUEUE_PREFIX}.{instance_id}.{}", spec.name),
            key: spec
                .binding_key
                .clone()
                .unwrap_or_else(|| spec.name.to_string()),
            channel: Some(spec.name.clone()),
        })
        .collect()
}

/// Declare_exchange makes sure the topic exchange exists: declared durable, or, when
/// `passive`, only checked (for brokers whose definitions own it). Producers declare it the
/// same way, so whichever side starts first, both agree on its kind.
pub async fn declare_exchange(
    channel: &Channel,
    exchange: &str,
    passive: bool,
) -> lapin::Result<()> {
    let options = ExchangeDeclareOptions {
        passive,
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            options,
            FieldTable::default(),
        )
        .await
}

/// Declare makes sure the exchange (durable topic, or checked only when `passive`) and every
/// queue and binding exist. Queues are durable, so RabbitMQ 4 accepts them and they outlive a
/// broker restart, and expire after `expires` without a consumer, when an instance is gone.
pub async fn declare(
    channel: &Channel,
    exchange: &str,
    passive: bool,
    expires: Duration,
    bindings: &[Binding],
) -> lapin::Result<()> {
    declare_exchange(channel, exchange, passive).await?;
    let mut arguments = FieldTable::default();
    let expires_ms = i64::try_from(expires.as_millis())
        .unwrap_or(i64::MAX)
        .max(1);
    arguments.insert("x-expires".into(), AMQPValue::LongLongInt(expires_ms));
    for binding in bindings {
        let options = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(binding.queue.as_str().into(), options, arguments.clone())
            .await?;
        channel
            .queue_bind(
                binding.queue.as_str().into(),
                exchange.into(),
                binding.key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_channel_list_one_queue_per_instance_is_bound_with_hash() {
        let b = bindings("web-1", &[]);
        assert_eq!(
            b,
            vec![Binding {
                queue: "sse-gateway.web-1".into(),
                key: "#".into(),
                channel: None
            }]
        );
    }

    #[test]
    fn listed_channels_get_a_queue_each_bound_with_their_key() {
        let specs: Vec<ChannelSpec> = ["news", "eu=orders.eu.#"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let b = bindings("web-1", &specs);
        assert_eq!(b[0].queue, "sse-gateway.web-1.news");
        assert_eq!(b[0].key, "news");
        assert_eq!(b[1].queue, "sse-gateway.web-1.eu");
        assert_eq!(b[1].key, "orders.eu.#");
        assert_eq!(b[1].channel.as_ref().map(|c| c.as_str()), Some("eu"));
    }
}
