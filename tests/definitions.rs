//! `amqp-definitions/`: a broker booted with the repository's `rabbitmq.conf` lines and
//! `definitions.json` serves the gateway with the least-privileged user it defines, and
//! producers with the publisher user.

mod common;

use std::path::Path;

use common::broker::{free_port, PrivateNode, Producer};
use common::{Gateway, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_definitions_give_the_gateway_and_publishers_what_they_need_and_no_more() {
    let definitions = Path::new(env!("CARGO_MANIFEST_DIR")).join("amqp-definitions");
    let conf = std::fs::read_to_string(definitions.join("rabbitmq.conf")).unwrap();
    let port = free_port();
    // The node reads its definitions from its own directory instead of /etc/rabbitmq.
    let local = PrivateNode::dir_for(port).join("definitions.json");
    let conf = conf.replace(
        "/etc/rabbitmq/definitions.json",
        &local.display().to_string(),
    );
    let node = PrivateNode::prepare_with(port, &conf);
    std::fs::copy(definitions.join("definitions.json"), &local).unwrap();
    let _ = std::process::Command::new("chown")
        .args(["rabbitmq:rabbitmq"])
        .arg(&local)
        .status();
    let node = tokio::task::spawn_blocking(move || {
        node.boot();
        node
    })
    .await
    .unwrap();

    let gateway_url = format!("amqp://sse-gateway:change-me-gateway@127.0.0.1:{port}/sse");
    let gw = Gateway::start(&[
        "--amqp-url",
        &gateway_url,
        "--exchange-passive",
        "--instance-id",
        "defs",
    ])
    .await;
    gw.wait_ready().await;
    let mut stream = gw.subscribe("channel=news").await;

    let publisher_url = format!("amqp://publisher:change-me-publisher@127.0.0.1:{port}/sse");
    let producer = Producer::connect(&publisher_url, "sse").await;
    producer
        .publish(
            "news",
            Some("p-1"),
            Some("headline"),
            b"from the publisher user",
        )
        .await;
    let event = stream.next_event().await;
    assert_eq!(
        (event.last_event_id.as_str(), event.event.as_str()),
        ("p-1", "headline")
    );

    let (status, _) = gw
        .publish(serde_json::json!({"channel": "news", "id": "h-1", "data": "via HTTP"}))
        .await;
    assert_eq!(status, 202, "the gateway user may publish to the exchange");
    assert_eq!(stream.next_event().await.last_event_id, "h-1");

    // Least privilege: the gateway user may not (re)declare the exchange the definitions own.
    let declaring = Gateway::start(&["--amqp-url", &gateway_url, "--instance-id", "defs-2"]).await;
    let deadline = std::time::Instant::now() + WAIT;
    while !declaring.logs().contains("ACCESS_REFUSED") {
        assert!(
            std::time::Instant::now() < deadline,
            "expected ACCESS_REFUSED; logs:\n{}",
            declaring.logs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(declaring.get("/readyz").await.0, 503);
    assert!(
        !gw.logs().contains("change-me-gateway"),
        "the AMQP password is never logged"
    );
    drop(node);
}
