//! The one JSON result a run prints.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::cli::{Args, PublishVia, SubscribeVia};
use crate::publish::PublishStats;
use crate::subscriber::Outcome;
use crate::tally::Totals;
use crate::target::Target;

/// How many distinct subscriber errors a report keeps.
const KEPT_ERRORS: usize = 5;

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
    /// When the server is pinned to one CPU: how busy that CPU was with anything but the server
    /// (other processes, and interrupt work not charged to the server). High values mean the run
    /// was disturbed; `scripts/bench.sh` repeats such runs.
    pub server_core_others: Option<f64>,
    /// The same for this tool's CPU.
    pub client_core_others: Option<f64>,
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
    /// After the last delivery (absent when the server was gone by then).
    pub after_kib: Option<u64>,
    /// (connected - before) / connections, in bytes: the cost of one idle connection.
    pub per_connection_bytes: u64,
}

impl Report {
    /// Build merges the subscribers' outcomes and the publisher's figures into the report;
    /// `rss` is the server's resident memory before connecting, with every subscriber connected,
    /// and at the end (if the server was still there).
    pub fn build(
        args: &Args,
        outcomes: &[Outcome],
        published: Option<&PublishStats>,
        cpu_pct: CpuUse,
        rss: Option<(u64, u64, Option<u64>)>,
    ) -> anyhow::Result<Self> {
        let merged = Merged::of(outcomes)?;
        let totals = &merged.totals;
        let (first_ns, last_answered_ns) =
            published.map_or((0, 0), |p| (p.first_sent_ns, p.last_answered_ns));
        let publish_window_s = seconds(first_ns, last_answered_ns);
        let delivery_window_s = seconds(first_ns, totals.last_ns);
        let accepted = published.map_or(0, |p| p.accepted);
        let mut errors = merged.errors.clone();
        errors.extend(published.iter().flat_map(|p| p.errors.iter().cloned()));
        Ok(Self {
            target: args.target,
            publish_via: args.publish_via,
            subscribe_via: args.subscribe_via,
            connections: Connections {
                attempted: args.subscribers,
                made: merged.made,
                failed: args.subscribers.saturating_sub(merged.made),
                closed_early: merged.closed_early,
            },
            events: Events {
                published: accepted,
                publish_failed: published.map_or(0, |p| p.failed),
                expected: totals.expected,
                received: totals.received,
                missing: totals.missing(),
                duplicated: totals.duplicated,
                unexpected: totals.unexpected,
            },
            latency_ms: Percentiles::of(&totals.latency),
            latency_by_channel_ms: totals
                .latency_by_channel
                .iter()
                .filter_map(|(channel, h)| Some((channel.clone(), Percentiles::of(h)?)))
                .collect(),
            publish_latency_ms: published.and_then(|p| Percentiles::of(&p.latency)),
            publish_window_s: round3(publish_window_s),
            delivery_window_s: round3(delivery_window_s),
            published_per_sec: per_second(accepted, publish_window_s),
            delivered_per_sec: per_second(totals.received, delivery_window_s),
            cpu_pct,
            server_rss: rss.map(|(before, connected, after)| Rss {
                before_kib: before,
                connected_kib: connected,
                after_kib: after,
                per_connection_bytes: connected.saturating_sub(before) * 1024
                    / (merged.made.max(1) as u64),
            }),
            complete: totals.missing() == 0 && merged.made == args.subscribers,
            errors,
        })
    }
}

/// Merged is every subscriber's outcome added up.
struct Merged {
    totals: Totals,
    made: usize,
    closed_early: usize,
    errors: Vec<String>,
}

impl Merged {
    fn of(outcomes: &[Outcome]) -> anyhow::Result<Self> {
        let mut merged = Self {
            totals: Totals::new()?,
            made: 0,
            closed_early: 0,
            errors: Vec::new(),
        };
        for outcome in outcomes {
            merged.totals.add(&outcome.tally)?;
            merged.made += usize::from(outcome.connected);
            merged.closed_early += usize::from(outcome.closed_early);
            if let Some(e) = &outcome.error {
                if merged.errors.len() < KEPT_ERRORS && !merged.errors.contains(e) {
                    merged.errors.push(e.clone());
                }
            }
        }
        Ok(merged)
    }
}

fn seconds(from_ns: u64, to_ns: u64) -> f64 {
    to_ns.saturating_sub(from_ns) as f64 / 1e9
}

fn per_second(count: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        (count as f64 / secs).round()
    } else {
        0.0
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
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
