//! Command-line and environment configuration, with every default named.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};

use crate::amqp::{mask_url, AmqpSettings};
use crate::channel::{ChannelName, ChannelNameError};
use crate::hub::{self, HubSettings};
use crate::metrics::DEFAULT_METRICS_TOP_CHANNELS;
use crate::server::Cors;
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
/// How long a client may take to send its request head.
pub const DEFAULT_REQUEST_TIMEOUT: &str = "5s";
/// How long written data may stay unacknowledged before the connection is dropped.
pub const DEFAULT_WRITE_TIMEOUT: &str = "30s";
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
    /// TOML file with any of these options (`history-size = 500`, `channel = ["a", "b"]`);
    /// flags and environment variables win over it.
    #[arg(long, env = "SSE_GATEWAY_CONFIG")]
    pub config: Option<PathBuf>,

    /// Address and port to serve HTTP on.
    #[arg(long, env = "SSE_GATEWAY_BIND", default_value = DEFAULT_BIND)]
    pub bind: SocketAddr,

    /// A second address to serve on, with a worker thread of its own, for publishers (and
    /// scrapers), e.g. on an internal interface: their requests never wait behind the main
    /// workers' (which also write the subscriptions that arrive on kept-alive connections).
    /// Every route is served on both.
    #[arg(long, env = "SSE_GATEWAY_PUBLISH_BIND")]
    pub publish_bind: Option<SocketAddr>,

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

    /// Frames a subscriber may fall behind before it is disconnected (it then resumes from
    /// history); also how many accepted events of a channel may wait for fan-out.
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

    /// HTTP worker threads, and as many threads writing event streams. Default: one per core.
    #[arg(long, env = "SSE_GATEWAY_WORKERS", value_parser = at_least_one())]
    pub workers: Option<usize>,

    /// Threads running the channels' broadcasters (and the AMQP consumer). With one, every
    /// subscriber receives events in one hub-wide order, which resuming a subscription to
    /// several channels relies on; more may repeat or skip an event in such a resume.
    #[arg(long, env = "SSE_GATEWAY_HUB_THREADS", default_value_t = 1, value_parser = at_least_one())]
    pub hub_threads: usize,

    /// Random extra delay, at most this, added to the final `retry:` sent at shutdown.
    #[arg(long, env = "SSE_GATEWAY_SHUTDOWN_RETRY_SPREAD", default_value = DEFAULT_SHUTDOWN_RETRY_SPREAD, value_parser = humantime::parse_duration)]
    pub shutdown_retry_spread: Duration,

    /// How long shutdown waits for connections to close.
    #[arg(long, env = "SSE_GATEWAY_SHUTDOWN_TIMEOUT", default_value = DEFAULT_SHUTDOWN_TIMEOUT, value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    /// How long a client may take to send its request head (slow or silent clients are closed).
    #[arg(long, env = "SSE_GATEWAY_REQUEST_TIMEOUT", default_value = DEFAULT_REQUEST_TIMEOUT, value_parser = at_least_one_second)]
    pub request_timeout: Duration,

    /// How long a connection may leave written data unacknowledged (a client that stopped
    /// reading) before it is dropped.
    #[arg(long, env = "SSE_GATEWAY_WRITE_TIMEOUT", default_value = DEFAULT_WRITE_TIMEOUT, value_parser = humantime::parse_duration)]
    pub write_timeout: Duration,

    /// Kernel send buffer of each connection, in bytes (bounds what a slow client holds in the
    /// kernel). Default: the kernel's autotuning.
    #[arg(long, env = "SSE_GATEWAY_SEND_BUFFER")]
    pub send_buffer: Option<usize>,

    /// Web origin allowed to call the API from a browser (repeatable, or comma-separated), with
    /// credentials; `*` allows any origin without credentials. Without it, no CORS headers.
    #[arg(
        long = "cors-origin",
        env = "SSE_GATEWAY_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<CorsOrigin>,

    /// How many of the busiest channels get their own subscriber gauge in `/metrics`.
    #[arg(long, env = "SSE_GATEWAY_METRICS_TOP_CHANNELS", default_value_t = DEFAULT_METRICS_TOP_CHANNELS)]
    pub metrics_top_channels: usize,

    /// Log format on stderr.
    #[arg(long, env = "SSE_GATEWAY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

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
    /// (0, which AMQP reads as "no limit", is refused.)
    #[arg(long, env = "SSE_GATEWAY_PREFETCH", default_value_t = DEFAULT_PREFETCH, value_parser = clap::value_parser!(u16).range(1..))]
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

