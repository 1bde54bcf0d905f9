//! The demo page in a real browser: headless Chromium (the system's, driven through
//! `tests/browser/driver.mjs`) loads `/`, subscribes with its own `EventSource`, and shows events
//! published from its form, over HTTP and over AMQP (with `docs/examples/publish.py`); then the
//! gateway restarts and the page resumes with `Last-Event-ID` without losing an event.
//!
//! Needs Chromium (`apt-get install -y chromium`), `npm ci --prefix tests/browser`, pika
//! (`pip install pika`) and a broker (as the other RabbitMQ tests); without one of them the test
//! fails saying which. It leaves screenshots in `target/tmp/browser/`.

mod common;
#[path = "browser/driver.rs"]
mod driver;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::broker::{free_port, shared_url, unique, Producer};
use common::Gateway;
use driver::{Browser, Shown};
use serde_json::{json, Value};

/// ExampleProducer publishes through RabbitMQ with `docs/examples/publish.py`, the producer the
/// client guide shows.
struct ExampleProducer {
    amqp_url: String,
    exchange: String,
}

impl ExampleProducer {
    /// Publish sends `data` to `channel` with `message_id` = `id` and `type` = `kind`.
    fn publish(&self, channel: &str, id: &str, kind: Option<&str>, data: &str) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples/publish.py");
        let mut command = Command::new("python3");
        command.arg(&script).args([
            "--url",
            &self.amqp_url,
            "--exchange",
            &self.exchange,
            "--channel",
            channel,
            "--id",
            id,
        ]);
        if let Some(kind) = kind {
            command.args(["--type", kind]);
        }
        let output = command.arg(data).output().unwrap_or_else(|e| {
            panic!(
                "the browser test needs python3 for {}: {e}",
                script.display()
            )
        });
        assert!(
            output.status.success(),
            "{} failed (it needs pika: pip install pika): {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Screenshot_dir is where the screenshots are kept, under the build's target directory.
fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn json_of(shown: &Shown) -> Value {
    serde_json::from_str(&shown.data)
        .unwrap_or_else(|e| panic!("event {} shows no JSON: {e}", shown.id))
}

#[tokio::test]
async fn the_demo_page_shows_live_events_and_resumes_without_loss_after_a_gateway_restart() {
    let mut browser = Browser::launch().await;
    let amqp_url = shared_url();
    let exchange = unique("sse-browser");
    let producer = Producer::connect(&amqp_url, &exchange).await;
    let bind = format!("127.0.0.1:{}", free_port());
    let instance = unique("gw-browser");
    let args = [
        "--bind",
        &bind,
        "--amqp-url",
        &amqp_url,
        "--exchange",
        &exchange,
        "--instance-id",
        &instance,
        "--queue-expires",
        "60s",
        "--retry",
        "500ms",
        "--shutdown-retry-spread",
        "500ms",
    ];
    let gateway = Gateway::start(&args).await;
    gateway.wait_ready().await;

    // A shared link subscribes at once, to both channels on one connection.
    let page = browser
        .open(
            &gateway.url("/?channel=news,orders&types=order.created"),
            1280,
            900,
        )
        .await;
    assert_eq!(page["status"], 200);
    assert_eq!(page["title"], "sse-gateway · live events");
    browser.wait_state("open").await;
    assert_eq!(browser.wait_text("#last-id", "none").await, "none");

    // The publish form shows the gateway's JSON error, then publishes over HTTP.
    browser
        .fill(&[("#pub-channel", "no such channel"), ("#pub-data", "x")])
        .await;
    browser.click("#publish").await;
    let refused = browser.wait_text("#publish-result", "400").await;
    assert!(refused.contains("channel name"), "{refused}");
    let title = r#"{"title": "The demo page ships", "tags": ["sse", "demo"]}"#;
    browser
        .fill(&[
            ("#pub-channel", "news"),
            ("#pub-event", "headline"),
            ("#pub-id", "news-1"),
            ("#pub-data", title),
        ])
        .await;
    browser.click("#publish").await;
    browser
        .wait_text("#publish-result", "202 accepted: id news-1 on news")
        .await;
    let headline = browser.wait_event("news-1").await;
    assert_eq!(
        (headline.kind.as_str(), headline.channel.as_str()),
        ("headline", "news, orders"),
        "a type published from the form is listened to before the event is sent"
    );
    assert_eq!(
        json_of(&headline),
        serde_json::from_str::<Value>(title).unwrap()
    );
    assert!(
        headline
            .data
            .contains("\n  \"title\": \"The demo page ships\""),
        "JSON is pretty-printed: {}",
        headline.data
    );

    // Over AMQP, as a backend publishes: a typed JSON event and an untyped text one.
    let backend = ExampleProducer {
        amqp_url: amqp_url.clone(),
        exchange: exchange.clone(),
    };
    let order = r#"{"order": 1041, "total": 42.5, "paid": true}"#;
    backend.publish("orders", "order-1", Some("order.created"), order);
    let created = browser.wait_event("order-1").await;
    assert_eq!(created.kind, "order.created");
    assert_eq!(json_of(&created)["total"], 42.5);
    backend.publish("news", "news-2", None, "Plain text, no type");
    let plain = browser.wait_event("news-2").await;
    assert_eq!(
        (plain.kind.as_str(), plain.data.as_str()),
        ("message", "Plain text, no type")
    );
    assert_eq!(browser.wait_text("#last-id", "news-2").await, "news-2");

    // The gateway restarts; what is published meanwhile waits in its queue.
    let mut gateway = gateway;
    gateway.terminate();
    assert!(gateway.wait_exit(Duration::from_secs(15)).await.success());
    browser.wait_state("reconnecting").await;
    let missed = r#"{"order": 1042, "total": 7, "paid": false}"#;
    backend.publish("orders", "order-2", Some("order.created"), missed);
    let restarted = Gateway::start(&args).await;
    restarted.wait_ready().await;

    let resumed = browser.wait_event("order-2").await;
    assert_eq!(json_of(&resumed)["order"], 1042);
    browser.wait_state("open").await;
    // The new process retains nothing from before, so it answers the page's Last-Event-ID
    // with a gap event naming that id; the page says events may be missing.
    let notice = browser.wait_text("#gap-text", "news-2").await;
    assert!(
        notice.contains("no longer retains event news-2"),
        "{notice}"
    );

    let (status, _) = restarted
        .publish(json!({
            "channel": "news", "event": "headline", "id": "news-3",
            "data": {"title": "Back after a restart", "resumed": true}
        }))
        .await;
    assert_eq!(status, 202);
    browser.wait_event("news-3").await;
    let events = browser.events().await;
    let gap = events.iter().find(|e| e.kind == "gap").unwrap();
    assert_eq!(gap.shown_id, "none", "a gap event has no id");
    assert_eq!(json_of(gap)["lastEventId"], "news-2");
    let shown: Vec<String> = events
        .into_iter()
        .map(|e| if e.id.is_empty() { e.kind } else { e.id })
        .collect();
    assert_eq!(
        shown,
        ["news-1", "order-1", "news-2", "gap", "order-2", "news-3"],
        "every event once, in order, with the gap notice where the gateway restarted"
    );
    assert_eq!(browser.wait_text("#last-id", "news-3").await, "news-3");

    let problems = browser.problems().await;
    assert_eq!(problems["cspViolations"], json!([]), "{problems}");
    assert_eq!(problems["pageErrors"], json!([]), "{problems}");

    let dir = screenshot_dir();
    browser.screenshot(&dir.join("demo-page.png"), false).await;
    browser.resize(390, 844).await;
    browser
        .screenshot(&dir.join("demo-page-phone.png"), true)
        .await;
    println!("screenshots in {}", dir.display());
    browser.close().await;
    producer.delete_exchange().await;
}
