//! One run, step by step: connect every subscriber, hold, publish, wait for the deliveries, stop
//! the subscribers, merge what they saw into a [`Report`].

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::amqp::{AmqpPublisher, Consumer};
use crate::cli::{Args, PublishVia, SubscribeVia};
use crate::procfs;
use crate::progress::Progress;
use crate::publish::{self, HttpPublisher, PublishStats, Publisher, Schedule};
use crate::report::{Connections, CpuUse, Events, Percentiles, Report, Rss};
use crate::subscriber::{self, Outcome};
use crate::tally::{latency_template, Tally, Totals};

/// How long stopped subscribers get to hand back their tallies.
const COLLECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How many distinct subscriber errors a report keeps.
const KEPT_ERRORS: usize = 5;

/// Run carries out the run `args` describe.
pub async fn run(args: Args) -> anyhow::Result<Report> {
    let args = Arc::new(args);
    let progress = Arc::new(Progress::default());
    let (stop, stopped) = watch::channel(false);
    let rss_before = server_rss(&args)?;
    let subscribers = spawn_subscribers(&args, &progress, &stopped)?;
    let attempted = args.subscribers;
    progress
        .wait_until(args.connect_timeout, |p| {
            p.connected() + p.failed() >= attempted
        })
        .await;
    tokio::time::sleep(args.settle + args.hold).await;
    let rss_connected = server_rss(&args)?;
    let window = CpuWindow::start(args.server_pid)?;
    let published = publish_events(&args).await?;
    if published.as_ref().is_some_and(|p| p.accepted > 0) {
        progress
            .wait_until(args.drain_timeout, |p| p.complete() >= p.connected())
            .await;
    }
    let cpu = window.finish()?;
    let rss_after = server_rss(&args)?;
    let _ = stop.send(true);
    let outcomes = collect(subscribers).await;
    let rss = match (rss_before, rss_connected, rss_after) {
        (Some(before), Some(connected), Some(after)) => Some((before, connected, after)),
        _ => None,
    };
    build_report(&args, outcomes, published, cpu, rss)
}

fn server_rss(args: &Args) -> anyhow::Result<Option<u64>> {
    args.server_pid.map(procfs::rss_kib).transpose()
}

fn spawn_subscribers(
    args: &Arc<Args>,
    progress: &Arc<Progress>,
    stopped: &watch::Receiver<bool>,
) -> anyhow::Result<JoinSet<Outcome>> {
    let template = latency_template()?;
    let slots = Arc::new(Semaphore::new(args.connect_concurrency));
    let mut set = JoinSet::new();
    for index in 0..args.subscribers {
        let channels = args.subscriber_channels(index);
        let tally = Tally::new(&args.expectations(&channels), Arc::clone(&template));
        set.spawn(subscriber_task(
            Arc::clone(args),
            index,
            tally,
            Arc::clone(&slots),
            Arc::clone(progress),
            stopped.clone(),
        ));
    }
    Ok(set)
}

/// Link is a connected subscriber of either kind.
enum Link {
    Sse(subscriber::Connected),
    Amqp(Box<Consumer>),
}

/// Subscriber_task connects subscriber `index` (at most `connect_concurrency` at once), then
/// listens until the run stops it.
async fn subscriber_task(
    args: Arc<Args>,
    index: usize,
    tally: Tally,
    slots: Arc<Semaphore>,
    progress: Arc<Progress>,
    stopped: watch::Receiver<bool>,
) -> Outcome {
    let channels = args.subscriber_channels(index);
    let connecting = async {
        let _slot = slots.acquire().await.context("connection slots closed")?;
        Ok(match args.subscribe_via {
            SubscribeVia::Sse => {
                let path = args.target.subscribe_path(&channels);
                let source = args.source_address(index);
                Link::Sse(subscriber::connect(args.server, source, &path).await?)
            }
            SubscribeVia::Amqp => {
                let consumer = Consumer::connect(&args.amqp_url, &args.exchange, &channels);
                Link::Amqp(Box::new(consumer.await?))
            }
        })
    };
    let link = match tokio::time::timeout(args.connect_timeout, connecting).await {
        Ok(Ok(link)) => link,
        Ok(Err(e)) => return failed(&progress, tally, &e),
        Err(_) => return failed(&progress, tally, &anyhow::anyhow!("connect timed out")),
    };
    progress.subscriber_connected();
    match link {
        Link::Sse(conn) => subscriber::listen(conn, tally, progress, stopped).await,
        Link::Amqp(consumer) => consumer.listen(tally, progress, stopped).await,
    }
}

fn failed(progress: &Progress, tally: Tally, error: &anyhow::Error) -> Outcome {
    progress.subscriber_failed();
    Outcome::failed(tally, error)
}

/// Publish_events publishes the run's events, if it has any.
async fn publish_events(args: &Args) -> anyhow::Result<Option<PublishStats>> {
    if args.events == 0 {
        return Ok(None);
    }
    let publisher = match args.publish_via {
        PublishVia::Http => Publisher::Http(HttpPublisher::new(
            args.target,
            args.publisher(),
            args.in_flight,
        )?),
        PublishVia::Amqp => {
            Publisher::Amqp(AmqpPublisher::connect(&args.amqp_url, &args.exchange).await?)
        }
    };
    let schedule = Schedule {
        channels: args.publish_targets(),
        events: args.events,
        rate: args.rate,
        in_flight: args.in_flight,
        payload_bytes: args.payload_bytes,
    };
    Ok(Some(publish::drive(publisher, schedule).await?))
}

