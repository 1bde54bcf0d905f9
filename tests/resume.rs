//! Resume: `Last-Event-ID` and `lastEventId`, the `gap` event, `earliest`, and the hand-over from
//! history to live under concurrent publishing.

mod common;

use common::sse::ids;
use common::Gateway;
use serde_json::{json, Value};

#[tokio::test]
async fn a_known_last_event_id_replays_what_came_after_it_then_goes_live() {
    let gw = Gateway::start(&[]).await;
    for id in ids(1, 5) {
        gw.publish_ok("r", &id, &format!("event {id}")).await;
    }
    let mut stream = gw.resume("channel=r", "2").await;
    assert_eq!(stream.ids(3).await, ids(3, 5));
    gw.publish_ok("r", "6", "live").await;
    let live = stream.next_event().await;
    assert_eq!(
        (live.last_event_id.as_str(), live.data.as_str()),
        ("6", "live")
    );
}

#[tokio::test]
async fn resume_merges_the_requested_channels_in_arrival_order() {
    let gw = Gateway::start(&[]).await;
    // Arrival order is the order of fan-out: a publish answers before its event is fanned out,
    // so each event here reaches a subscriber before the next is published.
    let mut everything = gw.subscribe("channel=x,y,z").await;
    for (channel, id) in [("x", "1"), ("y", "2"), ("z", "3"), ("x", "4"), ("y", "5")] {
        gw.publish_ok(channel, id, channel).await;
        assert_eq!(everything.ids(1).await, [id]);
    }
    let mut stream = gw.subscribe("channel=x,y&lastEventId=1").await;
    assert_eq!(stream.ids(3).await, ["2", "4", "5"]);
}

#[tokio::test]
async fn an_unknown_id_gets_a_gap_event_then_every_retained_event() {
    let gw = Gateway::start(&[]).await;
    gw.publish_ok("g", "a1", "one").await;
    gw.publish_ok("g", "a2", "two").await;
    let mut stream = gw.resume("channel=g", "never-sent").await;
    let gap = stream.next_event().await;
    assert_eq!(gap.event, "gap");
    assert!(!gap.had_id, "the gap event carries no id: line");
    let data: Value = serde_json::from_str(&gap.data).unwrap();
    assert_eq!(data, json!({"lastEventId": "never-sent", "oldestId": "a1"}));
    assert_eq!(stream.ids(2).await, ["a1", "a2"]);
    assert_eq!(gw.stats().await["gaps"], 1);
}

#[tokio::test]
async fn an_evicted_id_gets_a_gap_naming_the_oldest_retained_one() {
    let gw = Gateway::start(&["--history-size", "3"]).await;
    for id in ids(1, 5) {
        gw.publish_ok("ev", &id, "x").await;
    }
    let mut stream = gw.subscribe("channel=ev&lastEventId=1").await;
    let gap = stream.next_event().await;
    assert_eq!(
        serde_json::from_str::<Value>(&gap.data).unwrap(),
        json!({"lastEventId": "1", "oldestId": "3"})
    );
    assert_eq!(stream.ids(3).await, ids(3, 5));
}

#[tokio::test]
async fn a_gap_on_an_empty_history_has_a_null_oldest_id() {
    let gw = Gateway::start(&[]).await;
    let mut stream = gw.resume("channel=empty", "41").await;
    let gap = stream.next_event().await;
    assert_eq!(
        serde_json::from_str::<Value>(&gap.data).unwrap(),
        json!({"lastEventId": "41", "oldestId": null})
    );
}

#[tokio::test]
async fn earliest_replays_every_retained_event_without_a_gap() {
    let gw = Gateway::start(&[]).await;
    for id in ids(1, 3) {
        gw.publish_ok("e", &id, "x").await;
    }
    let mut stream = gw.subscribe("channel=e&lastEventId=earliest").await;
    let events = stream.events(3).await;
    assert!(events.iter().all(|e| e.event == "message"));
    assert_eq!(
        events
            .into_iter()
            .map(|e| e.last_event_id)
            .collect::<Vec<_>>(),
        ids(1, 3)
    );
}

#[tokio::test]
async fn retained_events_expire_after_the_history_max_age() {
    let gw = Gateway::start(&["--history-max-age", "300ms"]).await;
    gw.publish_ok("old", "1", "x").await;
    gw.wait_for_stats("the event to expire", |s| {
        s["channels"]["old"]["retained"] == 0 || s["channels"].get("old").is_none()
    })
    .await;
    let mut stream = gw.resume("channel=old", "1").await;
    let gap = stream.next_event().await;
    assert_eq!(gap.event, "gap");
}

/// Subscribers resume at many points while a publisher is running; each must see every later
/// event exactly once, in order, across the hand-over from history to live.
#[tokio::test]
async fn resuming_under_concurrent_publishing_loses_and_repeats_nothing() {
    const TOTAL: usize = 400;
    let gw = std::sync::Arc::new(Gateway::start(&[]).await);
    gw.publish_ok("busy", "1", "first").await;
    let publisher = {
        let gw = std::sync::Arc::clone(&gw);
        tokio::spawn(async move {
            for id in ids(2, TOTAL) {
                gw.publish_ok("busy", &id, "x").await;
            }
        })
    };
    let mut readers = Vec::new();
    let mut last_seen = 0;
    while readers.len() < 12 {
        let published = gw.stats().await["channels"]["busy"]["published"]
            .as_u64()
            .unwrap() as usize;
        if published >= TOTAL - 20 {
            break;
        }
        if published > last_seen {
            last_seen = published;
            let mut stream = gw.resume("channel=busy", &published.to_string()).await;
            readers.push(tokio::spawn(async move {
                (published, stream.ids(TOTAL - published).await)
            }));
        }
        tokio::task::yield_now().await;
    }
    publisher.await.unwrap();
    assert!(
        readers.len() >= 3,
        "only {} resumes happened during publishing",
        readers.len()
    );
    for reader in readers {
        let (from, got) = reader.await.unwrap();
        assert_eq!(got, ids(from + 1, TOTAL), "resumed after {from}");
    }
}
