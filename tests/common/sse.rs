//! A subscriber that reads a real `text/event-stream` response with the spec parser.

use std::collections::VecDeque;

use reqwest::header::HeaderMap;
use sse_gateway::sse_parser::{Item, SseEvent, SseParser};

use super::WAIT;

/// SseStream is one open subscription.
pub struct SseStream {
    pub headers: HeaderMap,
    response: reqwest::Response,
    parser: SseParser,
    items: VecDeque<Item>,
    ended: bool,
}

impl SseStream {
    /// Open connects and expects 200.
    pub async fn open(http: &reqwest::Client, url: &str, last_event_id: Option<&str>) -> SseStream {
        let mut request = http.get(url).timeout(std::time::Duration::from_secs(3600));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "GET {url}");
        SseStream {
            headers: response.headers().clone(),
            response,
            parser: SseParser::new(),
            items: VecDeque::new(),
            ended: false,
        }
    }

    /// Next_item returns the next thing the stream says, or `None` once it ended; it fails the
    /// test if nothing comes within [`WAIT`].
    pub async fn next_item(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.items.pop_front() {
                return Some(item);
            }
            if self.ended {
                return None;
            }
            let chunk = tokio::time::timeout(WAIT, self.response.chunk())
                .await
                .expect("the stream said nothing in time");
            match chunk {
                Ok(Some(bytes)) => {
                    let mut out = Vec::new();
                    self.parser.feed(&bytes, &mut out);
                    self.items.extend(out);
                }
                Ok(None) | Err(_) => self.ended = true,
            }
        }
    }

    /// Next_event skips comments and `retry:` and returns the next event.
    pub async fn next_event(&mut self) -> SseEvent {
        loop {
            match self.next_item().await {
                Some(Item::Event(event)) => return event,
                Some(_) => {}
                None => panic!("the stream ended while an event was expected"),
            }
        }
    }

    /// Events returns the next `n` events.
    pub async fn events(&mut self, n: usize) -> Vec<SseEvent> {
        let mut events = Vec::with_capacity(n);
        for _ in 0..n {
            events.push(self.next_event().await);
        }
        events
    }

    /// Ids returns the ids of the next `n` events.
    pub async fn ids(&mut self, n: usize) -> Vec<String> {
        self.events(n)
            .await
            .into_iter()
            .map(|e| e.last_event_id)
            .collect()
    }

    /// Rest reads until the stream ends and returns every item after this point.
    pub async fn rest(&mut self) -> Vec<Item> {
        let mut items = Vec::new();
        while let Some(item) = self.next_item().await {
            items.push(item);
        }
        items
    }
}

/// Ids makes the ids `from..=to` as strings.
pub fn ids(from: usize, to: usize) -> Vec<String> {
    (from..=to).map(|i| i.to_string()).collect()
}
