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
use crate::report::Report;
use crate::subscriber::{self, Outcome};
use crate::tally::{latency_template, Tally};
use crate::usage::CpuWindow;

/// How long stopped subscribers get to hand back their tallies.
const COLLECT_TIMEOUT: Duration = Duration::from_secs(30);

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
    // With nothing to publish the run's window is the hold itself (idle connections); otherwise
    // it is the publishing and the delivery that follows.
    let idle = args.events == 0;
    let idle_window = if idle {
        Some(CpuWindow::start(args.server_pid)?)
    } else {
        None
    };
    tokio::time::sleep(args.settle + args.hold).await;
    let rss_connected = server_rss(&args)?;
    let window = match idle_window {
        Some(window) => window,
        None => CpuWindow::start(args.server_pid)?,
    };
    let published = publish_on_own_thread(Arc::clone(&args)).await?;
    if published.as_ref().is_some_and(|p| p.accepted > 0) {
        progress
            .wait_until(args.drain_timeout, |p| p.complete() >= p.connected())
            .await;
    }
    let cpu = window.finish()?;
    // The server may have died during the run: that is a finding, not a reason to lose it.
    let rss_after = server_rss(&args).ok().flatten();
    let _ = stop.send(true);
    let outcomes = collect(subscribers).await;
    let rss = match (rss_before, rss_connected) {
        (Some(before), Some(connected)) => Some((before, connected, rss_after)),
        _ => None,
    };
    Report::build(&args, &outcomes, published.as_ref(), cpu, rss)
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
/// Publish_on_own_thread publishes from a thread and runtime of their own. On the shared runtime
/// a publish's answer waits in the run queue behind thousands of subscriber tasks once the tool
/// is busy, and the publish latency measured would be the tool's, not the server's; a thread of
/// its own is woken by the kernel as soon as the answer arrives.
async fn publish_on_own_thread(args: Arc<Args>) -> anyhow::Result<Option<PublishStats>> {
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("sse-load-publish".into())
        .spawn(move || {
            let published = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the publisher's runtime")
                .and_then(|runtime| runtime.block_on(publish_events(&args)));
            let _ = done.send(published);
        })
        .context("starting the publisher's thread")?;
    result.await.context("the publisher's thread stopped")?
}

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
