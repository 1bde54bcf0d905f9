//! RabbitMQ input, against a real broker: properties to id/type, routing in both channel modes,
//! rejected deliveries, HTTP publish through the broker, several instances, gateway restarts.

mod common;

use common::broker::{shared_url, unique, Producer};
use common::sse::ids;
use common::Gateway;
use serde_json::json;

/// Setup starts a producer on a fresh exchange of the shared broker.
async fn producer() -> (String, String, Producer) {
    let url = shared_url();
    let exchange = unique("sse-test");
    // The gateway declares the exchange; the producer needs it to exist first, so declare it
    // the way the gateway does (durable topic) by starting from the same name.
    let producer = Producer::connect(&url, &exchange).await;
    (url, exchange, producer)
}

#[tokio::test]
async fn a_message_with_message_id_and_type_arrives_with_those_as_id_and_event() {
    let (url, exchange, producer) = producer().await;
    let gw = Gateway::start_amqp(&url, &exchange, &unique("gw"), &[]).await;
    let mut stream = gw.subscribe("channel=orders").await;

    producer
        .publish(
            "orders",
            Some("order-1"),
            Some("created"),
            b"{\"total\": 3}",
        )
        .await;
    producer
        .publish("orders", None, None, b"line one\r\nline two")
        .await;

    let typed = stream.next_event().await;
    assert_eq!(
        (
            typed.last_event_id.as_str(),
            typed.event.as_str(),
            typed.data.as_str()
        ),
        ("order-1", "created", "{\"total\": 3}")
    );
    let plain = stream.next_event().await;
    assert_eq!(
        (plain.event.as_str(), plain.data.as_str()),
        ("message", "line one\nline two")
    );
    assert!(
        plain.had_id && plain.last_event_id != "order-1",
        "an id is assigned when message_id is absent"
    );
    let metrics = gw.text("/metrics").await;
    assert!(
        metrics.contains("sse_gateway_amqp_connected 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sse_gateway_events_received_total{source=\"amqp\"} 2"),
        "{metrics}"
    );
    producer.delete_exchange().await;
}

#[tokio::test]
async fn without_a_channel_list_the_routing_key_is_the_channel() {
    let (url, exchange, producer) = producer().await;
    let gw = Gateway::start_amqp(&url, &exchange, &unique("gw"), &[]).await;
    let mut news = gw.subscribe("channel=news").await;
    let mut sport = gw.subscribe("channel=sport").await;
    producer.publish("sport", Some("s1"), None, b"goal").await;
    producer
        .publish("news", Some("n1"), None, b"headline")
        .await;
    assert_eq!(news.next_event().await.data, "headline");
    assert_eq!(sport.next_event().await.data, "goal");
    producer.delete_exchange().await;
}

#[tokio::test]
async fn listed_channels_get_their_own_queue_bound_with_their_key() {
    let (url, exchange, producer) = producer().await;
    let instance = unique("gw");
    let gw = Gateway::start_amqp(
        &url,
        &exchange,
        &instance,
        &["--channel", "news", "--channel", "eu=orders.eu.#"],
    )
    .await;
    let mut eu = gw.subscribe("channel=eu").await;
    let mut news = gw.subscribe("channel=news").await;

    producer
        .publish("orders.us.created", Some("us-1"), None, b"not ours")
        .await;
    producer
        .publish(
            "orders.eu.created",
            Some("eu-1"),
            Some("created"),
            b"eu order",
        )
        .await;
    producer
        .publish("news", Some("n-1"), None, b"news item")
        .await;

    let event = eu.next_event().await;
    assert_eq!(
        (event.last_event_id.as_str(), event.data.as_str()),
        ("eu-1", "eu order")
    );
    assert_eq!(news.next_event().await.last_event_id, "n-1");
    // Only two of the three messages matched a binding.
    gw.wait_for_stats("two deliveries counted", |s| {
        s["amqp"]["deliveries_consumed"] == 2
    })
    .await;
    producer.delete_exchange().await;
}

#[tokio::test]
async fn unusable_deliveries_are_rejected_and_counted_without_stopping_the_consumer() {
    let (url, exchange, producer) = producer().await;
    let gw =
        Gateway::start_amqp(&url, &exchange, &unique("gw"), &["--max-event-size", "100"]).await;
    let mut stream = gw.subscribe("channel=bad").await;

    producer
        .publish("bad", Some("1"), None, b"\xff\xfe not utf-8")
        .await;
    producer
        .publish("bad", Some("a\nid: forged"), None, b"x")
        .await;
    producer.publish("bad", Some("3"), Some("t\0"), b"x").await;
    producer
        .publish("not a channel", Some("4"), None, b"x")
        .await;
    producer.publish("bad", Some("5"), None, &[b'x'; 101]).await;
    producer
        .publish("bad", Some("ok"), None, b"still consuming")
        .await;

    let event = stream.next_event().await;
    assert_eq!(
        (event.last_event_id.as_str(), event.data.as_str()),
        ("ok", "still consuming")
    );
    let stats = gw
        .wait_for_stats("five rejections", |s| s["amqp"]["deliveries_rejected"] == 5)
        .await;
    assert_eq!(stats["amqp"]["connected"], true);
    let logs = gw.logs();
    assert!(
        logs.contains("AMQP delivery rejected"),
        "rejections are logged"
    );
    assert!(
        logs.contains("body is not valid UTF-8") && logs.contains("routing_key"),
        "with their reason and channel"
    );
    producer.delete_exchange().await;
}

