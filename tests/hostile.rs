//! Hostile and malformed input: each gets a clear 4xx with a JSON error or a clean close, never a
//! panic or a hang, and other clients are not affected.

mod common;

use std::time::Duration;

use common::sse::ids;
use common::{Gateway, WAIT};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Raw sends bytes as they are and reads the answer until the server closes: status and body.
async fn raw(gw: &Gateway, request: &[u8]) -> (u16, String) {
    let mut socket = TcpStream::connect(gw.addr).await.unwrap();
    socket.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, socket.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes")
        .unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn get(path: &str, headers: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{headers}\r\n").into_bytes()
}

fn error_of(body: &str) -> String {
    let value: Value =
        serde_json::from_str(body.trim()).unwrap_or_else(|_| panic!("not a JSON body: {body:?}"));
    value["error"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn thousands_of_channel_parameters_get_400_naming_the_limit() {
    let gw = Gateway::start(&[]).await;
    let query: Vec<String> = (0..3000).map(|i| format!("channel=c{i}")).collect();
    let (status, body) = raw(&gw, &get(&format!("/events?{}", query.join("&")), "")).await;
    assert_eq!(status, 400);
    assert!(error_of(&body).contains("at most 64"), "{body}");
    assert_eq!(
        gw.stats().await["channels"],
        json!({}),
        "nothing was allocated"
    );
}

#[tokio::test]
async fn long_or_undecodable_query_values_get_a_clear_4xx() {
    let gw = Gateway::start(&[]).await;
    let (status, body) = raw(
        &gw,
        &get(&format!("/events?channel={}", "x".repeat(10_000)), ""),
    )
    .await;
    assert_eq!(status, 400);
    assert!(error_of(&body).contains("longer than 128"));
    let (status, body) = raw(&gw, &get("/events?channel=%C3%28", "")).await;
    assert_eq!(status, 400, "an escape that is not UTF-8: {body}");
    // A head over actix's limit is refused: a 4xx, or the connection reset before it is read.
    let mut socket = TcpStream::connect(gw.addr).await.unwrap();
    let huge = get(&format!("/events?channel={}", "x".repeat(200_000)), "");
    let mut answer = Vec::new();
    if socket.write_all(&huge).await.is_ok() {
        let read = tokio::time::timeout(WAIT, socket.read_to_end(&mut answer));
        let _ = read.await.expect("the server closes");
    }
    let status = String::from_utf8_lossy(&answer)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert!(
        status == 0 || (400..500).contains(&status),
        "a request head over the server's limit: {status}"
    );
    assert_eq!(
        gw.get("/healthz").await.0,
        200,
        "the server goes on serving"
    );
}

#[tokio::test]
async fn an_unusable_last_event_id_gets_400() {
    let gw = Gateway::start(&[]).await;
    let huge = format!("Last-Event-ID: {}\r\n", "7".repeat(300));
    let (status, body) = raw(&gw, &get("/events?channel=a", &huge)).await;
    assert_eq!(
        (status, error_of(&body).contains("Last-Event-ID")),
        (400, true)
    );

    let mut not_utf8 = get("/events?channel=a", "");
    let at = not_utf8.len() - 2;
    not_utf8.splice(at..at, b"Last-Event-ID: \xff\xfe\r\n".iter().copied());
    let (status, body) = raw(&gw, &not_utf8).await;
    assert_eq!((status, error_of(&body).contains("UTF-8")), (400, true));

    let (status, _) = raw(
        &gw,
        &get("/events?channel=a&lastEventId=1%0D%0Aid:%20forged", ""),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn deeply_nested_json_and_bytes_that_are_not_utf8_get_400() {
    let gw = Gateway::start(&[]).await;
    let nested = format!(
        r#"{{"channel": "c", "data": {}1{}}}"#,
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let post = |body: Vec<u8>| {
        let head = format!(
            "POST /publish HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        [head.into_bytes(), body].concat()
    };
    let (status, body) = raw(&gw, &post(nested.into_bytes())).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = raw(
        &gw,
        &post(b"{\"channel\": \"c\", \"data\": \"\xff\xfe\"}".to_vec()),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    error_of(&body);
}

#[tokio::test]
async fn a_body_at_the_limit_is_accepted_and_over_it_is_413_even_without_a_length() {
    let gw = Gateway::start(&["--max-body", "200"]).await;
    let at_limit = |extra: usize| {
        let frame = json!({"channel": "c", "data": ""}).to_string();
        json!({"channel": "c", "data": "x".repeat(200 - frame.len() + extra)}).to_string()
    };
    assert_eq!(at_limit(0).len(), 200);
    let post = |body: String| {
        gw.http()
            .post(gw.url("/publish"))
            .header("content-type", "application/json")
            .body(body)
    };
    assert_eq!(post(at_limit(0)).send().await.unwrap().status(), 202);
    assert_eq!(post(at_limit(1)).send().await.unwrap().status(), 413);

    let chunked = format!(
        "POST /publish HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{}\r\n0\r\n\r\n",
        300,
        "y".repeat(300)
    );
    let (status, body) = raw(&gw, chunked.as_bytes()).await;
    assert_eq!(status, 413, "{body}");
}

/// The timeout is set to 1 s, well below the 5 s default, and each client must be closed well
/// before the default would close it: otherwise the test would pass with the flag ignored.
#[tokio::test]
async fn silent_and_byte_at_a_time_clients_are_closed_after_the_request_timeout() {
    const CLOSED_WITHIN: Duration = Duration::from_secs(4);
    let gw = Gateway::start(&["--request-timeout", "1s"]).await;
    let mut subscriber = gw.subscribe("channel=bystander").await;

    let started = std::time::Instant::now();
    let mut silent = TcpStream::connect(gw.addr).await.unwrap();
    let mut sink = Vec::new();
    tokio::time::timeout(CLOSED_WITHIN, silent.read_to_end(&mut sink))
        .await
        .expect("a silent client is closed after the request timeout")
        .ok();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not before it"
    );

    let started = std::time::Instant::now();
    let (mut reader, mut writer) = TcpStream::connect(gw.addr).await.unwrap().into_split();
    let request = get(
        "/events?channel=slowloris",
        "X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
    );
    // 126 bytes 100 ms apart would take 12 s to send; the gateway closes the connection first.
    let trickle = tokio::spawn(async move {
        for byte in request {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut answer = Vec::new();
    tokio::time::timeout(CLOSED_WITHIN, reader.read_to_end(&mut answer))
        .await
        .expect("a client sending its head a byte at a time is closed after the request timeout")
        .ok();
    trickle.abort();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.is_empty() || answer.contains("408"), "{answer}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not before it"
    );

    gw.publish_ok("bystander", "1", "still served").await;
    assert_eq!(subscriber.ids(1).await, ["1"]);
}

/// A client that never reads holds data the kernel cannot deliver; after the write timeout the
/// connection is dropped without the client's help, and the others keep receiving.
#[tokio::test]
async fn a_client_that_never_reads_is_dropped_after_the_write_timeout() {
    let gw = Gateway::start(&["--write-timeout", "1s", "--subscriber-queue", "1000000"]).await;
    let stalled = common::stalled_reader(gw.addr, "channel=stuck").await;
    let mut fast = gw.subscribe("channel=stuck").await;
    gw.wait_for_stats("two subscribers", |s| s["connections"] == 2)
        .await;

    let payload = "z".repeat(60 * 1024);
    let reader = tokio::spawn(async move { (fast.ids(100).await, fast) });
    for id in ids(1, 100) {
        gw.publish_ok("stuck", &id, &payload).await;
    }
    let (received, _fast) = reader.await.unwrap();
    assert_eq!(received, ids(1, 100));
    let stats = gw
        .wait_for_stats("the stalled connection dropped", |s| s["connections"] == 1)
        .await;
    assert_eq!(
        stats["slow_subscriber_disconnects"], 0,
        "the queue never filled: the kernel dropped it"
    );
    drop(stalled);
}

#[tokio::test]
async fn cors_is_off_by_default_and_follows_the_configured_origins() {
    let preflight = |gw: &Gateway, origin: &str| {
        gw.http()
            .request(reqwest::Method::OPTIONS, gw.url("/publish"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let off = Gateway::start(&[]).await;
    let response = preflight(&off, "https://app.example").await.unwrap();
    assert!(response
        .headers()
        .get("access-control-allow-origin")
        .is_none());

    let listed = Gateway::start(&["--cors-origin", "https://app.example"]).await;
    let response = preflight(&listed, "https://app.example").await.unwrap();
    assert!(response.status().is_success());
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(
        response.headers()["access-control-allow-credentials"],
        "true"
    );
    let allowed_headers = response.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(allowed_headers.contains("authorization"));
    let response = preflight(&listed, "https://evil.example").await.unwrap();
    assert!(response
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    let stream = listed
        .http()
        .get(listed.url("/events?channel=c"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        stream.headers()["access-control-allow-origin"],
        "https://app.example"
    );

    let any = Gateway::start(&["--cors-origin", "*"]).await;
    let response = preflight(&any, "https://anywhere.example").await.unwrap();
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    assert!(
        response
            .headers()
            .get("access-control-allow-credentials")
            .is_none(),
        "no credentials with *"
    );
}

#[tokio::test]
async fn secrets_never_reach_logs_stats_or_error_bodies() {
    let key = "publish-key-s3cr3t";
    let password = "amqp-pa55word";
    let url = format!(
        "amqp://gateway:{password}@127.0.0.1:{}/%2f",
        common::broker::free_port()
    );
    let gw = Gateway::start(&["--publish-key", key, "--amqp-url", &url]).await;
    let (status, body) = gw.publish(json!({"channel": "c", "data": 1})).await;
    assert_eq!(status, 401);
    let wrong = gw
        .http()
        .post(gw.url("/publish"))
        .header("authorization", format!("Bearer {key}x"))
        .json(&json!({"channel": "c", "data": 1}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let stats = gw.stats().await.to_string();
    let metrics = gw.text("/metrics").await;
    let deadline = std::time::Instant::now() + WAIT;
    while !gw.logs().contains("cannot reach RabbitMQ") {
        assert!(
            std::time::Instant::now() < deadline,
            "the broker failure is logged"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let logs = gw.logs();
    assert!(logs.contains("gateway:***@"), "the URL is logged masked");
    for (place, text) in [
        ("logs", logs.as_str()),
        ("stats", &stats),
        ("metrics", &metrics),
        ("401 body", &body.to_string()),
        ("401 body", &wrong),
    ] {
        assert!(
            !text.contains(key),
            "the publish key appears in the {place}"
        );
        assert!(
            !text.contains(password),
            "the AMQP password appears in the {place}"
        );
    }
}

/// A subscriber sends nothing after its request. One that does (a pipelined request, which a
/// stream that ends with its connection cannot answer, or bytes meant to keep the gateway
/// reading) is disconnected, and the gateway's other subscribers carry on.
#[tokio::test]
async fn a_subscriber_that_sends_data_after_its_request_is_disconnected() {
    let gw = Gateway::start(&[]).await;
    let mut other = gw.subscribe("channel=chatty").await;
    let mut chatty = TcpStream::connect(gw.addr).await.unwrap();
    let request = format!(
        "GET /events?channel=chatty HTTP/1.1\r\nHost: {}\r\n\r\n",
        gw.addr
    );
    chatty.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 256];
    let read = tokio::time::timeout(WAIT, chatty.read(&mut head))
        .await
        .expect("the stream opens")
        .unwrap();
    assert!(head[..read].starts_with(b"HTTP/1.1 200"));

    chatty
        .write_all(b"GET /events?channel=chatty HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, chatty.read_to_end(&mut rest))
        .await
        .expect("the gateway closes the connection")
        .ok();
    gw.publish_ok("chatty", "1", "still here").await;
    assert_eq!(other.ids(1).await, ["1"]);
}
