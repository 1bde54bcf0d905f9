//! `GET /events` served on the bare connection, outside actix-web's HTTP/1 dispatcher.
//!
//! An idle subscriber is the gateway's most numerous object, and after its request it only
//! receives. actix-http gives every connection an 8 KiB read and an 8 KiB write buffer for its
//! whole life (constants in its dispatcher) and copies each body chunk into the write buffer to
//! frame it as chunked; that was two thirds of an idle subscriber's memory, and a copy of every
//! frame. So a new connection's first request is peeked at, without reading it: a complete
//! `GET /events` that the gateway accepts is answered here (the response head, then the shared
//! frames written straight from the outbox, the body ending when the connection closes), and
//! everything else (other paths, refusals and their errors, heads that arrive in pieces, bodies,
//! later requests on a kept-alive connection) goes to actix-web untouched, so every error has
//! one implementation.

use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::Instrument;

use super::cors::Cors;
use super::events::SubscribeRequest;
use super::request_log::{log_outcome, request_id, request_span};
use super::AppState;
use crate::subscriber::SseBody;

/// The largest request head served here; a longer one goes to actix-web (which allows more).
const MAX_HEAD: usize = 8 * 1024;
/// The most request headers served here; more go to actix-web.
const MAX_HEADERS: usize = 48;

/// Opening is what a new connection turned out to be.
pub(crate) enum Opening {
    /// A subscription, ready to stream (boxed: the connection's task keeps only a pointer).
    Stream(Box<EventStream>),
    /// Anything else: actix-web serves the connection, which nothing has been read from.
    Http,
    /// The client sent nothing within the request timeout, or left.
    Gone,
}

/// Head is what the gateway needs from a `GET /events` request head.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    /// The head's length in bytes, to consume once the request is accepted.
    len: usize,
    request: SubscribeRequest,
    request_id: String,
    cors_headers: String,
}

/// EventStream is an accepted subscription on a bare connection. It keeps no request span:
/// like actix-web's, the request's span ends when its response starts (a span lives in the
/// log subscriber's registry, and an idle subscriber should cost as little as it can).
pub(crate) struct EventStream {
    head: BytesMut,
    body: SseBody,
}

/// Open peeks at a new connection's first request and, when it is a `GET /events` the gateway
/// accepts, subscribes it and consumes its head.
pub(crate) async fn open(
    io: &TcpStream,
    state: &AppState,
    cors: &Cors,
    request_timeout: Duration,
) -> Opening {
    let started = Instant::now();
    let mut buf = vec![0; MAX_HEAD];
    let peeked = match tokio::time::timeout(request_timeout, io.peek(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => n,
        _ => return Opening::Gone,
    };
    let max_channels = state.hub.settings().max_channels_per_connection;
    let Some(head) = parse_head(&buf[..peeked], cors, max_channels) else {
        return Opening::Http;
    };
    let span = request_span(&head.request_id);
    let subscribed = state
        .hub
        .subscribe(&head.request.channels, head.request.resume.clone())
        .instrument(span.clone())
        .await;
    let Ok(subscription) = subscribed else {
        // A refusal is answered by actix-web, which asks the hub again and renders the error.
        return Opening::Http;
    };
    if consume(io, &mut buf[..head.len]).await.is_err() {
        return Opening::Gone;
    }
    span.in_scope(|| log_outcome("GET", "/events", 200, started));
    let mut body = SseBody::new(subscription, state.body);
    // The head and the body's opening (retry, comment, backlog) go out in one write.
    let mut bytes = response_head(&head);
    bytes.extend_from_slice(&body.take_opening());
    Opening::Stream(Box::new(EventStream { head: bytes, body }))
}

impl EventStream {
    /// Run writes the response head and then the stream until it ends, the client leaves or a
    /// write fails; the connection is closed after it.
    ///
    /// It borrows the stream, so that its future holds little of its own: a subscriber's task
    /// lives as long as the subscriber, and every byte of it counts thousands of times.
    pub(crate) async fn run(&mut self, mut io: TcpStream) {
        let (mut reader, mut writer) = io.split();
        if writer.write_all(&self.head).await.is_err() {
            return;
        }
        self.head = BytesMut::new();
        let mut probe = [0u8; 1];
        loop {
            tokio::select! {
                chunk = self.body.next() => match chunk {
                    Some(Ok(bytes)) => {
                        if writer.write_all(&bytes).await.is_err() {
                            return;
                        }
                    }
                    _ => break,
                },
                // A subscriber sends nothing after its request: end of input or an error means
                // it left, and anything else is a client this stream cannot answer (a pipelined
                // request on a response that ends with the connection) or one wasting the
                // gateway's reads; either way the connection is closed.
                read = reader.read(&mut probe) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        tracing::debug!("event stream closed: the client sent data after its request");
                        return;
                    }
                },
            }
        }
        let _ = writer.shutdown().await;
    }
}

