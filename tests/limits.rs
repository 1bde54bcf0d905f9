//! Limits and lifecycle: bad subscriptions, connection and channel limits, slow subscribers,
//! graceful shutdown.

mod common;

use common::sse::ids;
use common::{Gateway, WAIT};
use serde_json::Value;
use tokio::io::AsyncReadExt;

async fn get_status(gw: &Gateway, path: &str) -> (u16, Value, reqwest::header::HeaderMap) {
    let response = gw.http().get(gw.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        headers,
    )
}

#[tokio::test]
async fn invalid_subscriptions_get_400_with_a_json_error() {
    let gw = Gateway::start(&["--max-channels-per-connection", "3"]).await;
    let cases = [
        ("/events", "no channel"),
        ("/events?channel=", "empty"),
        ("/events?channel=a%20b", "character"),
        ("/events?channel=a,,b", "empty"),
        ("/events?channel=%FF", "UTF-8"),
        ("/events?channel=a,b,c,d", "at most 3"),
        ("/events?channel=a&lastEventId=x%0Ay", "Last-Event-ID"),
    ];
    for (path, names) in cases {
        let (status, body, _) = get_status(&gw, path).await;
        assert_eq!(status, 400, "{path} answered {body}");
        let error = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{path}: no JSON error in {body}"));
        assert!(
            error.contains(names),
            "{path}: {error:?} does not mention {names:?}"
        );
    }
    let long = format!("/events?channel={}", "x".repeat(129));
    assert_eq!(get_status(&gw, &long).await.0, 400);
}

#[tokio::test]
async fn with_a_channel_list_subscribing_elsewhere_is_404() {
    let gw = Gateway::start(&["--channel", "news"]).await;
    let (status, body, _) = get_status(&gw, "/events?channel=news,other").await;
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("other"));
    assert_eq!(
        gw.stats().await["connections"],
        0,
        "a refused subscription holds nothing"
    );
}

#[tokio::test]
async fn past_the_connection_limit_503_with_retry_after_and_the_connected_are_unaffected() {
    let gw = Gateway::start(&["--max-connections", "2"]).await;
    let mut first = gw.subscribe("channel=full").await;
    let _second = gw.subscribe("channel=full").await;
    let (status, body, headers) = get_status(&gw, "/events?channel=full").await;
    assert_eq!(status, 503);
    assert!(headers.contains_key("retry-after"));
    assert!(body["error"].as_str().unwrap().contains("connections"));
    gw.publish_ok("full", "1", "still here").await;
    assert_eq!(first.next_event().await.data, "still here");
}

#[tokio::test]
async fn past_the_live_channel_limit_new_channels_get_503() {
    let gw = Gateway::start(&["--max-channels", "2"]).await;
    let _a = gw.subscribe("channel=a").await;
    let _b = gw.subscribe("channel=b").await;
    assert_eq!(get_status(&gw, "/events?channel=c").await.0, 503);
    let (status, _) = gw
        .publish(serde_json::json!({"channel": "c", "data": 1}))
        .await;
    assert_eq!(status, 503);
    assert_eq!(
        gw.publish(serde_json::json!({"channel": "a", "data": 1}))
            .await
            .0,
        202
    );
}

/// A reader that stops reading falls behind, is dropped and counted; a fast reader on the same
/// channel receives every event meanwhile, and the stalled one finds its stream ended.
#[tokio::test]
async fn a_stalled_reader_is_disconnected_while_a_fast_one_receives_everything() {
    const EVENTS: usize = 300;
    let gw = Gateway::start(&["--subscriber-queue", "16", "--write-timeout", "10m"]).await;
    let mut stalled = common::stalled_reader(gw.addr, "channel=slow").await;
    let mut fast = gw.subscribe("channel=slow").await;
    gw.wait_for_stats("two subscribers", |s| {
        s["channels"]["slow"]["subscribers"] == 2
    })
    .await;

    let payload = "y".repeat(32 * 1024);
    let reader = tokio::spawn(async move { (fast.ids(EVENTS).await, fast) });
    for id in ids(1, EVENTS) {
        gw.publish_ok("slow", &id, &payload).await;
    }
    let (received, _still_connected) = reader.await.unwrap();
    assert_eq!(
        received,
        ids(1, EVENTS),
        "the fast reader got every event in order"
    );
    let stats = gw.stats().await;
    assert_eq!(stats["slow_subscriber_disconnects"], 1);
    assert_eq!(stats["channels"]["slow"]["subscribers"], 1);

    let mut sink = Vec::new();
    tokio::time::timeout(WAIT, stalled.read_to_end(&mut sink))
        .await
        .expect("the stalled reader's stream ends once it reads")
        .unwrap();
    assert!(
        sink.ends_with(b"\n\n"),
        "the stream was closed cleanly (not reset), after a whole event"
    );
}
