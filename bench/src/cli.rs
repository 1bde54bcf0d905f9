//! The command line: what to measure and how hard, with every bound explicit.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use serde::Serialize;

use crate::tally::Expectation;
use crate::target::{valid_channel, Target};

/// How publishes reach the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PublishVia {
    /// HTTP POST to the target's publish endpoint.
    Http,
    /// AMQP to RabbitMQ (exchange `--exchange`, routing key = channel, publisher confirms).
    Amqp,
}

/// How subscribers receive events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SubscribeVia {
    /// SSE connections to the target.
    Sse,
    /// Bare AMQP consumers on the broker (one queue each, bound to the published channels): the
    /// broker's own rate, with no gateway in between.
    Amqp,
}

/// Args are the tool's options.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "sse-load",
    version,
    about = "Open N SSE subscribers, publish M events, print one JSON result (loopback only)"
)]
pub struct Args {
    /// Kind of server: changes only the publish URL and body.
    #[arg(long, value_enum, default_value_t = Target::Gateway)]
    pub target: Target,

    /// Server address; must be a loopback address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub server: SocketAddr,

    /// Address publishes go to over HTTP; default: `--server`. Must be a loopback address.
    #[arg(long)]
    pub publish_server: Option<SocketAddr>,

    /// Subscriber connections to open.
    #[arg(long, default_value_t = 100)]
    pub subscribers: usize,

    /// Channels every subscriber joins (repeatable or comma-separated).
    #[arg(long = "channel", value_delimiter = ',', default_value = "bench")]
    pub channels: Vec<String>,

    /// Channels handed out in turn: subscriber i also joins the (i mod n)-th of these.
    #[arg(long, value_delimiter = ',')]
    pub rotate: Vec<String>,

    /// Channels events are published to; default: the first `--channel`.
    #[arg(long = "publish-channel", value_delimiter = ',')]
    pub publish_channels: Vec<String>,

    /// Events published to each publish channel (0: connect, hold, measure memory).
    #[arg(long, default_value_t = 100)]
    pub events: u64,

    /// Events per second to each publish channel; 0 publishes as fast as `--in-flight` allows.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,

    /// Most publishes awaiting their answer at once.
    #[arg(long, default_value_t = 8)]
    pub in_flight: usize,

    /// Size of each event's data in bytes.
    #[arg(long, default_value_t = 100)]
    pub payload_bytes: usize,

    /// How events are published.
    #[arg(long, value_enum, default_value_t = PublishVia::Http)]
    pub publish_via: PublishVia,

    /// How events are received.
    #[arg(long, value_enum, default_value_t = SubscribeVia::Sse)]
    pub subscribe_via: SubscribeVia,

    /// Broker URL for `--publish-via amqp` and `--subscribe-via amqp`; must be on loopback.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub amqp_url: String,

    /// AMQP topic exchange events are published to.
    #[arg(long, default_value = "sse")]
    pub exchange: String,

    /// Server process id, for its CPU use and resident memory (`/proc/PID`).
    #[arg(long)]
    pub server_pid: Option<u32>,

    /// Spread subscriber source addresses over 127.0.0.2 .. 127.0.0.(N+1); 0 lets the kernel
    /// choose (one address has about 28000 ephemeral ports).
    #[arg(long, default_value_t = 16)]
    pub source_addresses: u8,

    /// Connection attempts in progress at once.
    #[arg(long, default_value_t = 200)]
    pub connect_concurrency: usize,

    /// Limit on connecting all subscribers, in seconds.
    #[arg(long, default_value = "60", value_parser = parse_secs)]
    pub connect_timeout: Duration,

    /// Pause between the last connection and the first publish, in seconds.
    #[arg(long, default_value = "0.5", value_parser = parse_secs)]
    pub settle: Duration,

    /// How long to hold the connections before measuring memory and publishing, in seconds.
    #[arg(long, default_value = "0", value_parser = parse_secs)]
    pub hold: Duration,

    /// Limit on waiting for deliveries after the last publish, in seconds.
    #[arg(long, default_value = "15", value_parser = parse_secs)]
    pub drain_timeout: Duration,

    /// Limit on the whole run, in seconds.
    #[arg(long, default_value = "300", value_parser = parse_secs)]
    pub max_run: Duration,

