//! Broker faults, on a private RabbitMQ node the test stops and starts: down at start-up, a cut
//! connection, a broker restart. Each time `/readyz` follows the connection, the gateway comes
//! back by itself, and nothing published while it was away is lost.

mod common;

use common::broker::{free_port, unique, PrivateNode, Producer};
use common::Gateway;

/// Run_blocking runs a slow broker command off the test's async threads.
async fn run_blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_rides_out_a_late_broker_a_cut_connection_and_a_broker_restart() {
    let node = std::sync::Arc::new(PrivateNode::prepare(free_port()));
    let producer_url = node.url("%2f");
    let gateway_url = producer_url.replace("guest:guest", "gateway:gateway-secret");
    let exchange = unique("sse-faults");
    let gw = Gateway::start(&[
        "--amqp-url",
        &gateway_url,
        "--exchange",
        &exchange,
        "--instance-id",
        "faults",
        "--amqp-reconnect-max",
        "1s",
    ])
    .await;

    // 1. The broker is down at start-up: the gateway serves, is alive, and not ready.
    assert_eq!(gw.get("/healthz").await.0, 200);
    gw.wait_readyz(503).await;
    let mut stream = gw.subscribe("channel=faults").await;
    let (status, answer) = gw
        .publish(serde_json::json!({"channel": "faults", "data": "lost?"}))
        .await;
    assert_eq!(
        status, 503,
        "an HTTP publish is refused, not half-done: {answer}"
    );
    assert!(answer["error"].as_str().unwrap().contains("RabbitMQ"));
    let n = std::sync::Arc::clone(&node);
    run_blocking(move || {
        n.boot();
        n.ctl(&["add_user", "gateway", "gateway-secret"]);
        n.ctl(&["set_permissions", "-p", "/", "gateway", ".*", ".*", ".*"]);
    })
    .await;
    gw.wait_ready().await;
    let producer = Producer::connect(&producer_url, &exchange).await;
    producer
        .publish("faults", Some("1"), None, b"after the broker appeared")
        .await;
    assert_eq!(stream.next_event().await.last_event_id, "1");

    // While the gateway's permissions are revoked it cannot come back, so the test knows that
    // what it publishes then arrives before the gateway has reconnected.
    let revoke = |n: std::sync::Arc<PrivateNode>| {
        move || n.ctl(&["clear_permissions", "-p", "/", "gateway"])
    };
    let restore = |n: std::sync::Arc<PrivateNode>| {
        move || n.ctl(&["set_permissions", "-p", "/", "gateway", ".*", ".*", ".*"])
    };

    // 2. The connection is cut: not ready until it is back; what was published meanwhile arrives.
    run_blocking(revoke(std::sync::Arc::clone(&node))).await;
    let n = std::sync::Arc::clone(&node);
    run_blocking(move || n.close_connections()).await;
    gw.wait_readyz(503).await;
    let producer = Producer::connect(&producer_url, &exchange).await;
    producer
        .publish("faults", Some("2"), None, b"while the connection was cut")
        .await;
    assert_eq!(gw.get("/readyz").await.0, 503);
    run_blocking(restore(std::sync::Arc::clone(&node))).await;
    gw.wait_ready().await;
    assert_eq!(stream.next_event().await.last_event_id, "2");

    // 3. The broker restarts: what is published once it is back, before the gateway has
    //    reconnected, is delivered.
    run_blocking(revoke(std::sync::Arc::clone(&node))).await;
    let n = std::sync::Arc::clone(&node);
    run_blocking(move || n.stop_app()).await;
    gw.wait_readyz(503).await;
    let n = std::sync::Arc::clone(&node);
    run_blocking(move || n.start_app()).await;
    let producer = Producer::connect(&producer_url, &exchange).await;
    producer
        .publish("faults", Some("3"), None, b"right after the restart")
        .await;
    producer
        .publish("faults", Some("4"), None, b"and another")
        .await;
    assert_eq!(gw.get("/readyz").await.0, 503);
    run_blocking(restore(std::sync::Arc::clone(&node))).await;
    gw.wait_ready().await;
    assert_eq!(stream.ids(2).await, ["3", "4"]);

    let stats = gw
        .wait_for_stats("four deliveries counted", |s| {
            s["amqp"]["deliveries_consumed"] == 4
        })
        .await;
    assert!(
        stats["amqp"]["reconnects"].as_u64().unwrap() >= 2,
        "{stats}"
    );
    assert!(
        gw.logs()
            .contains("RabbitMQ connection lost or refused; retrying"),
        "the loss is logged"
    );
}
