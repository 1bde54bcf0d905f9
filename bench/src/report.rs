//! The one JSON result a run prints.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::cli::{PublishVia, SubscribeVia};
use crate::target::Target;

/// Report is everything a run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The server kind.
    pub target: Target,
    /// How events were published.
    pub publish_via: PublishVia,
    /// How events were received.
    pub subscribe_via: SubscribeVia,
    /// Subscriber connections.
    pub connections: Connections,
    /// Events published, expected and received.
    pub events: Events,
    /// Delivery latency (publish sent to event parsed by a subscriber).
    pub latency_ms: Option<Percentiles>,
    /// The same per published channel.
    pub latency_by_channel_ms: BTreeMap<String, Percentiles>,
    /// Publish request latency (sent to accepted).
    pub publish_latency_ms: Option<Percentiles>,
    /// From the first publish sent to the last publish answered, in seconds.
    pub publish_window_s: f64,
    /// From the first publish sent to the last event received, in seconds.
    pub delivery_window_s: f64,
    /// Accepted publishes per second over the publish window.
    pub published_per_sec: f64,
    /// Distinct events received by all subscribers per second over the delivery window.
    pub delivered_per_sec: f64,
    /// CPU use over the measured window, in percent of one core.
    pub cpu_pct: CpuUse,
    /// The server's resident memory.
    pub server_rss: Option<Rss>,
    /// Whether every subscriber received every expected event before the drain limit.
    pub complete: bool,
    /// The first few distinct errors.
    pub errors: Vec<String>,
}

/// Connections counts subscriber connections.
#[derive(Debug, Serialize)]
pub struct Connections {
    /// Subscribers started.
    pub attempted: usize,
    /// Subscribers whose stream started.
    pub made: usize,
    /// Subscribers that could not connect in time.
    pub failed: usize,
    /// Streams the server ended before the run did.
    pub closed_early: usize,
}

/// Events counts events over all subscribers.
#[derive(Debug, Serialize)]
pub struct Events {
    /// Publishes accepted.
    pub published: u64,
    /// Publishes that failed.
    pub publish_failed: u64,
    /// Deliveries expected: each accepted event times its subscribers.
    pub expected: u64,
    /// Distinct deliveries.
    pub received: u64,
    /// Expected deliveries that never came.
    pub missing: u64,
    /// Deliveries of an event a subscriber already had.
    pub duplicated: u64,
    /// Deliveries of events this run did not publish to that subscriber.
    pub unexpected: u64,
}

/// Percentiles of a latency histogram kept in microseconds, reported in milliseconds.
#[derive(Debug, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p99_9: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    /// Of summarizes a histogram of microseconds; `None` when it is empty.
    pub fn of(micros: &Histogram<u64>) -> Option<Self> {
        if micros.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Self {
            count: micros.len(),
            p50: ms(micros.value_at_quantile(0.50)),
            p90: ms(micros.value_at_quantile(0.90)),
            p99: ms(micros.value_at_quantile(0.99)),
            p99_9: ms(micros.value_at_quantile(0.999)),
            max: ms(micros.max()),
        })
    }
}

/// CpuUse is each side's CPU time over the measured window, in percent of one core.
#[derive(Debug, Serialize)]
pub struct CpuUse {
    /// The server process (when its pid was given).
    pub server: Option<f64>,
    /// This tool.
    pub client: Option<f64>,
    /// Time the server's threads were ready to run but waited for a CPU (summed over threads):
    /// high values mean another process shared the server's core and the figures are suspect.
    pub server_waiting: Option<f64>,
    /// The same for this tool's threads.
    pub client_waiting: Option<f64>,
    /// The window's length in seconds: from just before the first publish to the end of the
    /// drain (or the hold, when nothing is published).
    pub window_s: f64,
}

/// Rss is the server's resident set size, in KiB, at the points of the run.
#[derive(Debug, Serialize)]
pub struct Rss {
    /// Before any subscriber connected.
    pub before_kib: u64,
    /// With every subscriber connected, before publishing.
    pub connected_kib: u64,
    /// After the last delivery.
    pub after_kib: u64,
    /// (connected - before) / connections, in bytes: the cost of one idle connection.
    pub per_connection_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_reported_in_milliseconds() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for us in 1..=1000 {
            h.record(us * 10).unwrap();
        }
        let p = Percentiles::of(&h).unwrap();
        assert_eq!(p.count, 1000);
        assert!((p.p50 - 5.0).abs() < 0.01, "{p:?}");
        assert!((p.max - 10.0).abs() < 0.01, "{p:?}");
        assert!(Percentiles::of(&Histogram::new(3).unwrap()).is_none());
    }
}
