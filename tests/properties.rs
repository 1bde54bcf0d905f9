//! Property tests of the code that takes untrusted input (query and `Last-Event-ID` parsing,
//! publish bodies) and of the wire format: any event a producer can send reaches a spec-following
//! parser intact.

use proptest::prelude::*;
use sse_gateway::channel::ChannelName;
use sse_gateway::event::Event;
use sse_gateway::http::events::SubscribeRequest;
use sse_gateway::http::publish::PublishRequest;
use sse_gateway::sse_parser::{Item, SseParser};

/// Field values a producer may send: no CR, LF or NUL.
fn field(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[^\r\n\0]{{1,{max}}}")).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the data (any text, any line breaks), a browser gets it back with its line breaks
    /// as LF, with the id and type the producer gave, however the frame is split on the wire.
    #[test]
    fn every_event_round_trips_through_the_wire_format(
        data in "(?s).{0,200}",
        id in field(40),
        kind in proptest::option::of(field(20)),
        split in 1usize..64,
    ) {
        let channel = ChannelName::parse("c").unwrap();
        let event = Event::new(channel, Some(&id), kind.as_deref(), data.clone()).unwrap();
        let frame = event.encode();
        let mut parser = SseParser::new();
        let mut items = Vec::new();
        for chunk in frame.chunks(split) {
            parser.feed(chunk, &mut items);
        }
        let [Item::Event(got)] = items.as_slice() else {
            return Err(TestCaseError::fail(format!("expected one event, got {items:?}")));
        };
        prop_assert_eq!(&got.data, &data.replace("\r\n", "\n").replace('\r', "\n"));
        prop_assert_eq!(&got.last_event_id, &id);
        prop_assert_eq!(got.event.as_str(), kind.as_deref().unwrap_or("message"));
    }

    /// Any query string and header either parse into a valid, bounded subscription or are refused.
    #[test]
    fn subscribe_requests_never_panic_and_stay_within_bounds(
        query in "(?s).{0,300}",
        channels in proptest::collection::vec("[A-Za-z0-9_.:,%-]{0,12}", 0..80),
        header in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
    ) {
        let query = format!("{query}&channel={}", channels.join("&channel="));
        if let Ok(request) = SubscribeRequest::parse(&query, header.as_deref(), 64) {
            prop_assert!(!request.channels.is_empty() && request.channels.len() <= 64);
            let mut names: Vec<_> = request.channels.iter().map(ChannelName::as_str).collect();
            names.sort_unstable();
            names.dedup();
            prop_assert_eq!(names.len(), request.channels.len(), "channels are unique");
        }
    }

    /// Any bytes sent as a publish body decode or are refused, without panicking; what decodes
    /// either becomes a valid event or is refused as well.
    #[test]
    fn publish_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..400)) {
        let decoded = [PublishRequest::from_json(&body), PublishRequest::from_form(&body).map(|(r, _)| r)];
        for request in decoded.into_iter().flatten() {
            let _ = request.into_event();
        }
    }

    /// A JSON `data` of any shape is sent as its compact JSON text, or as is when a string.
    #[test]
    fn json_data_of_any_type_becomes_text(value in json_value()) {
        let body = serde_json::json!({"channel": "c", "data": value}).to_string();
        let request = PublishRequest::from_json(body.as_bytes()).unwrap();
        let expected = match &value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        prop_assert_eq!(request.data, expected);
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "(?s).{0,20}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map("[a-z]{1,5}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}
