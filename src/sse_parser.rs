//! An incremental `text/event-stream` parser that follows the WHATWG HTML specification
//! (section 9.2.6, "Interpreting an event stream"), as a browser's `EventSource` does.
//!
//! The gateway itself never parses streams; the tests do, so that they see exactly what a
//! browser sees (the load tool has a leaner parser of its own, tested against this one). Unlike a browser, it also reports comments and `retry:` values,
//! and whether an event carried its own `id:` field.

/// Item is one thing a stream says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A dispatched event.
    Event(SseEvent),
    /// A comment line (`:` and what follows, without the colon).
    Comment(String),
    /// A valid `retry:` field: the reconnection time in milliseconds.
    Retry(u64),
}

/// SseEvent is an event as `EventSource` dispatches it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The event type: the `event:` field, or `message` without one.
    pub event: String,
    /// The data: the `data:` lines joined by LF.
    pub data: String,
    /// The last event id after this event (`lastEventId`); it persists across events.
    pub last_event_id: String,
    /// Whether this event had an `id:` field of its own.
    pub had_id: bool,
}

/// SseParser turns chunks of bytes into [`Item`]s; chunks may split lines anywhere.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    after_cr: bool,
    started: bool,
    data: String,
    event: String,
    last_event_id: String,
    had_id: bool,
}

impl SseParser {
    /// New makes a parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed parses a chunk and appends what it completes to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Item>) {
        for &byte in chunk {
            match byte {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\r' | b'\n' => {
                    self.after_cr = byte == b'\r';
                    let line = std::mem::take(&mut self.line);
                    self.process_line(&line, out);
                }
                _ => {
                    self.after_cr = false;
                    self.line.push(byte);
                }
            }
        }
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<Item>) {
        let mut line = line;
        if !std::mem::replace(&mut self.started, true) {
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        }
        let line = String::from_utf8_lossy(line);
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if let Some(comment) = line.strip_prefix(':') {
            out.push(Item::Comment(comment.to_string()));
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (&*line, ""),
        };
        match field {
            "event" => self.event = value.to_string(),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "id" if !value.contains('\0') => {
                self.last_event_id = value.to_string();
                self.had_id = true;
            }
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(ms) = value.parse() {
                    out.push(Item::Retry(ms));
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<Item>) {
        let had_id = std::mem::take(&mut self.had_id);
        let event = std::mem::take(&mut self.event);
        let mut data = std::mem::take(&mut self.data);
        if data.is_empty() {
            return;
        }
        if data.ends_with('\n') {
            data.pop();
        }
        out.push(Item::Event(SseEvent {
            event: if event.is_empty() {
                "message".to_string()
            } else {
                event
            },
            data,
            last_event_id: self.last_event_id.clone(),
            had_id,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(stream: &[u8], piece: usize) -> Vec<Item> {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        for chunk in stream.chunks(piece) {
            parser.feed(chunk, &mut out);
        }
        out
    }

    fn event(event: &str, data: &str, id: &str, had_id: bool) -> Item {
        Item::Event(SseEvent {
            event: event.into(),
            data: data.into(),
            last_event_id: id.into(),
            had_id,
        })
    }

    #[test]
    fn follows_the_specification_examples_whatever_the_chunking() {
        let stream = b"\xEF\xBB\xBFretry: 2000\r\n: hi\r\n\r\ndata: YHOO\ndata: +2\ndata: 10\n\n\
id: 1\revent: add\rdata:x\r\rdata\n\ndata:  two spaces\n\nid\n\n";
        let expected = vec![
            Item::Retry(2000),
            Item::Comment(" hi".into()),
            event("message", "YHOO\n+2\n10", "", false),
            event("add", "x", "1", true),
            event("message", "", "1", false),
            event("message", " two spaces", "1", false),
        ];
        for piece in 1..=stream.len() {
            assert_eq!(
                parse_in_pieces(stream, piece),
                expected,
                "chunks of {piece}"
            );
        }
    }

    #[test]
    fn an_event_without_data_is_not_dispatched_and_an_unfinished_one_waits() {
        assert_eq!(parse_in_pieces(b"event: x\nid: 3\n\ndata: a", 4), vec![]);
    }

    #[test]
    fn ids_persist_and_invalid_retry_values_are_ignored() {
        let items = parse_in_pieces(b"id: 9\ndata: a\n\ndata: b\n\nretry: 1x\nretry\n\n", 3);
        assert_eq!(
            items,
            vec![
                event("message", "a", "9", true),
                event("message", "b", "9", false)
            ]
        );
    }
}
