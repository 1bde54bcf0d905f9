//! Operations: Prometheus metrics, request ids, JSON logs, the TOML file, and the gateway
//! behind a real nginx with the configuration the docs ship.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::broker::free_port;
use common::sse::SseStream;
use common::{Gateway, WAIT};
use serde_json::json;

/// Scrape reads `/metrics` into a map from `name{labels}` to value.
async fn scrape(gw: &Gateway) -> HashMap<String, f64> {
    let response = gw.http().get(gw.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    assert!(text.trim_end().ends_with("# EOF"));
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(name, value)| (name.to_string(), value.parse().unwrap()))
        .collect()
}

#[tokio::test]
async fn metrics_move_with_subscribers_publishes_and_deliveries() {
    let gw = Gateway::start(&["--metrics-top-channels", "1"]).await;
    let before = scrape(&gw).await;
    assert_eq!(before["sse_gateway_connections"], 0.0);
    assert_eq!(
        before[r#"sse_gateway_events_received_total{source="http"}"#],
        0.0
    );

    let mut big = gw.subscribe("channel=big").await;
    let _big_too = gw.subscribe("channel=big").await;
    let _small = gw.subscribe("channel=small").await;
    gw.publish_ok("big", "1", "hello").await;
    big.next_event().await;
    let _gap = gw.resume("channel=big", "unknown-id").await;

    let after = scrape(&gw).await;
    assert_eq!(after["sse_gateway_connections"], 4.0);
    assert_eq!(
        after[r#"sse_gateway_events_received_total{source="http"}"#],
        1.0
    );
    assert_eq!(after["sse_gateway_events_published_total"], 1.0);
    assert_eq!(after["sse_gateway_events_delivered_total"], 2.0);
    assert_eq!(after["sse_gateway_gaps_total"], 1.0);
    assert!(after["sse_gateway_bytes_written_total"] > before["sse_gateway_bytes_written_total"]);
    assert_eq!(after["sse_gateway_publish_duration_seconds_count"], 1.0);
    assert_eq!(
        after[r#"sse_gateway_channel_subscribers{channel="big"}"#],
        3.0
    );
    assert!(
        !after.contains_key(r#"sse_gateway_channel_subscribers{channel="small"}"#),
        "only the busiest channel is labelled"
    );
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_json_logs_name_it() {
    let gw = Gateway::start(&["--log-format", "json"]).await;
    let response = gw.http().get(gw.url("/stats")).send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"].len(), 32);
    let response = gw
        .http()
        .post(gw.url("/publish"))
        .header("x-request-id", "from-the-proxy-42")
        .json(&json!({"channel": "c", "data": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "from-the-proxy-42");

    let deadline = Instant::now() + WAIT;
    let line = loop {
        let logs = gw.logs();
        if let Some(line) = logs.lines().find(|l| l.contains("from-the-proxy-42")) {
            break line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no log line with the request id:\n{logs}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let record: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(record["span"]["request_id"], "from-the-proxy-42");
    assert_eq!(record["fields"]["status"], 202);
    assert_eq!(record["fields"]["path"], "/publish");
}

#[tokio::test]
async fn a_config_file_configures_the_gateway_below_flags_and_environment() {
    let path = std::env::temp_dir().join(format!("sse-gateway-{}.toml", fastrand::u64(..)));
    std::fs::write(
        &path,
        "channel = [\"only\"]\nhistory-size = 2\nretry = \"1500ms\"\n",
    )
    .unwrap();
    let gw = Gateway::start_with_env(
        &["--config", path.to_str().unwrap(), "--retry", "2500ms"],
        &[("SSE_GATEWAY_HISTORY_SIZE", "3")],
    )
    .await;
    assert_eq!(
        gw.publish(json!({"channel": "other", "data": 1})).await.0,
        404,
        "channel list from the file"
    );
    for id in ["1", "2", "3", "4"] {
        gw.publish_ok("only", id, "x").await;
    }
    assert_eq!(
        gw.stats().await["channels"]["only"]["retained"],
        3,
        "the environment wins over the file"
    );
    let mut stream = gw.subscribe("channel=only").await;
    assert_eq!(
        stream.next_item().await,
        Some(sse_gateway::sse_parser::Item::Retry(2500)),
        "the flag wins"
    );
    let _ = std::fs::remove_file(path);
}

/// Nginx runs nginx in the foreground with the docs' server configuration in front of `gw`.
struct Nginx {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Nginx {
    fn start(upstream: std::net::SocketAddr) -> Nginx {
        let binary = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("this test needs nginx: apt-get install nginx (.ci/run installs it)");
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("sse-gateway-nginx-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let site = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/nginx.conf"))
            .unwrap()
            .replace("server 127.0.0.1:8080;", &format!("server {upstream};"))
            .replace("listen 80;", &format!("listen 127.0.0.1:{port};"));
        let d = dir.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 256; }}\n\
             http {{\naccess_log off;\nclient_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\nuwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n{site}\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = Command::new(binary)
            .args([
                "-p",
                dir.to_str().unwrap(),
                "-c",
                dir.join("nginx.conf").to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not start: {:?}",
                std::fs::read_to_string(dir.join("error.log"))
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx { child, port, dir }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn events_pass_through_nginx_at_once_with_the_documented_configuration() {
    let gw = Gateway::start(&[]).await;
    let nginx = Nginx::start(gw.addr);
    let http = reqwest::Client::new();
    let through = |path: &str| format!("http://127.0.0.1:{}{path}", nginx.port);
    let mut stream = SseStream::open(&http, &through("/events?channel=proxied"), None).await;
    gw.wait_for_stats("the proxied subscriber", |s| s["connections"] == 1)
        .await;

    // Each event is small, far below any proxy buffer, and the stream stays open: it can only
    // arrive if nginx passes it through unbuffered.
    for id in ["1", "2"] {
        let response = http
            .post(through("/publish"))
            .json(&json!({"channel": "proxied", "id": id, "data": "through nginx"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let event = stream.next_event().await;
        assert_eq!(
            (event.last_event_id.as_str(), event.data.as_str()),
            (id, "through nginx")
        );
    }
    let resumed = SseStream::open(&http, &through("/events?channel=proxied"), Some("1")).await;
    let mut resumed = resumed;
    assert_eq!(
        resumed.next_event().await.last_event_id,
        "2",
        "Last-Event-ID passes through"
    );
}

#[tokio::test]
async fn a_publish_listener_serves_publishers_on_a_worker_of_its_own() {
    let gw = Gateway::start(&["--publish-bind", "127.0.0.1:0"]).await;
    let publish_addr = gw
        .publish_addr
        .expect("the publish listener's address is logged");
    let mut stream = gw.subscribe("channel=split").await;
    let response = gw
        .http()
        .post(format!("http://{publish_addr}/publish"))
        .json(&json!({"channel": "split", "id": "p-1", "data": "via the publish listener"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(stream.next_event().await.last_event_id, "p-1");
}
