//! Test harness: the real `sse-gateway` binary on an ephemeral port, and a client that reads its
//! streams with the crate's spec-following SSE parser, as a browser would.
#![allow(dead_code)]

pub mod broker;
pub mod sse;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long any awaited condition may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// Gateway is a running `sse-gateway` process, killed when dropped.
pub struct Gateway {
    pub addr: SocketAddr,
    /// The publish listener's address, with `--publish-bind`.
    pub publish_addr: Option<SocketAddr>,
    child: Child,
    logs: Arc<Mutex<String>>,
    http: reqwest::Client,
}

impl Gateway {
    /// Start runs the binary with `args` on 127.0.0.1:0 (unless `args` has a `--bind`) and waits
    /// until it listens.
    pub async fn start(args: &[&str]) -> Gateway {
        Self::start_with_env(args, &[]).await
    }

    /// Start_with_env is [`Gateway::start`] with extra environment variables.
    pub async fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Gateway {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sse-gateway"));
        if !args.contains(&"--bind") {
            command.args(["--bind", "127.0.0.1:0"]);
        }
        command
            .args(args)
            .env("RUST_LOG", "sse_gateway=debug,info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("the gateway binary starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let logs = Arc::new(Mutex::new(String::new()));
        let (found, listening) = std::sync::mpsc::channel();
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // The publish listener, when there is one, is logged first.
                let markers = [
                    ("publish", "publish listener on http://"),
                    ("main", "listening on http://"),
                ];
                for (kind, marker) in markers {
                    if let Some(at) = line.find(marker) {
                        let addr: String = line[at + marker.len()..]
                            .chars()
                            .take_while(|c| {
                                c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']')
                            })
                            .collect();
                        let _ = found.send((kind, addr));
                    }
                }
                let mut logs = sink.lock().unwrap();
                logs.push_str(&line);
                logs.push('\n');
            }
        });
        let (publish_addr, addr) = tokio::task::spawn_blocking(move || {
            let mut publish = None;
            loop {
                match listening.recv_timeout(WAIT)? {
                    ("publish", addr) => publish = addr.parse().ok(),
                    (_, addr) => {
                        return Ok::<_, std::sync::mpsc::RecvTimeoutError>((publish, addr))
                    }
                }
            }
        })
        .await
        .unwrap()
        .unwrap_or_else(|_| {
            panic!(
                "the gateway did not report its address; logs:\n{}",
                logs.lock().unwrap()
            )
        });
        // Every request on a connection of its own, as a browser's EventSource behind the
        // documented proxy arrives: subscriptions then take the gateway's bare event-stream
        // path, which is what users get (a subscription on a reused connection goes through
        // actix-web instead; tests/subscribe.rs compares the two).
        let http = reqwest::Client::builder()
            .timeout(WAIT)
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        Gateway {
            addr: addr.parse().expect("a socket address"),
            publish_addr,
            child,
            logs,
            http,
        }
    }

    /// Start_amqp runs a gateway consuming `exchange` on the broker at `url` as `instance`, and
    /// waits until it is ready (connected and consuming).
    pub async fn start_amqp(url: &str, exchange: &str, instance: &str, extra: &[&str]) -> Gateway {
        let mut args = vec![
            "--amqp-url",
            url,
            "--exchange",
            exchange,
            "--instance-id",
            instance,
        ];
        args.extend_from_slice(&["--queue-expires", "60s"]);
        args.extend_from_slice(extra);
        let gw = Gateway::start(&args).await;
        gw.wait_ready().await;
        gw
    }

    /// Text returns the body of a GET as text.
    pub async fn text(&self, path: &str) -> String {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        response.text().await.unwrap()
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Subscribe opens `/events?query` and checks it answered 200. It returns once the
    /// subscription is registered: the gateway sends the response head only after every
    /// channel's broadcaster has added the subscriber, so nothing published afterwards is missed.
    pub async fn subscribe(&self, query: &str) -> sse::SseStream {
        sse::SseStream::open(&self.http, &self.url(&format!("/events?{query}")), None).await
    }

    /// Resume opens `/events?query` with a `Last-Event-ID` header.
    pub async fn resume(&self, query: &str, last_event_id: &str) -> sse::SseStream {
        sse::SseStream::open(
            &self.http,
            &self.url(&format!("/events?{query}")),
            Some(last_event_id),
        )
        .await
    }

    /// Get returns the status and JSON body of a GET.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Publish posts a JSON body to `/publish` and returns the status and JSON answer.
    pub async fn publish(&self, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(self.url("/publish"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Publish_ok publishes `data` to `channel` with an explicit id and expects 202.
    pub async fn publish_ok(&self, channel: &str, id: &str, data: &str) {
        let (status, body) = self
            .publish(serde_json::json!({"channel": channel, "id": id, "data": data}))
            .await;
        assert_eq!(status, 202, "publish answered {body}");
    }

    pub async fn stats(&self) -> Value {
        let (status, body) = self.get("/stats").await;
        assert_eq!(status, 200);
        body
    }

    /// Wait_for_stats polls `/stats` until `ready` holds, failing after [`WAIT`].
    pub async fn wait_for_stats(&self, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let stats = self.stats().await;
            if ready(&stats) {
                return stats;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last stats: {stats}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait_ready waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        self.wait_readyz(200).await;
    }

    /// Wait_readyz waits until `/readyz` answers `status`.
    pub async fn wait_readyz(&self, status: u16) {
        let deadline = Instant::now() + WAIT;
        loop {
            let (now, body) = self.get("/readyz").await;
            if now == status {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "readyz stayed {now} {body}, expected {status}; logs:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Subscribers is a channel's subscriber count in `/stats` (0 when the channel is not live).
    pub async fn subscribers(&self, channel: &str) -> u64 {
        self.stats().await["channels"][channel]["subscribers"]
            .as_u64()
            .unwrap_or(0)
    }

    /// Terminate sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Pid is the gateway's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Rss_kib is the gateway's resident memory, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Kill ends the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        let _ = self.child.wait();
    }

    /// Wait_exit waits for the process to exit, failing after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the gateway did not exit within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Stalled_reader subscribes with `query` over a socket whose small, fixed receive buffer (no
/// autotuning) cannot absorb a burst, and then never reads.
pub async fn stalled_reader(addr: SocketAddr, query: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let request = format!("GET /events?{query} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
