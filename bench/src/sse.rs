//! A lean `text/event-stream` parser for the subscriber hot path.
//!
//! It interprets the stream as the WHATWG specification says (CR, LF and CRLF line ends, a BOM
//! at the start, comments, `field: value` with one optional space, `data` lines joined by LF,
//! dispatch on a blank line, no dispatch without data), but it only reports each event's data,
//! as bytes, and allocates nothing per event. The gateway's own [`SseParser`] builds owned
//! strings for every line and field; profiling a 10000-subscriber run showed it and the allocator
//! as three quarters of the tool's CPU, enough to make the tool the bottleneck. The tests check
//! this parser against [`SseParser`] on the specification's examples, however the input is split.
//!
//! [`SseParser`]: sse_gateway::sse_parser::SseParser

/// EventParser turns chunks of a stream into the data of each dispatched event.
#[derive(Debug, Default)]
pub struct EventParser {
    /// The unfinished line carried over from the previous chunk.
    line: Vec<u8>,
    /// The previous chunk ended with CR: a LF starting this one belongs to it.
    after_cr: bool,
    /// A line was already seen (the BOM is only stripped from the first).
    started: bool,
    /// The data buffer, without the LF after its last line.
    data: Vec<u8>,
    /// Whether a `data` field was seen since the last dispatch.
    has_data: bool,
}

impl EventParser {
    /// Feed parses a chunk and calls `on_event` with the data of each event it completes.
    pub fn feed(&mut self, chunk: &[u8], mut on_event: impl FnMut(&[u8])) {
        let mut rest = chunk;
        if std::mem::take(&mut self.after_cr) && rest.first() == Some(&b'\n') {
            rest = &rest[1..];
        }
        while let Some(end) = memchr::memchr2(b'\r', b'\n', rest) {
            if self.line.is_empty() {
                self.process_line(&rest[..end], &mut on_event);
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&rest[..end]);
                self.process_line(&line, &mut on_event);
                line.clear();
                self.line = line;
            }
            let cr = rest[end] == b'\r';
            rest = &rest[end + 1..];
            if cr {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    None => self.after_cr = true,
                    Some(_) => {}
                }
            }
        }
        self.line.extend_from_slice(rest);
    }

    fn process_line(&mut self, line: &[u8], on_event: &mut impl FnMut(&[u8])) {
        let mut line = line;
        if !std::mem::replace(&mut self.started, true) {
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        }
        if line.is_empty() {
            if std::mem::take(&mut self.has_data) {
                on_event(&self.data);
            }
            self.data.clear();
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &line[..0]),
        };
        if field == b"data" {
            if std::mem::replace(&mut self.has_data, true) {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sse_gateway::sse_parser::{Item, SseParser};

    /// The streams both parsers must agree on: the specification's examples, every line ending,
    /// comments, empty data, fields without a colon, a BOM, and events like the servers send.
    const STREAMS: [&[u8]; 4] = [
        b"\xEF\xBB\xBFretry: 2000\r\n: hi\r\n\r\ndata: YHOO\ndata: +2\ndata: 10\n\n\
id: 1\revent: add\rdata:x\r\rdata\n\ndata:  two spaces\n\nid\n\n",
        b"data:first\r\ndata\r\ndata: third\r\n\r\nevent: e\n\n:\n\ndata: \n\n",
        b"retry: 3000\n: ok\n\nid: 0191\ndata: general 1 17 xxxx\n\nid: 0192\n\
data: general 2 18 xxxx\n\n",
        b"data: unfinished\n",
    ];

    fn reference(stream: &[u8], piece: usize) -> Vec<String> {
        let mut parser = SseParser::new();
        let mut items = Vec::new();
        for chunk in stream.chunks(piece) {
            parser.feed(chunk, &mut items);
        }
        items
            .into_iter()
            .filter_map(|item| match item {
                Item::Event(e) => Some(e.data),
                _ => None,
            })
            .collect()
    }

    fn lean(stream: &[u8], piece: usize) -> Vec<String> {
        let mut parser = EventParser::default();
        let mut out = Vec::new();
        for chunk in stream.chunks(piece) {
            parser.feed(chunk, |data| {
                out.push(String::from_utf8_lossy(data).into_owned());
            });
        }
        out
    }

    #[test]
    fn agrees_with_the_gateway_parser_however_the_stream_is_split() {
        for stream in STREAMS {
            for piece in 1..=stream.len() {
                assert_eq!(
                    lean(stream, piece),
                    reference(stream, stream.len()),
                    "{:?} in pieces of {piece}",
                    String::from_utf8_lossy(stream)
                );
            }
        }
    }

    #[test]
    fn reports_each_events_data_joined_by_line_feeds() {
        assert_eq!(
            lean(STREAMS[0], 7),
            ["YHOO\n+2\n10", "x", "", " two spaces"]
        );
    }
}