    /// Runtime worker threads; default: the CPUs this process may run on (see `taskset`).
    #[arg(long)]
    pub threads: Option<usize>,
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs = f64::from_str(s).map_err(|e| format!("{s:?} is not a number of seconds: {e}"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

impl Args {
    /// Validate refuses options that would send traffic off this host or cannot work.
    pub fn validate(&self) -> anyhow::Result<()> {
        for (flag, addr) in [
            ("--server", self.server),
            ("--publish-server", self.publisher()),
        ] {
            if !addr.ip().is_loopback() {
                bail!("{flag} must be a loopback address, not {addr}");
            }
        }
        if self.publish_via == PublishVia::Amqp || self.subscribe_via == SubscribeVia::Amqp {
            let host = amqp_host(&self.amqp_url)?;
            let loopback =
                host == "localhost" || IpAddr::from_str(&host).is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                bail!("--amqp-url must point at a loopback broker, not {host}");
            }
        }
        for name in self
            .channels
            .iter()
            .chain(&self.rotate)
            .chain(&self.publish_channels)
        {
            if !valid_channel(name) {
                bail!("channel {name:?}: use 1-128 of A-Z a-z 0-9 _ - .");
            }
        }
        if self.channels.is_empty() {
            bail!("give at least one --channel");
        }
        if self.in_flight == 0 || self.connect_concurrency == 0 {
            bail!("--in-flight and --connect-concurrency must be at least 1");
        }
        if !self.rate.is_finite() || self.rate < 0.0 {
            bail!("--rate must be 0 (as fast as possible) or a positive number");
        }
        Ok(())
    }

    /// Publisher is the address HTTP publishes go to.
    pub fn publisher(&self) -> SocketAddr {
        self.publish_server.unwrap_or(self.server)
    }

    /// Publish_targets is where events go: `--publish-channel`, or the first
    /// `--channel`.
    pub fn publish_targets(&self) -> Vec<String> {
        if self.publish_channels.is_empty() {
            self.channels.iter().take(1).cloned().collect()
        } else {
            self.publish_channels.clone()
        }
    }

    /// Subscriber_channels are the channels subscriber `index` joins.
    pub fn subscriber_channels(&self, index: usize) -> Vec<String> {
        let mut channels = self.channels.clone();
        if !self.rotate.is_empty() {
            let extra = &self.rotate[index % self.rotate.len()];
            if !channels.contains(extra) {
                channels.push(extra.clone());
            }
        }
        channels
    }

    /// Expectations are the events a subscriber on `channels` should receive.
    pub fn expectations(&self, channels: &[String]) -> Vec<Expectation> {
        self.publish_targets()
            .into_iter()
            .filter(|c| channels.contains(c))
            .map(|channel| Expectation {
                channel,
                events: self.events,
            })
            .collect()
    }

    /// Source_address is the local address subscriber `index` connects from, if spread.
    pub fn source_address(&self, index: usize) -> Option<IpAddr> {
        (self.source_addresses > 0).then(|| {
            let offset = u8::try_from(index % usize::from(self.source_addresses)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + offset))
        })
    }
}

fn amqp_host(url: &str) -> anyhow::Result<String> {
    let uri = lapin::uri::AMQPUri::from_str(url)
        .map_err(|e| anyhow::anyhow!(e))
        .with_context(|| format!("parsing --amqp-url {url}"))?;
    Ok(uri.authority.host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut argv = vec!["sse-load"];
        argv.extend_from_slice(extra);
        Args::parse_from(argv)
    }

    #[test]
    fn the_cyclone_layout_gives_each_subscriber_general_and_one_rotating_channel() {
        let a = args(&[
            "--channel=general",
            "--rotate=cats,dogs,extras,base",
            "--publish-channel=general,cats",
            "--events=50",
        ]);
        a.validate().unwrap();
        assert_eq!(a.subscriber_channels(0), ["general", "cats"]);
        assert_eq!(a.subscriber_channels(5), ["general", "dogs"]);
        assert_eq!(a.expectations(&a.subscriber_channels(4)).len(), 2);
        assert_eq!(a.expectations(&a.subscriber_channels(1)).len(), 1);
    }

    #[test]
    fn sources_spread_over_loopback_and_remote_targets_are_refused() {
        let a = args(&["--source-addresses=3"]);
        assert_eq!(a.source_address(4), Some("127.0.0.3".parse().unwrap()));
        assert_eq!(args(&["--source-addresses=0"]).source_address(4), None);
        assert!(args(&["--server=10.0.0.1:80"]).validate().is_err());
        assert!(args(&["--publish-server=10.0.0.1:80"]).validate().is_err());
        let remote = args(&[
            "--publish-via=amqp",
            "--amqp-url=amqp://g:g@192.0.2.1:5672/%2f",
        ]);
        assert!(remote.validate().is_err());
        assert!(args(&["--publish-via=amqp"]).validate().is_ok());
        assert!(args(&["--channel=a b"]).validate().is_err());
    }
}
