//! RabbitMQ for the tests: the broker named by `AMQP_URL`, or a private node started here (own
//! ports and data directory), for tests that must stop and restart their broker.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};

/// How long a private node may take to start.
const NODE_START: Duration = Duration::from_secs(90);

/// Shared_url is the broker tests share: `AMQP_URL`, or one private node for this test process.
pub fn shared_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| match std::env::var("AMQP_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            let node = PrivateNode::start(free_port());
            node.stop_when_process_exits();
            let url = node.url("%2f");
            std::mem::forget(node);
            url
        }
    })
    .clone()
}

/// Free_port finds a port nothing listens on now.
///
/// Below Linux's ephemeral range (32768 and up), so that no outgoing connection (a load test's
/// thousands of them, say) takes it before the broker binds it.
pub fn free_port() -> u16 {
    loop {
        let port = fastrand::u16(20_000..32_000);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Unique makes a name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{:08x}", std::process::id(), fastrand::u32(..))
}

/// PrivateNode is a RabbitMQ node of the test's own, stopped and removed when dropped.
pub struct PrivateNode {
    pub port: u16,
    name: String,
    dir: PathBuf,
}

impl PrivateNode {
    /// Start boots a node listening on 127.0.0.1:`port` and waits until it serves.
    pub fn start(port: u16) -> PrivateNode {
        let node = Self::prepare(port);
        node.boot();
        node
    }

    /// Prepare sets a node up without starting it (for tests of a broker that appears late).
    pub fn prepare(port: u16) -> PrivateNode {
        Self::prepare_with(port, "")
    }

    /// Prepare_with is [`PrivateNode::prepare`] with more `rabbitmq.conf` lines.
    pub fn prepare_with(port: u16, extra_conf: &str) -> PrivateNode {
        assert!(
            Command::new("sh")
                .args(["-c", "command -v rabbitmq-server"])
                .output()
                .is_ok_and(|o| o.status.success()),
            "the RabbitMQ tests need a broker: set AMQP_URL, or install RabbitMQ \
             (apt-get install rabbitmq-server) so they can start private nodes"
        );
        let dir = Self::dir_for(port);
        std::fs::create_dir_all(dir.join("mnesia")).unwrap();
        std::fs::create_dir_all(dir.join("log")).unwrap();
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!(
                "listeners.tcp.local = 127.0.0.1:{port}\nloopback_users = none\n{extra_conf}\n"
            ),
        )
        .unwrap();
        std::fs::write(dir.join("enabled_plugins"), "[].\n").unwrap();
        std::fs::write(
            dir.join("env.conf"),
            "ERL_EPMD_ADDRESS=127.0.0.1\nexport ERL_FLAGS=\"-kernel inet_dist_use_interface {127,0,0,1}\"\n",
        )
        .unwrap();
        // Debian's rabbitmq-server drops to the rabbitmq user, which must own the node's files.
        let _ = Command::new("chown")
            .args(["-R", "rabbitmq:rabbitmq"])
            .arg(&dir)
            .status();
        PrivateNode {
            port,
            name: format!("ssetest{port}@localhost"),
            dir,
        }
    }

    /// Dir is the node's own directory (its configuration, data and logs).
    /// Dir_for is the directory a node on `port` keeps its data, logs and configuration in, so
    /// a test can place files there before the node is prepared.
    pub fn dir_for(port: u16) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("sse-gateway-rabbit-{port}-{}", std::process::id()))
    }

    /// Url is the node's AMQP URL for a vhost (`%2f` for the default one).
    pub fn url(&self, vhost: &str) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/{vhost}", self.port)
    }

    /// Boot starts the node process and waits until the broker serves.
    pub fn boot(&self) {
        let status = self
            .command("rabbitmq-server")
            .arg("-detached")
            .status()
            .unwrap();
        assert!(status.success(), "rabbitmq-server -detached failed");
        self.await_running();
    }

    /// Stop_app stops the broker (connections close, durable queues and persistent messages stay).
    pub fn stop_app(&self) {
        self.ctl(&["stop_app"]);
    }

    /// Start_app starts the broker again and waits until it serves.
    pub fn start_app(&self) {
        self.ctl(&["start_app"]);
        self.await_running();
    }

    /// Close_connections cuts every client connection, as a network fault would.
    pub fn close_connections(&self) {
        self.ctl(&["close_all_connections", "cut by the test"]);
    }

    /// Ctl runs `rabbitmqctl` against this node and expects success.
    pub fn ctl(&self, args: &[&str]) {
        let output = self
            .command("rabbitmqctl")
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "rabbitmqctl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn await_running(&self) {
        let deadline = Instant::now() + NODE_START;
        loop {
            let ok = self
                .command("rabbitmqctl")
                .args(["-n", &self.name, "await_startup", "--timeout", "5"])
                .output()
                .is_ok_and(|o| o.status.success());
            if ok && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "RabbitMQ node {} did not start:\n{}",
                self.name,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Log_tail is the end of the node's logs, for failure messages.
    fn log_tail(&self) -> String {
        let mut text = String::new();
        for entry in std::fs::read_dir(self.dir.join("log"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let content = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let start = content.len().saturating_sub(3000);
            text.push_str(&format!(
                "== {}\n{}\n",
                entry.path().display(),
                &content[start..]
            ));
        }
        text
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        let dir = |leaf: &str| self.dir.join(leaf);
        command
            .env("RABBITMQ_NODENAME", &self.name)
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", free_port().to_string())
            .env("RABBITMQ_MNESIA_BASE", dir("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir("log"))
            .env("RABBITMQ_CONFIG_FILE", dir("rabbitmq"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir("enabled_plugins"))
            .env("RABBITMQ_CONF_ENV_FILE", dir("env.conf"))
            .env("RABBITMQ_PID_FILE", dir("pid"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        command
    }

    /// Stop_when_process_exits leaves a watcher that stops the node once this test process ends
    /// (a static node has no destructor).
    fn stop_when_process_exits(&self) {
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; rabbitmqctl -n {name} stop >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            name = self.name,
            dir = self.dir.display()
        );
        let _ = Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
}

impl Drop for PrivateNode {
    fn drop(&mut self) {
        let _ = self
            .command("rabbitmqctl")
            .args(["-n", &self.name, "stop"])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Producer publishes to an exchange with publisher confirms, as a backend service would.
pub struct Producer {
    connection: Connection,
    channel: lapin::Channel,
    exchange: String,
}

impl Producer {
    pub async fn connect(url: &str, exchange: &str) -> Producer {
        let connection = Connection::connect(url, ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        Producer {
            connection,
            channel,
            exchange: exchange.to_string(),
        }
    }

    /// Publish sends a persistent message and waits for the broker's confirm.
    pub async fn publish(
        &self,
        routing_key: &str,
        message_id: Option<&str>,
        kind: Option<&str>,
        body: &[u8],
    ) {
        let mut properties = BasicProperties::default().with_delivery_mode(2);
        if let Some(id) = message_id {
            properties = properties.with_message_id(id.into());
        }
        if let Some(kind) = kind {
            properties = properties.with_type(kind.into());
        }
        let confirm = self
            .channel
            .basic_publish(
                self.exchange.as_str().into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack(), "the broker confirmed the message");
    }

    /// Publish_ids publishes the ids `1..=total` to `routing_key` in the background, `pause`
    /// apart, as a steady producer would.
    pub fn publish_ids(
        self: &std::sync::Arc<Self>,
        routing_key: &str,
        total: usize,
        pause: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let (producer, key) = (std::sync::Arc::clone(self), routing_key.to_string());
        tokio::spawn(async move {
            for id in 1..=total {
                producer
                    .publish(&key, Some(&id.to_string()), None, b"x")
                    .await;
                tokio::time::sleep(pause).await;
            }
        })
    }

    /// Delete_exchange removes the test's exchange from a shared broker.
    pub async fn delete_exchange(&self) {
        let _ = self
            .channel
            .exchange_delete(
                self.exchange.as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await;
        let _ = self.connection.close(200, "done".into()).await;
    }
}
