//! Command-line and environment configuration, with every default named.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;

use crate::amqp::{mask_url, AmqpSettings};
use crate::channel::{ChannelName, ChannelNameError};
use crate::hub::{self, HubSettings};
use crate::subscriber::BodySettings;

/// The address served when none is given.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// The largest publish body accepted, in bytes.
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;
/// How long a stream may stay silent before a heartbeat comment.
pub const DEFAULT_HEARTBEAT: &str = "15s";
/// The reconnection delay sent to browsers in `retry:`.
pub const DEFAULT_RETRY: &str = "3s";
/// The most extra random delay added to the final `retry:` sent at shutdown.
pub const DEFAULT_SHUTDOWN_RETRY_SPREAD: &str = "5s";
/// How long shutdown waits for connections to finish.
pub const DEFAULT_SHUTDOWN_TIMEOUT: &str = "10s";
/// The largest event (message body) accepted from RabbitMQ, in bytes.
pub const DEFAULT_MAX_EVENT_SIZE: usize = 64 * 1024;
/// The topic exchange consumed and published to.
pub const DEFAULT_EXCHANGE: &str = "sse";
/// Unacknowledged deliveries RabbitMQ may send ahead.
pub const DEFAULT_PREFETCH: u16 = 256;
/// How long an instance's queues outlive it, keeping what is published meanwhile.
pub const DEFAULT_QUEUE_EXPIRES: &str = "1h";
/// The first reconnection delay; it doubles on each failure.
pub const DEFAULT_AMQP_RECONNECT_MIN: &str = "200ms";
/// The longest reconnection delay.
pub const DEFAULT_AMQP_RECONNECT_MAX: &str = "10s";
/// File descriptors kept for everything but subscriber connections when the connection limit is
/// derived from the open-file limit.
pub const FD_RESERVE: u64 = 256;

/// Config is the gateway's configuration: every option is a flag and an environment variable.
#[derive(Parser, Clone)]
#[command(
    name = "sse-gateway",
    version,
    about = "Fan RabbitMQ messages out to browsers over Server-Sent Events"
)]
pub struct Config {
    /// Address and port to serve HTTP on.
    #[arg(long, env = "SSE_GATEWAY_BIND", default_value = DEFAULT_BIND)]
    pub bind: SocketAddr,

    /// Serve only these channels (repeatable, or comma-separated); any other name is 404. Without
    /// it, every valid channel name is served. `NAME=BINDING_KEY` sets the AMQP binding key.
    #[arg(long = "channel", env = "SSE_GATEWAY_CHANNELS", value_delimiter = ',')]
    pub channels: Vec<ChannelSpec>,

    /// Most live channels at once.
    #[arg(long, env = "SSE_GATEWAY_MAX_CHANNELS", default_value_t = hub::DEFAULT_MAX_CHANNELS)]
    pub max_channels: usize,

    /// Events retained per channel for resume (`Last-Event-ID`).
    #[arg(long, env = "SSE_GATEWAY_HISTORY_SIZE", default_value_t = hub::DEFAULT_HISTORY_LEN)]
    pub history_size: usize,

    /// How long an event is retained for resume.
    #[arg(long, env = "SSE_GATEWAY_HISTORY_MAX_AGE", default_value = "1h", value_parser = humantime::parse_duration)]
    pub history_max_age: Duration,

    /// Heartbeat comment interval on idle streams.
    #[arg(long, env = "SSE_GATEWAY_HEARTBEAT", default_value = DEFAULT_HEARTBEAT, value_parser = humantime::parse_duration)]
    pub heartbeat: Duration,

    /// Reconnection delay sent to browsers (`retry:`).
    #[arg(long, env = "SSE_GATEWAY_RETRY", default_value = DEFAULT_RETRY, value_parser = humantime::parse_duration)]
    pub retry: Duration,

    /// Frames a subscriber may fall behind before it is disconnected (it then resumes from history).
    #[arg(long, env = "SSE_GATEWAY_SUBSCRIBER_QUEUE", default_value_t = hub::DEFAULT_OUTBOX_CAPACITY)]
    pub subscriber_queue: usize,

    /// Most open subscriber connections; past it, 503. Default: the open-file limit less 256.
    #[arg(long, env = "SSE_GATEWAY_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Most channels one connection may subscribe to.
    #[arg(long, env = "SSE_GATEWAY_MAX_CHANNELS_PER_CONNECTION", default_value_t = hub::DEFAULT_MAX_CHANNELS_PER_CONNECTION)]
    pub max_channels_per_connection: usize,

