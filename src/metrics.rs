//! Prometheus metrics at `GET /metrics` (OpenMetrics text), through `prometheus-client`.
//!
//! Most figures are the counters the hub and the AMQP consumer keep anyway: a collector reads
//! them at scrape time, so nothing is counted twice. Per-channel subscriber gauges are limited to
//! the busiest channels, so a client that opens many channels cannot blow up label cardinality.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::amqp::AmqpStatus;
use crate::hub::Hub;

/// How many channels get their own subscriber gauge, by default (the busiest ones).
pub const DEFAULT_METRICS_TOP_CHANNELS: usize = 20;

/// Metrics owns the registry and the few metrics that are not kept elsewhere.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http_received: Arc<AtomicU64>,
    publish_seconds: Histogram,
}

impl Metrics {
    /// New registers every metric of the gateway.
    pub fn new(hub: Hub, amqp: Option<Arc<AmqpStatus>>, top_channels: usize) -> Self {
        let mut registry = Registry::with_prefix("sse_gateway");
        let http_received = Arc::new(AtomicU64::new(0));
        let publish_seconds = Histogram::new(exponential_buckets(0.000_25, 2.0, 14));
        registry.register(
            "publish_duration_seconds",
            "Time to answer POST /publish (with RabbitMQ on, until the broker confirmed)",
            publish_seconds.clone(),
        );
        registry.register_collector(Box::new(GatewayCollector {
            hub,
            amqp,
            top_channels,
            http_received: Arc::clone(&http_received),
        }));
        Self {
            registry,
            http_received,
            publish_seconds,
        }
    }

    /// Observe_publish records one accepted HTTP publish and how long it took.
    pub fn observe_publish(&self, seconds: f64) {
        self.http_received.fetch_add(1, Ordering::Relaxed);
        self.publish_seconds.observe(seconds);
    }

    /// Render encodes every metric in the OpenMetrics text format.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// GatewayCollector reads the hub's and the consumer's counters at scrape time.
#[derive(Debug)]
struct GatewayCollector {
    hub: Hub,
    amqp: Option<Arc<AmqpStatus>>,
    top_channels: usize,
    http_received: Arc<AtomicU64>,
}

/// Metric writes one unlabelled metric with its descriptor.
fn metric(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl Collector for GatewayCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.hub.stats();
        let c = self.hub.counters();
        let amqp = self.amqp.as_ref().map(|a| a.snapshot());
        let load = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed);
        let e = &mut encoder;
        let connections = ConstGauge::new(stats.connections as i64);
        metric(e, "connections", "Open subscriber connections", connections)?;
        let mut received = Vec::from([("http", load(&self.http_received))]);
        if let Some(amqp) = &amqp {
            received.push(("amqp", amqp.deliveries_consumed));
        }
        let help = "Events received, by source: HTTP publishes accepted, AMQP deliveries consumed";
        let mut family = e.encode_descriptor(
            "events_received",
            help,
            None,
            ConstCounter::new(0u64).metric_type(),
        )?;
        for (source, count) in received {
            ConstCounter::new(count).encode(family.encode_family(&[("source", source)])?)?;
        }
        let channels = ConstGauge::new(stats.channels.len() as i64);
        metric(e, "channels", "Live channels", channels)?;
        let counters = [
            (
                "events_published",
                "Events accepted: added to a history, then fanned out",
                stats.events_published,
            ),
            (
                "events_delivered",
                "Events handed to subscribers (one per subscriber)",
                load(&c.delivered),
            ),
            (
                "bytes_written",
                "Bytes handed to subscriber connections",
                load(&c.bytes_written),
            ),
            (
                "duplicates_dropped",
                "Events dropped because their id was retained",
                stats.duplicates_dropped,
            ),
            (
                "slow_subscriber_disconnects",
                "Subscribers disconnected for falling behind",
                stats.slow_subscriber_disconnects,
            ),
            (
                "resumes",
                "Subscriptions resumed after a retained Last-Event-ID",
                stats.resumes,
            ),
            ("gaps", "Subscriptions sent a gap event", stats.gaps),
        ];
        for (name, help, value) in counters {
            metric(e, name, help, ConstCounter::new(value))?;
        }

        let mut busiest: Vec<_> = stats
            .channels
            .iter()
            .map(|(name, s)| (s.subscribers, name))
            .collect();
        busiest.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        let help = "Subscribers of the busiest channels (--metrics-top-channels)";
        let gauge_type = ConstGauge::new(0i64).metric_type();
        let mut family = e.encode_descriptor("channel_subscribers", help, None, gauge_type)?;
        for (subscribers, name) in busiest.into_iter().take(self.top_channels) {
            let labels = [("channel", name.as_str())];
            ConstGauge::new(subscribers as i64).encode(family.encode_family(&labels)?)?;
        }

        if let Some(s) = amqp {
            let connected = ConstGauge::new(i64::from(s.connected));
            metric(
                e,
                "amqp_connected",
                "1 while connected to RabbitMQ and consuming",
                connected,
            )?;
            let counters = [
                (
                    "amqp_reconnects",
                    "Connections to RabbitMQ re-established",
                    s.reconnects,
                ),
                (
                    "amqp_deliveries_consumed",
                    "AMQP deliveries turned into events",
                    s.deliveries_consumed,
                ),
                (
                    "amqp_deliveries_rejected",
                    "AMQP deliveries dropped as unusable",
                    s.deliveries_rejected,
                ),
            ];
            for (name, help, value) in counters {
                metric(e, name, help, ConstCounter::new(value))?;
            }
        }
        Ok(())
    }
}
