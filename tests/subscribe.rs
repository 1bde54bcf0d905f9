//! Subscribing: delivery, wire format, headers, heartbeats and stats, seen by a real client.

mod common;

use common::sse::ids;
use common::Gateway;
use serde_json::json;
use sse_gateway::sse_parser::Item;

#[tokio::test]
async fn each_subscriber_receives_exactly_the_events_of_its_channels() {
    let gw = Gateway::start(&[]).await;
    let mut only_a = gw.subscribe("channel=a").await;
    let mut also_a = gw.subscribe("channel=a").await;
    let mut a_and_b = gw.subscribe("channel=a&channel=b").await;
    let mut b_comma_c = gw.subscribe("channel=b,c").await;

    gw.publish_ok("a", "1", "to a").await;
    gw.publish_ok("b", "2", "to b").await;
    gw.publish_ok("c", "3", "to c").await;
    gw.publish_ok("a", "4", "to a again").await;

    assert_eq!(only_a.ids(2).await, ["1", "4"]);
    assert_eq!(also_a.ids(2).await, ["1", "4"]);
    // Each channel's events arrive in publish order; a publish answers before its event is
    // fanned out, so events of different channels published in a row may arrive either way.
    let received = a_and_b.ids(3).await;
    let of_a: Vec<&str> = received
        .iter()
        .map(String::as_str)
        .filter(|id| *id != "2")
        .collect();
    assert_eq!(of_a, ["1", "4"], "a's events in order, among {received:?}");
    assert!(
        received.iter().any(|id| id == "2"),
        "b's event: {received:?}"
    );
    let events = b_comma_c.events(2).await;
    let mut data: Vec<_> = events.iter().map(|e| e.data.as_str()).collect();
    data.sort();
    assert_eq!(data, ["to b", "to c"]);
}

#[tokio::test]
async fn the_response_has_sse_headers_and_opens_before_any_event() {
    let gw = Gateway::start(&["--retry", "2500ms"]).await;
    let mut stream = gw.subscribe("channel=news").await;
    assert_eq!(stream.headers["content-type"], "text/event-stream");
    assert_eq!(stream.headers["cache-control"], "no-cache");
    assert_eq!(stream.headers["x-accel-buffering"], "no");
    assert_eq!(stream.headers["x-content-type-options"], "nosniff");
    assert_eq!(
        stream.next_item().await,
        Some(Item::Retry(2500)),
        "the first bytes arrive with no event published"
    );
    assert!(matches!(stream.next_item().await, Some(Item::Comment(_))));
}