    /// Key that publishers must present (`Authorization: Bearer KEY`). Without it, only loopback
    /// clients may publish.
    #[arg(long, env = "SSE_GATEWAY_PUBLISH_KEY", hide_env_values = true)]
    pub publish_key: Option<Secret>,

    /// Largest publish body, in bytes; past it, 413.
    #[arg(long, env = "SSE_GATEWAY_MAX_BODY", default_value_t = DEFAULT_MAX_BODY)]
    pub max_body: usize,

    /// HTTP worker threads. Default: one per physical core.
    #[arg(long, env = "SSE_GATEWAY_WORKERS")]
    pub workers: Option<usize>,

    /// Threads running the channels' broadcasters.
    #[arg(long, env = "SSE_GATEWAY_HUB_THREADS", default_value_t = 1)]
    pub hub_threads: usize,

    /// Random extra delay, at most this, added to the final `retry:` sent at shutdown.
    #[arg(long, env = "SSE_GATEWAY_SHUTDOWN_RETRY_SPREAD", default_value = DEFAULT_SHUTDOWN_RETRY_SPREAD, value_parser = humantime::parse_duration)]
    pub shutdown_retry_spread: Duration,

    /// How long shutdown waits for connections to close.
    #[arg(long, env = "SSE_GATEWAY_SHUTDOWN_TIMEOUT", default_value = DEFAULT_SHUTDOWN_TIMEOUT, value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    /// RabbitMQ URL (`amqp://user:pass@host:5672/vhost` or `amqps://…`). Without it, the
    /// in-process hub only.
    #[arg(long, env = "SSE_GATEWAY_AMQP_URL", hide_env_values = true)]
    pub amqp_url: Option<Secret>,

    /// Topic exchange to consume from and publish to.
    #[arg(long, env = "SSE_GATEWAY_EXCHANGE", default_value = DEFAULT_EXCHANGE)]
    pub exchange: String,

    /// Use the exchange as it is (it must exist, e.g. from the broker's definitions) instead of
    /// declaring it.
    #[arg(long, env = "SSE_GATEWAY_EXCHANGE_PASSIVE")]
    pub exchange_passive: bool,

    /// Names this instance's queues (`sse-gateway.ID[.CHANNEL]`); a restart with the same id
    /// receives what was published while it was down. Default: the host name.
    #[arg(long, env = "SSE_GATEWAY_INSTANCE_ID")]
    pub instance_id: Option<String>,

    /// Unacknowledged deliveries RabbitMQ may send ahead (`basic.qos`).
    #[arg(long, env = "SSE_GATEWAY_PREFETCH", default_value_t = DEFAULT_PREFETCH)]
    pub prefetch: u16,

    /// How long this instance's queues outlive it without a consumer (`x-expires`).
    #[arg(long, env = "SSE_GATEWAY_QUEUE_EXPIRES", default_value = DEFAULT_QUEUE_EXPIRES, value_parser = humantime::parse_duration)]
    pub queue_expires: Duration,

    /// Largest message body accepted from RabbitMQ, in bytes; larger ones are rejected.
    #[arg(long, env = "SSE_GATEWAY_MAX_EVENT_SIZE", default_value_t = DEFAULT_MAX_EVENT_SIZE)]
    pub max_event_size: usize,

    /// First delay before reconnecting to RabbitMQ; it doubles on each failure.
    #[arg(long, env = "SSE_GATEWAY_AMQP_RECONNECT_MIN", default_value = DEFAULT_AMQP_RECONNECT_MIN, value_parser = humantime::parse_duration)]
    pub amqp_reconnect_min: Duration,

    /// Longest delay between reconnection attempts (they go on forever).
    #[arg(long, env = "SSE_GATEWAY_AMQP_RECONNECT_MAX", default_value = DEFAULT_AMQP_RECONNECT_MAX, value_parser = humantime::parse_duration)]
    pub amqp_reconnect_max: Duration,

    /// Do not serve the demo page at `/` (it is then the JSON 404 of any unknown path).
    #[arg(long, env = "SSE_GATEWAY_NO_DEMO")]
    pub no_demo: bool,
}

impl Config {
    /// Hub_settings are the hub's limits; `open_files` is the process's open-file limit, from
    /// which the connection limit is derived when none is given.
    pub fn hub_settings(&self, open_files: u64) -> HubSettings {
        let derived = open_files.saturating_sub(FD_RESERVE).max(1);
        let allowed = (!self.channels.is_empty()).then(|| {
            self.channels
                .iter()
                .map(|c| c.name.clone())
                .collect::<HashSet<_>>()
        });
        HubSettings {
            history_len: self.history_size,
            history_max_age: self.history_max_age,
            max_channels: self.max_channels,
            allowed_channels: allowed,
            outbox_capacity: self.subscriber_queue,
            max_connections: self
                .max_connections
                .unwrap_or(usize::try_from(derived).unwrap_or(usize::MAX)),
            max_channels_per_connection: self.max_channels_per_connection,
        }
    }