#[tokio::test]
async fn an_http_publish_goes_through_the_broker_to_every_instance() {
    let (url, exchange, producer) = producer().await;
    let first = Gateway::start_amqp(&url, &exchange, &unique("gw-a"), &[]).await;
    let second = Gateway::start_amqp(&url, &exchange, &unique("gw-b"), &[]).await;
    let mut on_first = first.subscribe("channel=shared").await;
    let mut on_second = second.subscribe("channel=shared").await;

    let (status, answer) = first
        .publish(json!({"channel": "shared", "id": "h-1", "event": "note", "data": {"k": 1}}))
        .await;
    assert_eq!((status, answer["id"].as_str()), (202, Some("h-1")));
    for stream in [&mut on_first, &mut on_second] {
        let event = stream.next_event().await;
        assert_eq!(
            (
                event.last_event_id.as_str(),
                event.event.as_str(),
                event.data.as_str()
            ),
            ("h-1", "note", r#"{"k":1}"#)
        );
    }
    second
        .wait_for_stats("the delivery counted", |s| {
            s["amqp"]["deliveries_consumed"] == 1
        })
        .await;
    producer.delete_exchange().await;
}

#[tokio::test]
async fn a_browser_resumes_on_another_instance_with_its_last_event_id() {
    let (url, exchange, producer) = producer().await;
    let first = Gateway::start_amqp(&url, &exchange, &unique("gw-a"), &[]).await;
    let second = Gateway::start_amqp(&url, &exchange, &unique("gw-b"), &[]).await;
    let mut stream = first.subscribe("channel=feed").await;
    for id in ids(1, 5) {
        producer.publish("feed", Some(&id), None, b"x").await;
    }
    assert_eq!(stream.ids(3).await, ids(1, 3));
    drop(stream);
    second
        .wait_for_stats("all five consumed", |s| {
            s["amqp"]["deliveries_consumed"] == 5
        })
        .await;
    let mut resumed = second.resume("channel=feed", "3").await;
    let events = resumed.events(2).await;
    assert!(
        events.iter().all(|e| e.event == "message"),
        "no gap: the id is known on the other instance"
    );
    assert_eq!(
        events
            .into_iter()
            .map(|e| e.last_event_id)
            .collect::<Vec<_>>(),
        ids(4, 5)
    );
    producer.delete_exchange().await;
}

#[tokio::test]
async fn a_gateway_restarted_with_the_same_instance_id_receives_what_was_published_while_it_was_down(
) {
    let (url, exchange, producer) = producer().await;
    let instance = unique("gw");
    let mut before = Gateway::start_amqp(&url, &exchange, &instance, &[]).await;
    before.terminate();
    assert!(before
        .wait_exit(std::time::Duration::from_secs(10))
        .await
        .success());

    for id in ids(1, 3) {
        producer
            .publish("missed", Some(&id), None, b"while down")
            .await;
    }
    let after = Gateway::start_amqp(&url, &exchange, &instance, &[]).await;
    after
        .wait_for_stats("the queued messages consumed", |s| {
            s["amqp"]["deliveries_consumed"] == 3
        })
        .await;
    let mut stream = after.subscribe("channel=missed&lastEventId=earliest").await;
    assert_eq!(stream.ids(3).await, ids(1, 3));
    producer.delete_exchange().await;
}

/// With RabbitMQ on, an HTTP publish goes through the broker and comes back through this
/// gateway's consumer, which refuses events over `--max-event-size`: such an event is refused
/// with 413 before it is sent, not answered 202 and then dropped.
#[tokio::test]
async fn an_http_publish_larger_than_the_consumer_takes_is_413_not_202() {
    let (url, exchange, producer) = producer().await;
    let gw = Gateway::start_amqp(
        &url,
        &exchange,
        &unique("gw-size"),
        &["--max-event-size", "100", "--max-body", "65536"],
    )
    .await;
    let mut stream = gw.subscribe("channel=sized").await;
    let (status, answer) = gw
        .publish(json!({"channel": "sized", "id": "big", "data": "x".repeat(101)}))
        .await;
    assert_eq!(status, 413, "{answer}");
    assert!(answer["error"]
        .as_str()
        .unwrap()
        .contains("--max-event-size"));
    let (status, _) = gw
        .publish(json!({"channel": "sized", "id": "fits", "data": "x".repeat(100)}))
        .await;
    assert_eq!(status, 202);
    assert_eq!(stream.next_event().await.last_event_id, "fits");
    producer.delete_exchange().await;
}