/// Consume reads the peeked head off the socket; it is all there already.
async fn consume(io: &TcpStream, head: &mut [u8]) -> std::io::Result<()> {
    let mut done = 0;
    while done < head.len() {
        io.readable().await?;
        match io.try_read(&mut head[done..]) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Parse_head decides whether a request head is one served here: complete, `GET /events` with
/// no body and no upgrade, and a subscription request that decodes. Anything else is `None`, for actix-web to serve.
fn parse_head(bytes: &[u8], cors: &Cors, max_channels: usize) -> Option<Head> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(len) = parsed.parse(bytes).ok()? else {
        return None;
    };
    if parsed.method? != "GET" {
        return None;
    }
    let (path, query) = parsed.path?.split_once('?').unwrap_or((parsed.path?, ""));
    if path != "/events" {
        return None;
    }
    let (mut last_event_id, mut origin, mut incoming_id) = (None, None, None);
    for header in parsed.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("last-event-id") {
            last_event_id = last_event_id.or(Some(header.value));
        } else if name.eq_ignore_ascii_case("origin") {
            origin = origin.or(Some(std::str::from_utf8(header.value).ok()?));
        } else if name.eq_ignore_ascii_case("x-request-id") {
            incoming_id = incoming_id.or(Some(header.value));
        } else if name.eq_ignore_ascii_case("content-length") {
            if header.value != b"0" {
                return None;
            }
        } else if ["transfer-encoding", "expect", "upgrade"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n))
        {
            return None;
        }
    }
    let request = SubscribeRequest::parse(query, last_event_id, max_channels).ok()?;
    Some(Head {
        len,
        request,
        request_id: request_id(incoming_id),
        cors_headers: cors.stream_headers(origin),
    })
}

/// Response_head is the `200` head of an event stream, with the headers actix-web would send.
/// The body is delimited by closing the connection, so it needs no chunked framing.
fn response_head(head: &Head) -> BytesMut {
    let date = httpdate::fmt_http_date(SystemTime::now());
    let text = format!(
        "HTTP/1.1 200 OK\r\n\
         content-type: text/event-stream\r\n\
         cache-control: no-cache\r\n\
         x-accel-buffering: no\r\n\
         x-content-type-options: nosniff\r\n\
         x-request-id: {}\r\n\
         connection: close\r\n\
         date: {date}\r\n\
         {}\r\n",
        head.request_id, head.cors_headers
    );
    BytesMut::from(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::Resume;

    fn parse(text: &str, cors: &Cors) -> Option<Head> {
        parse_head(text.as_bytes(), cors, 4)
    }

    #[test]
    fn a_complete_get_events_is_served_here() {
        let text = "GET /events?channel=a,b HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 7\r\n\
                    X-Request-Id: abc\r\n\r\n";
        let head = parse(text, &Cors::Off).unwrap();
        assert_eq!(head.len, text.len());
        assert_eq!(head.request.channels.len(), 2);
        assert_eq!(head.request.resume, Resume::After("7".into()));
        assert_eq!(head.request_id, "abc");
    }

    #[test]
    fn everything_else_goes_to_actix() {
        for text in [
            "GET /events?channel=a HTTP/1.1\r\nHost: x\r\n",
            "HEAD /events?channel=a HTTP/1.1\r\n\r\n",
            "GET /events/?channel=a HTTP/1.1\r\n\r\n",
            "GET /stats HTTP/1.1\r\n\r\n",
            "GET /events HTTP/1.1\r\n\r\n",
            "GET /events?channel=a%FF HTTP/1.1\r\n\r\n",
            "GET /events?channel=a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
            "GET /events?channel=a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET /events?channel=a HTTP/1.1\r\nLast-Event-ID: a\nb\r\n\r\n",
        ] {
            assert!(parse(text, &Cors::Off).is_none(), "{text:?}");
        }
    }
}