/// ConfigError is why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A flag or environment variable is wrong (or help or the version was asked for).
    #[error(transparent)]
    Args(#[from] clap::Error),
    /// The configuration file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML.
    #[error("{path} is not valid TOML: {source}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// Why.
        source: toml::de::Error,
    },
    /// The configuration file has a key that is no option.
    #[error("{path}: `{key}` is not an option (see --help)")]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },
    /// A value in the configuration file is of the wrong kind.
    #[error("{path}: `{key}` must be a string, a number, a boolean or an array of those")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },
}

impl Config {
    /// Load reads the configuration from the process's arguments, environment and `--config`
    /// file, in that order of precedence, then the defaults.
    pub fn load() -> Result<Self, ConfigError> {
        Self::load_from(std::env::args_os())
    }

    /// Load_from is [`Config::load`] with explicit arguments. A file value becomes the flag it
    /// names unless that option came from the command line or the environment, so every value
    /// goes through the same parsing and checks.
    pub fn load_from(
        args: impl IntoIterator<Item = impl Into<OsString>>,
    ) -> Result<Self, ConfigError> {
        let mut args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let command = Self::command();
        let matches = command.clone().try_get_matches_from(&args)?;
        let Some(path) = matches.get_one::<PathBuf>("config").cloned() else {
            return Ok(Self::from_arg_matches(&matches)?);
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let table: toml::Table = text.parse().map_err(|source| ConfigError::Toml {
            path: path.clone(),
            source,
        })?;
        for (key, value) in table {
            let unknown = || ConfigError::UnknownKey {
                path: path.clone(),
                key: key.clone(),
            };
            let arg = command
                .get_arguments()
                .find(|a| a.get_long() == Some(key.as_str()) && key != "config")
                .ok_or_else(unknown)?;
            let id = arg.get_id().as_str();
            if matches!(
                matches.value_source(id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            ) {
                continue;
            }
            let bad = || ConfigError::BadValue {
                path: path.clone(),
                key: key.clone(),
            };
            let values = match value {
                toml::Value::Boolean(true) => {
                    args.push(format!("--{key}").into());
                    continue;
                }
                toml::Value::Boolean(false) => continue,
                toml::Value::Array(items) => items,
                scalar => vec![scalar],
            };
            for value in values {
                let text = match value {
                    toml::Value::String(s) => s,
                    toml::Value::Integer(n) => n.to_string(),
                    toml::Value::Float(x) => x.to_string(),
                    _ => return Err(bad()),
                };
                args.push(format!("--{key}={text}").into());
            }
        }
        Ok(Self::try_parse_from(args)?)
    }

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
            prefetch: self.prefetch,
            queue_expires: self.queue_expires,
            channels: self.channels.clone(),
            max_event_size: self.max_event_size,
            reconnect_min: self.amqp_reconnect_min,
            reconnect_max: self.amqp_reconnect_max.max(self.amqp_reconnect_min),
        })
    }

    /// Cors says which origins may call the API from a browser.
    pub fn cors(&self) -> Cors {
        if self.cors_origins.is_empty() {
            Cors::Off
        } else if self.cors_origins.iter().any(|o| o.0 == "*") {
            Cors::AnyOrigin
        } else {
            Cors::Origins(self.cors_origins.iter().map(|o| o.0.clone()).collect())
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
            .field("publish_bind", &self.publish_bind)
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

/// At_least_one_second parses a duration of one second or more: actix-web checks request
/// deadlines against a clock it refreshes every 500 ms, so shorter ones fire at once.
fn at_least_one_second(s: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if duration < Duration::from_secs(1) {
        return Err("must be at least 1s".to_string());
    }
    Ok(duration)
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

/// CorsOrigin is a web origin (`https://app.example.com`, scheme, host and optional port) or `*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorsOrigin(String);

impl FromStr for CorsOrigin {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "*" {
            return Ok(Self(s.to_string()));
        }
        let host = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"))
            .ok_or_else(|| {
                format!("{s:?} is not an origin: it must start with https:// or http://")
            })?;
        let valid = !host.is_empty()
            && host.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
            });
        if !valid {
            return Err(format!(
                "{s:?} is not an origin: scheme, host and port only, no path"
            ));
        }
        Ok(Self(s.to_string()))
    }
}

/// LogFormat is how log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
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

