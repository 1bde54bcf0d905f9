//! Command-line and environment configuration, with every default named.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;

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
            .finish_non_exhaustive()
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