#[tokio::test]
async fn multi_line_data_and_event_types_follow_the_sse_wire_format() {
    let gw = Gateway::start(&[]).await;
    let mut parsed = gw.subscribe("channel=fmt").await;
    let mut raw = gw
        .http()
        .get(gw.url("/events?channel=fmt"))
        .send()
        .await
        .unwrap();

    let body =
        json!({"channel": "fmt", "id": "7", "event": "note", "data": "one\r\ntwo\rthree\nfour"});
    assert_eq!(gw.publish(body).await.0, 202);
    let body = json!({"channel": "fmt", "id": "8", "data": {"n": [1, 2]}});
    assert_eq!(gw.publish(body).await.0, 202);

    let typed = parsed.next_event().await;
    assert_eq!(
        (
            typed.event.as_str(),
            typed.data.as_str(),
            typed.last_event_id.as_str()
        ),
        ("note", "one\ntwo\nthree\nfour", "7")
    );
    let untyped = parsed.next_event().await;
    assert_eq!(
        (untyped.event.as_str(), untyped.data.as_str()),
        ("message", r#"{"n":[1,2]}"#)
    );

    let mut bytes = Vec::new();
    let expected: &[u8] = b"id: 7\nevent: note\ndata: one\ndata: two\ndata: three\ndata: four\n\nid: 8\ndata: {\"n\":[1,2]}\n\n";
    while !bytes.ends_with(expected) {
        let chunk = tokio::time::timeout(common::WAIT, raw.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        bytes.extend_from_slice(&chunk);
    }
    assert!(bytes.starts_with(b"retry: 3000\n"));
}

#[tokio::test]
async fn an_idle_stream_gets_heartbeat_comments() {
    let gw = Gateway::start(&["--heartbeat", "200ms"]).await;
    let mut stream = gw.subscribe("channel=quiet").await;
    let mut comments = 0;
    while comments < 3 {
        match stream.next_item().await {
            Some(Item::Comment(_)) => comments += 1,
            Some(Item::Retry(_)) => {}
            other => panic!("expected only comments on an idle stream, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn stats_count_connections_subscribers_published_and_retained_events() {
    let gw = Gateway::start(&["--history-size", "2"]).await;
    let _one = gw.subscribe("channel=s1").await;
    let two = gw.subscribe("channel=s1,s2").await;
    for id in ids(1, 3) {
        gw.publish_ok("s1", &id, "x").await;
    }
    let stats = gw.stats().await;
    assert_eq!(
        stats["channels"]["s1"],
        json!({"subscribers": 2, "published": 3, "retained": 2})
    );
    assert_eq!(
        stats["channels"]["s2"],
        json!({"subscribers": 1, "published": 0, "retained": 0})
    );
    assert_eq!(stats["events_published"], 3);

    drop(two);
    // The slot is freed at once; each channel's broadcaster removes the subscriber when it
    // handles the unsubscribe, and a channel with no subscriber and no history retires.
    let stats = gw
        .wait_for_stats("the subscriber gone from its channels", |s| {
            s["connections"] == 1
                && s["channels"]["s1"]["subscribers"] == 1
                && s["channels"].get("s2").is_none()
        })
        .await;
    assert_eq!(stats["channels"]["s1"]["retained"], 2);
}

#[tokio::test]
async fn health_and_readiness_answer_while_serving() {
    let gw = Gateway::start(&[]).await;
    assert_eq!(gw.get("/healthz").await, (200, json!({"status": "ok"})));
    assert_eq!(gw.get("/readyz").await, (200, json!({"status": "ready"})));
    let (status, body) = gw.get("/nowhere").await;
    assert_eq!((status, body["error"].is_string()), (404, true));
}

/// A subscription is answered outside actix-web's dispatcher when its request head arrives
/// whole (the common case), and by actix-web otherwise (here: a head longer than the bare path
/// peeks at). Both must look the same to a browser: status, stream headers, CORS and request id.
#[tokio::test]
async fn a_subscription_is_answered_alike_by_the_bare_path_and_by_actix_web() {
    let long_cookie = format!("c={}", "x".repeat(9 * 1024));
    // Each request on a new connection: a connection that served another request first stays
    // with actix-web.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    for cors in [
        &[][..],
        &["--cors-origin", "*"],
        &["--cors-origin", "https://app.example"],
    ] {
        let gw = Gateway::start(cors).await;
        let answer = |origin: &'static str, cookie: Option<String>| {
            let mut request = http
                .get(gw.url("/events?channel=alike"))
                .header("x-request-id", "req-1")
                .header("origin", origin);
            if let Some(cookie) = cookie {
                request = request.header("cookie", cookie);
            }
            request.send()
        };
        for origin in ["https://app.example", "https://other.example"] {
            let bare = answer(origin, None).await.unwrap();
            let actix = answer(origin, Some(long_cookie.clone())).await.unwrap();
            assert!(
                bare.headers().get("transfer-encoding").is_none(),
                "the bare path delimits the body by closing"
            );
            assert_eq!(actix.headers()["transfer-encoding"], "chunked");
            assert_eq!(bare.status(), 200);
            assert_eq!(actix.status(), 200);
            for name in [
                "content-type",
                "cache-control",
                "x-accel-buffering",
                "x-content-type-options",
                "x-request-id",
                "connection",
                "access-control-allow-origin",
                "access-control-allow-credentials",
                "access-control-expose-headers",
                "vary",
            ] {
                assert_eq!(
                    bare.headers().get(name),
                    actix.headers().get(name),
                    "{name} with {cors:?} and origin {origin}"
                );
            }
            let (mut bare, mut actix) = (bare, actix);
            assert_eq!(
                bare.chunk().await.unwrap(),
                actix.chunk().await.unwrap(),
                "the stream opens with the same bytes"
            );
        }
    }
}
