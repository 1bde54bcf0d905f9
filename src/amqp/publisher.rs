//! HTTP publishes with RabbitMQ on: the event goes to the exchange with publisher confirms, and
//! every gateway instance then delivers it through its own queue (and [`crate::hub::Hub::publish`]).

use std::sync::Arc;

use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Channel, Confirmation};
use parking_lot::RwLock;

use crate::event::Event;

/// AmqpPublishError is why the broker did not take an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmqpPublishError {
    /// The gateway is not connected to the broker now.
    #[error("not connected to RabbitMQ; try again shortly")]
    Disconnected,
    /// The broker refused the message (nack) or the connection failed before it confirmed.
    #[error("RabbitMQ did not confirm the event: {0}")]
    NotConfirmed(String),
    /// No queue is bound for the routing key, so no gateway would deliver it.
    #[error("RabbitMQ routed the event to no queue: no binding matches routing key {0:?}")]
    Unroutable(String),
    /// The event is larger than the gateway's consumer takes from the broker.
    #[error("event data is {size} bytes, more than --max-event-size ({max})")]
    TooLarge {
        /// The event data's size.
        size: usize,
        /// The limit.
        max: usize,
    },
}

/// AmqpPublisher publishes events to the exchange through the current connection's
/// confirm-mode channel; it is cheap to clone.
#[derive(Clone)]
pub struct AmqpPublisher {
    channel: Arc<RwLock<Option<Channel>>>,
    exchange: Arc<str>,
    max_event_size: usize,
}

impl AmqpPublisher {
    /// New makes a publisher to `exchange` for events of at most `max_event_size` bytes, the
    /// limit the consumer applies to what comes back from the broker.
    pub(crate) fn new(exchange: &str, max_event_size: usize) -> Self {
        Self {
            channel: Arc::new(RwLock::new(None)),
            exchange: Arc::from(exchange),
            max_event_size,
        }
    }

    /// Set_channel installs the channel of a new connection, or removes it when disconnected.
    pub(crate) fn set_channel(&self, channel: Option<Channel>) {
        *self.channel.write() = channel;
    }

    /// Publish sends the event (routing key = channel, `message_id` = id, `type` = event type,
    /// persistent) and returns once the broker confirmed it. An event the consumer would
    /// reject as too large is refused here, before the broker takes it.
    pub async fn publish(&self, event: &Event) -> Result<(), AmqpPublishError> {
        let size = event.data.len();
        if size > self.max_event_size {
            let max = self.max_event_size;
            return Err(AmqpPublishError::TooLarge { size, max });
        }
        let channel = self
            .channel
            .read()
            .clone()
            .ok_or(AmqpPublishError::Disconnected)?;
        let mut properties = BasicProperties::default()
            .with_message_id(event.id.as_str().into())
            .with_content_type("text/plain; charset=utf-8".into())
            .with_delivery_mode(2);
        if let Some(kind) = &event.kind {
            properties = properties.with_type(kind.as_str().into());
        }
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let not_confirmed = |e: lapin::Error| AmqpPublishError::NotConfirmed(e.to_string());
        let confirm = channel
            .basic_publish(
                self.exchange.as_ref().into(),
                event.channel.as_str().into(),
                options,
                event.data.as_bytes(),
                properties,
            )
            .await
            .map_err(not_confirmed)?
            .await
            .map_err(not_confirmed)?;
        match confirm {
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
            Confirmation::Ack(Some(_)) => {
                Err(AmqpPublishError::Unroutable(event.channel.to_string()))
            }
            Confirmation::Nack(_) => Err(AmqpPublishError::NotConfirmed(
                "the broker nacked it".into(),
            )),
        }
    }
}
