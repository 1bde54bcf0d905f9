//! Events and their wire format.
//!
//! An [`Event`] is what a producer published: its channel, id, optional type and text data. Its
//! SSE frame is encoded once, here, and the same bytes are shared by every subscriber.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::channel::ChannelName;

/// The longest event id accepted, in bytes.
pub const MAX_EVENT_ID_LEN: usize = 256;
/// The longest event type accepted, in bytes.
pub const MAX_EVENT_TYPE_LEN: usize = 128;

/// EventFieldError says why an `id` or `event` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventFieldError {
    /// The value has CR, LF or NUL, which would inject fields into the stream.
    #[error("{field} must not contain CR, LF or NUL")]
    LineBreakOrNul {
        /// `id` or `event`.
        field: &'static str,
    },
    /// The value is longer than its limit.
    #[error("{field} is longer than {max} bytes")]
    TooLong {
        /// `id` or `event`.
        field: &'static str,
        /// The limit in bytes.
        max: usize,
    },
}

fn check_field(field: &'static str, value: &str, max: usize) -> Result<(), EventFieldError> {
    if value.len() > max {
        return Err(EventFieldError::TooLong { field, max });
    }
    if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | b'\0')) {
        return Err(EventFieldError::LineBreakOrNul { field });
    }
    Ok(())
}

/// EventId is an event's id: what a browser sends back as `Last-Event-ID` to resume.
///
/// It is never empty and never contains CR, LF or NUL.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EventId(Arc<str>);

impl EventId {
    /// Parse checks an id given by a producer; an empty one is `None` (the gateway assigns one).
    pub fn parse(s: &str) -> Result<Option<Self>, EventFieldError> {
        check_field("id", s, MAX_EVENT_ID_LEN)?;
        Ok((!s.is_empty()).then(|| Self(Arc::from(s))))
    }

    /// Generate makes a new id, unique across restarts and gateway instances, ordered by time
    /// (a UUID version 7).
    pub fn generate() -> Self {
        Self(Arc::from(uuid::Uuid::now_v7().to_string()))
    }

    /// As_str returns the id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// EventType is an event's type, sent as the `event:` field (what `addEventListener` listens for).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct EventType(Arc<str>);

impl EventType {
    /// Parse checks a type given by a producer; an empty one is `None` (no `event:` line).
    pub fn parse(s: &str) -> Result<Option<Self>, EventFieldError> {
        check_field("event", s, MAX_EVENT_TYPE_LEN)?;
        Ok((!s.is_empty()).then(|| Self(Arc::from(s))))
    }

    /// As_str returns the type.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Event is one published message, validated: it can be encoded without further checks.
#[derive(Clone, Debug)]
pub struct Event {
    /// The channel it was published to.
    pub channel: ChannelName,
    /// Its id: the producer's, or one the gateway assigned.
    pub id: EventId,
    /// Its type, if any.
    pub kind: Option<EventType>,
    /// Its data, as text.
    pub data: String,
}

impl Event {
    /// New validates the producer's optional `id` and `event` values and builds the event,
    /// assigning an id when none was given.
    pub fn new(
        channel: ChannelName,
        id: Option<&str>,
        kind: Option<&str>,
        data: String,
    ) -> Result<Self, EventFieldError> {
        let id = match id {
            Some(id) => EventId::parse(id)?,
            None => None,
        };
        let kind = match kind {
            Some(kind) => EventType::parse(kind)?,
            None => None,
        };
        Ok(Self {
            channel,
            id: id.unwrap_or_else(EventId::generate),
            kind,
            data,
        })
    }

    /// Encode writes the event's SSE frame: `id:`, `event:` when typed, one `data:` line per line
    /// of data (CR, LF and CRLF all break lines), then a blank line.
    pub fn encode(&self) -> Bytes {
        encode_frame(
            Some(self.id.as_str()),
            self.kind.as_ref().map(EventType::as_str),
            &self.data,
        )
    }
}

/// Encode_frame writes one SSE event. Callers guarantee `id` and `kind` hold no CR, LF or NUL.
pub fn encode_frame(id: Option<&str>, kind: Option<&str>, data: &str) -> Bytes {
    let mut buf = Vec::with_capacity(data.len() + 64);
    if let Some(id) = id {
        push_field(&mut buf, b"id: ", id.as_bytes());
    }
    if let Some(kind) = kind {
        push_field(&mut buf, b"event: ", kind.as_bytes());
    }
    let mut rest = data.as_bytes();
    loop {
        match rest.iter().position(|&b| b == b'\r' || b == b'\n') {
            Some(at) => {
                push_field(&mut buf, b"data: ", &rest[..at]);
                let skip = if rest[at] == b'\r' && rest.get(at + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = &rest[at + skip..];
            }
            None => {
                push_field(&mut buf, b"data: ", rest);
                break;
            }
        }
    }
    buf.push(b'\n');
    Bytes::from(buf)
}

fn push_field(buf: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    buf.extend_from_slice(name);
    buf.extend_from_slice(value);
    buf.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, kind: Option<&str>, data: &str) -> Event {
        let channel = ChannelName::parse("c").unwrap();
        Event::new(channel, Some(id), kind, data.to_string()).unwrap()
    }

    #[test]
    fn encodes_each_line_break_kind_as_its_own_data_line() {
        let frame = event("7", Some("note"), "a\r\nb\rc\nd").encode();
        assert_eq!(
            &frame[..],
            b"id: 7\nevent: note\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
        );
    }

    #[test]
    fn writes_no_event_line_without_a_type_and_keeps_empty_and_trailing_lines() {
        assert_eq!(&event("1", None, "").encode()[..], b"id: 1\ndata: \n\n");
        assert_eq!(
            &event("1", None, "x\n").encode()[..],
            b"id: 1\ndata: x\ndata: \n\n"
        );
        assert_eq!(
            &event("1", None, " lead").encode()[..],
            b"id: 1\ndata:  lead\n\n"
        );
    }

    #[test]
    fn refuses_field_injection_and_treats_empty_as_absent() {
        let c = ChannelName::parse("c").unwrap();
        for bad in ["a\nb", "a\rb", "a\0b"] {
            assert!(Event::new(c.clone(), Some(bad), None, String::new()).is_err());
            assert!(Event::new(c.clone(), None, Some(bad), String::new()).is_err());
        }
        let e = Event::new(c, Some(""), Some(""), String::new()).unwrap();
        assert!(!e.id.as_str().is_empty());
        assert!(e.kind.is_none());
    }

    #[test]
    fn generated_ids_are_unique_and_time_ordered() {
        let a = EventId::generate();
        let b = EventId::generate();
        assert_ne!(a, b);
        assert!(a.as_str() < b.as_str());
    }
}
