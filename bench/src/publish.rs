//! Publishing the run's events: over HTTP to the target, or over AMQP to the broker, at a fixed
//! rate or as a burst, never more than `in_flight` awaiting their answer.
//!
//! Each event's data carries the moment its publish request was sent, so delivery latency is
//! end to end: publish request, server, fan-out, socket, parse.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::amqp::AmqpPublisher;
use crate::payload::{encode, now_ns};
use crate::target::Target;

/// How long one publish may take before it counts as failed.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);
/// How many distinct publish errors a run keeps for its report.
const KEPT_ERRORS: usize = 5;

/// Publisher sends one event; it is cheap to clone (clones share connections).
#[derive(Clone)]
pub enum Publisher {
    /// HTTP to the target server.
    Http(HttpPublisher),
    /// AMQP to the broker.
    Amqp(AmqpPublisher),
}

impl Publisher {
    /// Publish sends `data` as event `seq` of `channel` and waits for the server's (or the
    /// broker's) acceptance.
    async fn publish(&self, channel: &str, seq: u64, data: &str) -> anyhow::Result<()> {
        let publish = async {
            match self {
                Self::Http(http) => http.publish(channel, data).await,
                Self::Amqp(amqp) => amqp.publish(channel, seq, data).await,
            }
        };
        tokio::time::timeout(PUBLISH_TIMEOUT, publish)
            .await
            .context("publish timed out")?
    }
}

/// HttpPublisher posts events to the target over kept-alive connections.
#[derive(Clone)]
pub struct HttpPublisher {
    client: reqwest::Client,
    base: String,
    target: Target,
}

impl HttpPublisher {
    /// New makes a publisher with up to `connections` kept-alive connections to `server`.
    pub fn new(target: Target, server: SocketAddr, connections: usize) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(connections)
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            client,
            base: format!("http://{server}"),
            target,
        })
    }

    async fn publish(&self, channel: &str, data: &str) -> anyhow::Result<()> {
        let request = self.target.publish_request(channel, data);
        let response = self
            .client
            .post(format!("{}{}", self.base, request.path))
            .header(reqwest::header::CONTENT_TYPE, request.content_type)
            .body(request.body)
            .send()
            .await?;
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            bail!(
                "publish answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(())
    }
}

/// Schedule says what to publish and how fast.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// Channels published to; each gets `events` events.
    pub channels: Vec<String>,
    /// Events per channel.
    pub events: u64,
    /// Events per second per channel; 0 for as fast as `in_flight` allows.
    pub rate: f64,
    /// Most publishes awaiting an answer at once.
    pub in_flight: usize,
    /// Size of each event's data.
    pub payload_bytes: usize,
}

/// PublishStats are what the publisher saw.
#[derive(Debug)]
pub struct PublishStats {
    /// Publishes accepted.
    pub accepted: u64,
    /// Publishes refused, failed or timed out.
    pub failed: u64,
    /// Time from sending a publish to its acceptance, in microseconds.
    pub latency: Histogram<u64>,
    /// When the first publish was sent, in Unix nanoseconds.
    pub first_sent_ns: u64,
    /// When the last publish was answered, in Unix nanoseconds.
    pub last_answered_ns: u64,
    /// The first few distinct errors.
    pub errors: Vec<String>,
}

type Answer = (u64, Duration, anyhow::Result<()>);

impl PublishStats {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            accepted: 0,
            failed: 0,
            latency: Histogram::new_with_bounds(1, 60_000_000, 3)?,
            first_sent_ns: u64::MAX,
            last_answered_ns: 0,
            errors: Vec::new(),
        })
    }

    fn add(&mut self, (sent_ns, took, result): Answer) {
        self.first_sent_ns = self.first_sent_ns.min(sent_ns);
        self.last_answered_ns = self.last_answered_ns.max(now_ns());
        match result {
            Ok(()) => {
                self.accepted += 1;
                let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
                self.latency.saturating_record(micros.max(1));
            }
            Err(e) => {
                self.failed += 1;
                let message = format!("{e:#}");
                if self.errors.len() < KEPT_ERRORS && !self.errors.contains(&message) {
                    self.errors.push(message);
                }
            }
        }
    }
}

/// Drive publishes the schedule: event `seq` of every channel at `seq / rate` seconds from the
/// start (or at once in a burst), each waiting for a free in-flight slot. The publish latency is
/// from the request's sending to its answer.
pub async fn drive(publisher: Publisher, schedule: Schedule) -> anyhow::Result<PublishStats> {
    let slots = Arc::new(Semaphore::new(schedule.in_flight));
    let mut tasks: JoinSet<Answer> = JoinSet::new();
    let mut stats = PublishStats::new()?;
    let (start, start_ns) = (Instant::now(), now_ns());
    for seq in 0..schedule.events {
        // At a fixed rate an event is stamped with the moment it was due, not the moment a free
        // in-flight slot let it go: when a slow server holds the slots, the wait is part of its
        // latency (otherwise the schedule would slip and hide it: coordinated omission).
        let due_ns = if schedule.rate > 0.0 {
            let due = Duration::from_secs_f64(seq as f64 / schedule.rate);
            tokio::time::sleep_until(start + due).await;
            Some(start_ns + u64::try_from(due.as_nanos()).unwrap_or(u64::MAX))
        } else {
            None
        };
        for channel in &schedule.channels {
            let slot = Arc::clone(&slots).acquire_owned().await?;
            let (publisher, channel) = (publisher.clone(), channel.clone());
            let size = schedule.payload_bytes;
            tasks.spawn(async move {
                let sent_ns = due_ns.unwrap_or_else(now_ns);
                let data = encode(&channel, seq, sent_ns, size);
                let began = Instant::now();
                let result = publisher.publish(&channel, seq, &data).await;
                drop(slot);
                (sent_ns, began.elapsed(), result)
            });
            while let Some(answer) = tasks.try_join_next() {
                stats.add(answer?);
            }
        }
    }
    while let Some(answer) = tasks.join_next().await {
        stats.add(answer?);
    }
    Ok(stats)
}