/// At_least_one parses a count that must not be zero (threads), refusing 0 with a clear error
/// rather than quietly taking 1.
fn at_least_one() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
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

    /// TempConfig is a TOML file for one test, removed when dropped.
    struct TempConfig(std::path::PathBuf);

    impl TempConfig {
        fn new(text: &str) -> Self {
            let name = format!("sse-gateway-test-{}.toml", fastrand::u64(..));
            let path = std::env::temp_dir().join(name);
            std::fs::write(&path, text).unwrap();
            Self(path)
        }

        fn path(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }

    impl Drop for TempConfig {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn the_config_file_fills_in_what_flags_do_not_set() {
        let file = TempConfig::new("history-size = 5\nchannel = [\"a\", \"b=k.#\"]\nheartbeat = \"2s\"\nexchange-passive = true\n");
        let path = file.path();
        let config =
            Config::load_from(["sse-gateway", "--config", path, "--history-size", "7"]).unwrap();
        assert_eq!(config.history_size, 7, "a flag wins over the file");
        assert_eq!(config.heartbeat, Duration::from_secs(2));
        assert!(config.exchange_passive);
        let names: Vec<_> = config.channels.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(
            config.max_channels,
            hub::DEFAULT_MAX_CHANNELS,
            "defaults stay for the rest"
        );
    }

    #[test]
    fn the_config_file_refuses_unknown_keys_and_bad_values() {
        let file = TempConfig::new("histroy-size = 5\n");
        let err = Config::load_from(["sse-gateway", "--config", file.path()]).unwrap_err();
        assert!(err.to_string().contains("histroy-size"), "{err}");
        let file = TempConfig::new("history-size = \"many\"\n");
        assert!(Config::load_from(["sse-gateway", "--config", file.path()]).is_err());
        let file = TempConfig::new("history-size = {a = 1}\n");
        assert!(Config::load_from(["sse-gateway", "--config", file.path()]).is_err());
    }

    /// The README's configuration table lists every option with its environment variable and
    /// default, and nothing else, so it cannot drift from the code.
    #[test]
    fn the_readme_table_matches_the_options() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let rows: Vec<&str> = readme.lines().filter(|l| l.starts_with("| `--")).collect();
        let command = Config::command();
        let options: Vec<_> = command
            .get_arguments()
            .filter(|a| a.get_long().is_some())
            .collect();
        for arg in &options {
            let long = arg.get_long().unwrap();
            let row = rows
                .iter()
                .find(|r| r.starts_with(&format!("| `--{long}` |")))
                .unwrap_or_else(|| panic!("README has no row for --{long}"));
            let cells: Vec<&str> = row.split(" | ").collect();
            let env = arg
                .get_env()
                .map(|e| e.to_string_lossy().into_owned())
                .unwrap();
            assert_eq!(
                cells[1],
                format!("`{env}`"),
                "environment variable of --{long}"
            );
            for default in arg.get_default_values() {
                let default = default.to_string_lossy();
                assert!(
                    cells[2].contains(&format!("`{default}`")),
                    "README default of --{long} is not `{default}`"
                );
            }
        }
        for row in rows {
            let long = row.trim_start_matches("| `--").split('`').next().unwrap();
            assert!(
                options.iter().any(|a| a.get_long() == Some(long)),
                "README lists --{long}, which is no option"
            );
        }
    }

    #[test]
    fn cors_origins_are_origins_or_a_wildcard() {
        assert!("https://app.example.com".parse::<CorsOrigin>().is_ok());
        assert!("http://localhost:3000".parse::<CorsOrigin>().is_ok());
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "https://a.example/path",
            "https://",
        ] {
            assert!(bad.parse::<CorsOrigin>().is_err(), "{bad}");
        }
        let config = Config::parse_from(["sse-gateway", "--cors-origin", "https://a.example,*"]);
        assert_eq!(config.cors(), Cors::AnyOrigin);
        assert_eq!(Config::parse_from(["sse-gateway"]).cors(), Cors::Off);
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

    #[test]
    fn thread_counts_and_the_prefetch_refuse_zero() {
        for flag in ["--workers", "--hub-threads", "--prefetch"] {
            let error = Config::try_parse_from(["sse-gateway", flag, "0"])
                .expect_err("0 is refused, not taken as 1");
            assert!(error.to_string().contains(flag), "{error}");
            assert!(Config::try_parse_from(["sse-gateway", flag, "1"]).is_ok());
        }
    }
}
