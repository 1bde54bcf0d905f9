//! The AMQP adapter: consume this instance's queues into the hub, and publish HTTP events to
//! the exchange. A supervisor keeps one connection up, forever, with backoff.

mod delivery;
mod publisher;
mod session;
pub mod topology;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{ChannelSpec, Secret};
use crate::hub::Hub;
pub use delivery::{to_event, Rejection};
pub use publisher::{AmqpPublishError, AmqpPublisher};

/// AmqpSettings are the broker connection and topology settings.
#[derive(Clone, Debug)]
pub struct AmqpSettings {
    /// The broker URL (`amqp://` or `amqps://`), with credentials.
    pub url: Secret,
    /// The topic exchange producers publish to.
    pub exchange: String,
    /// Use the exchange as it is (it must exist) instead of declaring it.
    pub exchange_passive: bool,
    /// Names this instance's queues, so a restarted gateway finds them.
    pub instance_id: String,
    /// Unacknowledged deliveries the broker may send ahead (`basic.qos`).
    pub prefetch: u16,
    /// How long an instance's queues outlive it without a consumer.
    pub queue_expires: Duration,
    /// The served channels; empty: every channel, through one queue bound with `#`.
    pub channels: Vec<ChannelSpec>,
    /// The largest message body accepted.
    pub max_event_size: usize,
    /// The first delay before reconnecting; it doubles up to `reconnect_max`.
    pub reconnect_min: Duration,
    /// The longest delay between reconnection attempts.
    pub reconnect_max: Duration,
}

/// AmqpStatus is the consumer's state, for `/readyz` and `/stats`.
#[derive(Debug, Default)]
pub struct AmqpStatus {
    consuming: AtomicBool,
    reconnects: AtomicU64,
    consumed: AtomicU64,
    rejected: AtomicU64,
}

impl AmqpStatus {
    /// Is_consuming tells whether the gateway is connected and consuming now.
    pub fn is_consuming(&self) -> bool {
        self.consuming.load(Ordering::SeqCst)
    }

    /// Snapshot returns the figures shown in `/stats`.
    pub fn snapshot(&self) -> AmqpStats {
        AmqpStats {
            connected: self.is_consuming(),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            deliveries_consumed: self.consumed.load(Ordering::Relaxed),
            deliveries_rejected: self.rejected.load(Ordering::Relaxed),
        }
    }
}

/// AmqpStats is the AMQP part of `/stats`.
#[derive(Debug, Serialize)]
pub struct AmqpStats {
    /// Connected and consuming now.
    pub connected: bool,
    /// Connections re-established after a loss.
    pub reconnects: u64,
    /// Deliveries turned into events.
    pub deliveries_consumed: u64,
    /// Deliveries dropped as unusable (not UTF-8, too large, bad properties or routing key).
    pub deliveries_rejected: u64,
}

/// Amqp is the running adapter.
pub struct Amqp {
    status: Arc<AmqpStatus>,
    publisher: AmqpPublisher,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Amqp {
    /// Start runs the supervisor on `runtime`, which must outlive the HTTP server: lapin's I/O
    /// would otherwise find its runtime gone during shutdown.
    pub fn start(settings: AmqpSettings, hub: Hub, runtime: &Handle) -> Self {
        let status = Arc::new(AmqpStatus::default());
        let publisher = AmqpPublisher::new(&settings.exchange, settings.max_event_size);
        let (stop, stopped) = watch::channel(false);
        let supervisor = session::Supervisor {
            settings,
            hub,
            status: Arc::clone(&status),
            publisher: publisher.clone(),
            stop: stopped,
            consumed_before: false,
        };
        let task = runtime.spawn(supervisor.run());
        Self {
            status,
            publisher,
            stop,
            task,
        }
    }

    /// Status is the consumer's state.
    pub fn status(&self) -> Arc<AmqpStatus> {
        Arc::clone(&self.status)
    }

    /// Publisher publishes to the exchange.
    pub fn publisher(&self) -> AmqpPublisher {
        self.publisher.clone()
    }

    /// Shutdown cancels the consumers, lets the delivery in hand finish (the broker requeues
    /// those not yet acknowledged), closes the connection, and waits at most `timeout`.
    pub async fn shutdown(self, timeout: Duration) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(timeout, self.task).await.is_err() {
            tracing::warn!(
                "AMQP consumer did not stop in time; the broker requeues what was unacknowledged"
            );
        }
    }
}

/// Mask_url hides the password of a URL, for logs.
pub fn mask_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme_end], &rest[at..])
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::mask_url;

    #[test]
    fn urls_are_logged_without_their_password() {
        assert_eq!(
            mask_url("amqps://gw:s3cret@broker:5671/%2f"),
            "amqps://gw:***@broker:5671/%2f"
        );
        assert_eq!(mask_url("amqp://broker/vhost"), "amqp://broker/vhost");
    }
}