/// Collect stops waiting for subscribers after [`COLLECT_TIMEOUT`]; the rest are abandoned.
async fn collect(mut subscribers: JoinSet<Outcome>) -> Vec<Outcome> {
    let mut outcomes = Vec::with_capacity(subscribers.len());
    let deadline = Instant::now() + COLLECT_TIMEOUT;
    while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, subscribers.join_next()).await {
        if let Ok(outcome) = joined {
            outcomes.push(outcome);
        }
    }
    subscribers.abort_all();
    outcomes
}

/// CpuWindow measures both processes' CPU time between two moments.
struct CpuWindow {
    began: Instant,
    server: Option<(u32, Sample)>,
    client: Sample,
}

/// Sample is a process's CPU time used and time spent runnable but waiting, at one moment.
#[derive(Clone, Copy)]
struct Sample {
    used: Duration,
    waited: Duration,
}

impl Sample {
    fn take(pid: u32) -> anyhow::Result<Self> {
        Ok(Self {
            used: procfs::cpu_time(pid)?,
            waited: procfs::runnable_wait(pid)?,
        })
    }

    fn since(self, before: Self) -> Self {
        Self {
            used: self.used.saturating_sub(before.used),
            waited: self.waited.saturating_sub(before.waited),
        }
    }
}

impl CpuWindow {
    fn start(server_pid: Option<u32>) -> anyhow::Result<Self> {
        let server = match server_pid {
            Some(pid) => Some((pid, Sample::take(pid)?)),
            None => None,
        };
        Ok(Self {
            began: Instant::now(),
            server,
            client: Sample::take(std::process::id())?,
        })
    }

    fn finish(self) -> anyhow::Result<CpuUse> {
        let wall = self.began.elapsed().as_secs_f64();
        let pct = |d: Duration| round2(d.as_secs_f64() / wall.max(1e-9) * 100.0);
        let server = match self.server {
            Some((pid, before)) => Some(Sample::take(pid)?.since(before)),
            None => None,
        };
        let client = Sample::take(std::process::id())?.since(self.client);
        Ok(CpuUse {
            server: server.map(|s| pct(s.used)),
            client: Some(pct(client.used)),
            server_waiting: server.map(|s| pct(s.waited)),
            client_waiting: Some(pct(client.waited)),
            window_s: round2(wall),
        })
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn build_report(
    args: &Args,
    outcomes: Vec<Outcome>,
    published: Option<PublishStats>,
    cpu_pct: CpuUse,
    rss: Option<(u64, u64, u64)>,
) -> anyhow::Result<Report> {
    let mut totals = Totals::new()?;
    let mut errors: Vec<String> = Vec::new();
    let (mut made, mut closed_early) = (0, 0);
    for outcome in &outcomes {
        totals.add(&outcome.tally)?;
        made += usize::from(outcome.connected);
        closed_early += usize::from(outcome.closed_early);
        if let Some(e) = &outcome.error {
            if errors.len() < KEPT_ERRORS && !errors.contains(e) {
                errors.push(e.clone());
            }
        }
    }
    let (first_ns, last_answered_ns) = published
        .as_ref()
        .map_or((0, 0), |p| (p.first_sent_ns, p.last_answered_ns));
    let secs = |from: u64, to: u64| to.saturating_sub(from) as f64 / 1e9;
    let publish_window_s = secs(first_ns, last_answered_ns);
    let delivery_window_s = secs(first_ns, totals.last_ns);
    let accepted = published.as_ref().map_or(0, |p| p.accepted);
    if let Some(p) = &published {
        errors.extend(p.errors.iter().cloned());
    }
    Ok(Report {
        target: args.target,
        publish_via: args.publish_via,
        subscribe_via: args.subscribe_via,
        connections: Connections {
            attempted: args.subscribers,
            made,
            failed: args.subscribers.saturating_sub(made),
            closed_early,
        },
        events: Events {
            published: accepted,
            publish_failed: published.as_ref().map_or(0, |p| p.failed),
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
        publish_latency_ms: published.as_ref().and_then(|p| Percentiles::of(&p.latency)),
        publish_window_s: round3(publish_window_s),
        delivery_window_s: round3(delivery_window_s),
        published_per_sec: rate(accepted, publish_window_s),
        delivered_per_sec: rate(totals.received, delivery_window_s),
        cpu_pct,
        server_rss: rss
            .map(|(before, connected, after)| rss_report(before, connected, after, made)),
        complete: totals.missing() == 0 && made == args.subscribers,
        errors,
    })
}

fn rate(count: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        (count as f64 / secs).round()
    } else {
        0.0
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn rss_report(before: u64, connected: u64, after: u64, connections: usize) -> Rss {
    let per = connected.saturating_sub(before) * 1024 / (connections.max(1) as u64);
    Rss {
        before_kib: before,
        connected_kib: connected,
        after_kib: after,
        per_connection_bytes: per,
    }
}
