//! Faults: shutdown under load, an instance killed outright, in-flight deliveries at shutdown,
//! and slow consumers at scale.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::broker::{shared_url, unique, Producer};
use common::sse::{ids, SseStream};
use common::Gateway;
use sse_gateway::sse_parser::Item;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_1000_subscribers_ends_each_stream_with_a_spread_retry_and_exits() {
    let mut gw = Gateway::start(&["--retry", "1s", "--shutdown-retry-spread", "4s"]).await;
    let mut streams = Vec::new();
    for _ in 0..1000 {
        streams.push(gw.subscribe("channel=bye").await);
    }
    gw.terminate();
    let mut delays = BTreeSet::new();
    for stream in &mut streams {
        let last_retry = stream
            .rest()
            .await
            .into_iter()
            .rev()
            .find_map(|item| match item {
                Item::Retry(ms) => Some(ms),
                _ => None,
            });
        let delay = last_retry.expect("a final retry: before the stream ends");
        assert!(
            (1000..=5000).contains(&delay),
            "retry {delay} ms outside 1 s + [0, 4 s]"
        );
        delays.insert(delay);
    }
    assert!(
        delays.len() > 100,
        "reconnects spread out: only {} distinct delays",
        delays.len()
    );
    let status = gw.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "exit status {status}");
}

/// SIGTERM in the middle of a stream of deliveries: what the gateway acknowledged, its
/// subscriber received; the rest was requeued and a restart with the same instance id gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_requeues_in_flight_deliveries_and_acks_none_unsent() {
    const TOTAL: usize = 400;
    let url = shared_url();
    let exchange = unique("sse-inflight");
    let instance = unique("gw");
    let mut first = Gateway::start_amqp(&url, &exchange, &instance, &["--prefetch", "50"]).await;
    let mut stream = first.subscribe("channel=inflight").await;
    let producer = Arc::new(Producer::connect(&url, &exchange).await);
    let publishing = producer.publish_ids("inflight", TOTAL, Duration::ZERO);
    let mut received: BTreeSet<usize> = BTreeSet::new();
    while received.len() < 50 {
        received.insert(stream.next_event().await.last_event_id.parse().unwrap());
    }
    first.terminate();
    for item in stream.rest().await {
        if let Item::Event(event) = item {
            received.insert(event.last_event_id.parse().unwrap());
        }
    }
    assert!(first.wait_exit(Duration::from_secs(10)).await.success());
    publishing.await.unwrap();

    let second = Gateway::start_amqp(&url, &exchange, &instance, &[]).await;
    let missing = TOTAL - received.len();
    let consumed = second
        .wait_for_stats("the rest consumed", |s| {
            s["channels"]["inflight"]["published"].as_u64() >= Some(missing as u64)
        })
        .await["channels"]["inflight"]["published"]
        .as_u64()
        .unwrap();
    let mut replay = second
        .subscribe("channel=inflight&lastEventId=earliest")
        .await;
    for event in replay.events(consumed as usize).await {
        received.insert(event.last_event_id.parse().unwrap());
    }
    assert_eq!(
        received,
        (1..=TOTAL).collect::<BTreeSet<_>>(),
        "every message reached a subscriber"
    );
    producer.delete_exchange().await;
}

/// An instance dies without warning; its subscriber reconnects to another instance with its
/// Last-Event-ID and gets every later event, in order, without a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_an_instance_is_killed_its_subscribers_resume_on_another_missing_nothing() {
    const TOTAL: usize = 200;
    let url = shared_url();
    let exchange = unique("sse-kill");
    let mut doomed = Gateway::start_amqp(&url, &exchange, &unique("gw-a"), &[]).await;
    let survivor = Gateway::start_amqp(&url, &exchange, &unique("gw-b"), &[]).await;
    let mut stream = doomed.subscribe("channel=kill").await;
    let producer = Arc::new(Producer::connect(&url, &exchange).await);
    let publishing = producer.publish_ids("kill", TOTAL, Duration::from_millis(2));
    let mut seen = Vec::new();
    while seen.len() < 50 {
        seen.push(stream.next_event().await.last_event_id);
    }
    doomed.kill();
    for item in stream.rest().await {
        if let Item::Event(event) = item {
            seen.push(event.last_event_id);
        }
    }
    let last: usize = seen.last().unwrap().parse().unwrap();
    assert_eq!(seen, ids(1, last), "in order before the kill");
    // As a browser would after its retry delay: by then the survivor has consumed that id.
    survivor
        .wait_for_stats("the survivor caught up", |s| {
            s["channels"]["kill"]["published"].as_u64() >= Some(last as u64)
        })
        .await;
    let mut resumed = survivor.resume("channel=kill", &last.to_string()).await;
    let rest = resumed.events(TOTAL - last).await;
    assert!(rest.iter().all(|e| e.event == "message"), "no gap event");
    assert_eq!(
        rest.into_iter()
            .map(|e| e.last_event_id)
            .collect::<Vec<_>>(),
        ids(last + 1, TOTAL)
    );
    publishing.await.unwrap();
    producer.delete_exchange().await;
}

/// With 1000 subscribers of which 10 never read, the other 990 receive every event of a burst
/// in order, and the 10 are disconnected and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_stalled_readers_among_1000_are_dropped_and_the_rest_get_everything() {
    const EVENTS: usize = 300;
    let gw = Arc::new(
        Gateway::start(&[
            "--subscriber-queue",
            "32",
            "--send-buffer",
            "8192",
            "--write-timeout",
            "10m",
        ])
        .await,
    );
    let mut stalled = Vec::new();
    for _ in 0..10 {
        stalled.push(common::stalled_reader(gw.addr, "channel=burst").await);
    }
    let mut readers = Vec::new();
    for _ in 0..990 {
        let mut stream: SseStream = gw.subscribe("channel=burst").await;
        readers.push(tokio::spawn(
            async move { (stream.ids(EVENTS).await, stream) },
        ));
    }
    gw.wait_for_stats("1000 subscribers", |s| {
        s["channels"]["burst"]["subscribers"] == 1000
    })
    .await;
    let payload = "p".repeat(500);
    for id in ids(1, EVENTS) {
        gw.publish_ok("burst", &id, &payload).await;
    }
    let mut keep = Vec::new();
    for reader in readers {
        let (received, stream) = reader.await.unwrap();
        assert_eq!(received, ids(1, EVENTS));
        keep.push(stream);
    }
    let stats = gw.stats().await;
    assert_eq!(stats["slow_subscriber_disconnects"], 10, "{stats}");
    assert_eq!(stats["channels"]["burst"]["subscribers"], 990);
    drop(stalled);
}
