//! The Rust end of `driver.mjs`: headless Chromium, driven one JSON command at a time.
//!
//! Missing tools fail the test with the command that installs them; nothing is skipped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// How long one command may take; the driver's own waits give up sooner (10 s), with a
/// message saying what the page showed instead.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long Chromium may take to start.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(60);

/// Browser is a headless Chromium behind the Node driver, closed when dropped.
pub struct Browser {
    child: Child,
    /// The driver's commands; closing it asks the driver to close Chromium and exit.
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: Arc<Mutex<String>>,
    /// Chromium's version, as it reports it.
    pub version: String,
}

/// Shown is one event as the page shows it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shown {
    /// The event's id (`data-id`; empty for a `gap`).
    pub id: String,
    /// The event type shown.
    #[serde(rename = "type")]
    pub kind: String,
    /// The subscription's channels shown.
    pub channel: String,
    /// The id as shown (`none` when it has none).
    pub shown_id: String,
    /// The data as shown (pretty-printed when it is JSON).
    pub data: String,
}

impl Browser {
    /// Launch starts the driver and Chromium, or fails saying what to install.
    pub async fn launch() -> Browser {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
        let chromium = std::env::var_os("CHROMIUM")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
        assert!(
            chromium.exists(),
            "the browser test needs Chromium at {}: install Debian's package with \
             `apt-get install -y chromium`, or set CHROMIUM to a Chromium binary \
             (.ci/run installs it)",
            chromium.display()
        );
        assert!(
            dir.join("node_modules/playwright-core").is_dir(),
            "the browser test needs its Node packages: run `npm ci --prefix tests/browser` \
             (Node.js 20 or later; .ci/run does it)"
        );
        let mut child = Command::new("node")
            .arg(dir.join("driver.mjs"))
            .env("CHROMIUM", &chromium)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("the browser test needs Node.js 20 or later as `node` on PATH: {e}")
            });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = Arc::clone(&stderr);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut text = sink.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        let mut browser = Browser {
            stdin: child.stdin.take(),
            stdout: BufReader::new(child.stdout.take().unwrap()).lines(),
            child,
            stderr,
            version: String::new(),
        };
        let ready = browser.answer("launch", LAUNCH_TIMEOUT).await;
        browser.version = ready["version"].as_str().unwrap_or_default().to_string();
        browser
    }

    /// Call sends one command and returns its value; a failed command fails the test.
    pub async fn call(&mut self, command: Value) -> Value {
        let line = format!("{command}\n");
        let stdin = self.stdin.as_mut().expect("the driver is open");
        stdin.write_all(line.as_bytes()).await.unwrap();
        stdin.flush().await.unwrap();
        self.answer(&command.to_string(), COMMAND_TIMEOUT).await
    }

    async fn answer(&mut self, what: &str, timeout: Duration) -> Value {
        let line = match tokio::time::timeout(timeout, self.stdout.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(_) => panic!(
                "the browser driver exited during {what}; its output:\n{}",
                self.stderr()
            ),
            Err(_) => panic!(
                "the browser driver did not answer {what} within {timeout:?}; its output:\n{}",
                self.stderr()
            ),
        };
        let answer: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the browser driver said {line:?}: {e}"));
        if answer["ok"] != true {
            panic!(
                "browser: {what} failed: {}\n{}",
                answer["error"].as_str().unwrap_or(&line),
                self.stderr()
            );
        }
        answer["value"].clone()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Open loads `url` in a fresh page of this size and returns its status, headers and title.
    pub async fn open(&mut self, url: &str, width: u32, height: u32) -> Value {
        self.call(json!({"do": "open", "url": url, "width": width, "height": height}))
            .await
    }

    /// Wait_text waits until `selector`'s text contains `text`, and returns the whole text.
    pub async fn wait_text(&mut self, selector: &str, text: &str) -> String {
        let value = self
            .call(json!({"do": "waitFor", "selector": selector, "contains": text}))
            .await;
        value.as_str().unwrap_or_default().to_string()
    }

    /// Wait_state waits until the page shows this connection state.
    pub async fn wait_state(&mut self, state: &str) {
        self.call(json!({
            "do": "waitFor", "selector": "#state", "attribute": "data-state", "equals": state
        }))
        .await;
    }

    /// Wait_event waits until the event with this id is on the page, and returns it.
    pub async fn wait_event(&mut self, id: &str) -> Shown {
        let value = self.call(json!({"do": "waitEvent", "id": id})).await;
        serde_json::from_value(value).unwrap()
    }

    /// Events are the events on the page, oldest first.
    pub async fn events(&mut self) -> Vec<Shown> {
        serde_json::from_value(self.call(json!({"do": "events"})).await).unwrap()
    }

    /// Fill types into form fields, by selector.
    pub async fn fill(&mut self, fields: &[(&str, &str)]) {
        let fields: serde_json::Map<String, Value> = fields
            .iter()
            .map(|(selector, value)| (selector.to_string(), json!(value)))
            .collect();
        self.call(json!({"do": "fill", "fields": fields})).await;
    }

    pub async fn click(&mut self, selector: &str) {
        self.call(json!({"do": "click", "selector": selector}))
            .await;
    }

    pub async fn resize(&mut self, width: u32, height: u32) {
        self.call(json!({"do": "resize", "width": width, "height": height}))
            .await;
    }

    /// Screenshot saves a PNG of the page at `path`.
    pub async fn screenshot(&mut self, path: &Path, full_page: bool) {
        self.call(json!({"do": "screenshot", "path": path, "fullPage": full_page}))
            .await;
    }

    /// Problems reports CSP violations, uncaught errors and console errors seen so far.
    pub async fn problems(&mut self) -> Value {
        self.call(json!({"do": "problems"})).await
    }
}

impl Browser {
    /// Close lets the driver close Chromium and exit, as the end of its input asks it to.
    pub async fn close(mut self) {
        drop(self.stdin.take());
        let _ = tokio::time::timeout(COMMAND_TIMEOUT, self.child.wait()).await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