    /// Amqp_settings are the broker settings, when a broker URL is configured.
    pub fn amqp_settings(&self) -> Option<AmqpSettings> {
        let url = self.amqp_url.clone()?;
        Some(AmqpSettings {
            url,
            exchange: self.exchange.clone(),
            exchange_passive: self.exchange_passive,
            instance_id: self.instance_id.clone().unwrap_or_else(default_instance_id),
            prefetch: self.prefetch.max(1),
            queue_expires: self.queue_expires,
            channels: self.channels.clone(),
            max_event_size: self.max_event_size,
            reconnect_min: self.amqp_reconnect_min,
            reconnect_max: self.amqp_reconnect_max.max(self.amqp_reconnect_min),
        })
    }

    /// Body_settings are the stream settings of subscriber responses.
    pub fn body_settings(&self) -> BodySettings {
        BodySettings {
            retry: self.retry,
            heartbeat: self.heartbeat,
            shutdown_retry_spread: self.shutdown_retry_spread,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("channels", &self.channels)
            .field("max_channels", &self.max_channels)
            .field("history_size", &self.history_size)
            .field(
                "history_max_age",
                &humantime::format_duration(self.history_max_age).to_string(),
            )
            .field(
                "heartbeat",
                &humantime::format_duration(self.heartbeat).to_string(),
            )
            .field("retry", &humantime::format_duration(self.retry).to_string())
            .field("subscriber_queue", &self.subscriber_queue)
            .field("max_connections", &self.max_connections)
            .field(
                "max_channels_per_connection",
                &self.max_channels_per_connection,
            )
            .field("publish_key", &self.publish_key)
            .field("max_body", &self.max_body)
            .field("workers", &self.workers)
            .field("hub_threads", &self.hub_threads)
            .field(
                "amqp_url",
                &self.amqp_url.as_ref().map(|u| mask_url(u.expose())),
            )
            .field("exchange", &self.exchange)
            .field("exchange_passive", &self.exchange_passive)
            .field("instance_id", &self.instance_id)
            .field("prefetch", &self.prefetch)
            .field(
                "queue_expires",
                &humantime::format_duration(self.queue_expires).to_string(),
            )
            .field("max_event_size", &self.max_event_size)
            .field("no_demo", &self.no_demo)
            .finish_non_exhaustive()
    }
}

/// Default_instance_id is the host name, reduced to the characters a queue name part may have.
fn default_instance_id() -> String {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let id: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if id.is_empty() {
        "sse-gateway".to_string()
    } else {
        id
    }
}

/// ChannelSpec is one `--channel NAME[=BINDING_KEY]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelSpec {
    /// The channel served.
    pub name: ChannelName,
    /// The AMQP binding key of its queue; the channel name when not given.
    pub binding_key: Option<String>,
}

impl FromStr for ChannelSpec {
    type Err = ChannelNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, key) = match s.split_once('=') {
            Some((name, key)) => (name, Some(key.to_string()).filter(|k| !k.is_empty())),
            None => (s, None),
        };
        Ok(Self {
            name: ChannelName::parse(name.trim())?,
            binding_key: key,
        })
    }
}

/// Secret is a value that must never be printed: its `Debug` and `Display` show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Expose returns the secret value, for the one place that compares it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_string()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_specs_take_an_optional_binding_key() {
        let plain: ChannelSpec = "news".parse().unwrap();
        assert_eq!((plain.name.as_str(), plain.binding_key), ("news", None));
        let keyed: ChannelSpec = "eu=orders.eu.#".parse().unwrap();
        assert_eq!(
            (keyed.name.as_str(), keyed.binding_key.as_deref()),
            ("eu", Some("orders.eu.#"))
        );
        assert!("bad name".parse::<ChannelSpec>().is_err());
    }

    #[test]
    fn secrets_never_print() {
        let config = Config::parse_from(["sse-gateway", "--publish-key", "hunter2"]);
        assert!(!format!("{config:?}").contains("hunter2"));
        assert_eq!(
            config
                .publish_key
                .map(|k| k.expose().to_string())
                .as_deref(),
            Some("hunter2")
        );
    }
}
