//! Where an AMQP delivery becomes an event: `message_id` is the SSE `id:`, `type` the `event:`,
//! the body the data (UTF-8 text), and the channel is the queue's or the routing key.

use crate::channel::{ChannelName, ChannelNameError};
use crate::event::{Event, EventFieldError};

/// Rejection is why a delivery cannot become an event; such a delivery is dropped
/// (nack without requeue), logged and counted, and the consumer goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The body is not UTF-8 text.
    #[error("body is not valid UTF-8")]
    NotUtf8,
    /// The body is larger than the maximum event size.
    #[error("body is {size} bytes, more than the {max}-byte maximum event size")]
    TooLarge {
        /// The body's size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The routing key is not a valid channel name (wildcard mode).
    #[error("routing key is not a channel name: {0}")]
    BadRoutingKey(ChannelNameError),
    /// `message_id` or `type` is unusable.
    #[error("message property: {0}")]
    BadProperty(EventFieldError),
}

/// To_event decodes a delivery. `channel` is the channel of the queue it came from, or `None`
/// when one queue serves every channel and the routing key names it.
pub fn to_event(
    channel: Option<&ChannelName>,
    routing_key: &str,
    message_id: Option<&str>,
    kind: Option<&str>,
    body: Vec<u8>,
    max_size: usize,
) -> Result<Event, Rejection> {
    if body.len() > max_size {
        return Err(Rejection::TooLarge {
            size: body.len(),
            max: max_size,
        });
    }
    let channel = match channel {
        Some(channel) => channel.clone(),
        None => ChannelName::parse(routing_key).map_err(Rejection::BadRoutingKey)?,
    };
    let data = String::from_utf8(body).map_err(|_| Rejection::NotUtf8)?;
    Event::new(channel, message_id, kind, data).map_err(Rejection::BadProperty)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1024;

    #[test]
    fn properties_become_id_and_type_and_the_routing_key_the_channel() {
        let event = to_event(
            None,
            "news",
            Some("m-1"),
            Some("headline"),
            b"hi".to_vec(),
            MAX,
        )
        .unwrap();
        assert_eq!(event.channel.as_str(), "news");
        assert_eq!(event.id.as_str(), "m-1");
        assert_eq!(event.kind.as_ref().map(|k| k.as_str()), Some("headline"));
        assert_eq!(event.data, "hi");
    }

    #[test]
    fn a_queue_channel_wins_over_the_routing_key_and_missing_properties_are_filled() {
        let channel = ChannelName::parse("eu").unwrap();
        let event = to_event(
            Some(&channel),
            "orders.eu.created",
            None,
            None,
            Vec::new(),
            MAX,
        )
        .unwrap();
        assert_eq!(event.channel.as_str(), "eu");
        assert!(!event.id.as_str().is_empty(), "an id is assigned");
        assert!(event.kind.is_none());
    }

    #[test]
    fn bad_deliveries_are_rejected_with_a_reason() {
        let reject = |key: &str, id: Option<&str>, kind: Option<&str>, body: &[u8]| {
            to_event(None, key, id, kind, body.to_vec(), MAX).unwrap_err()
        };
        assert_eq!(reject("c", None, None, b"\xff\xfe"), Rejection::NotUtf8);
        assert!(matches!(
            reject("a b", None, None, b"x"),
            Rejection::BadRoutingKey(_)
        ));
        assert!(matches!(
            reject("c", Some("a\nb"), None, b"x"),
            Rejection::BadProperty(_)
        ));
        assert!(matches!(
            reject("c", None, Some("a\0b"), b"x"),
            Rejection::BadProperty(_)
        ));
        assert!(matches!(
            reject("c", None, None, &[b'x'; MAX + 1]),
            Rejection::TooLarge { .. }
        ));
    }
}
