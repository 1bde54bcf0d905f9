//! One SSE subscriber: connect from a chosen loopback source address, send `GET /events`, check
//! the response head, then read the stream until told to stop, parsing it as a browser would
//! (chunked transfer decoding, then [`EventParser`]) and tallying every event.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;

use crate::chunked::ChunkedDecoder;
use crate::payload::now_ns;
use crate::progress::Progress;
use crate::sse::EventParser;
use crate::tally::Tally;

/// The largest response head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Bytes read from the socket at once: room for a large coalesced write in one read.
const READ_BUFFER: usize = 16 * 1024;

/// Connected is a subscriber whose response head was accepted.
pub struct Connected {
    stream: TcpStream,
    leftover: Vec<u8>,
    decoder: Option<ChunkedDecoder>,
}

/// Connect opens the stream for `path` on `server`, from `source` when given.
pub async fn connect(
    server: SocketAddr,
    source: Option<IpAddr>,
    path: &str,
) -> anyhow::Result<Connected> {
    let socket = TcpSocket::new_v4().context("creating a socket")?;
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::new(ip, 0))
            .with_context(|| format!("binding {ip}"))?;
    }
    let mut stream = socket
        .connect(server)
        .await
        .with_context(|| format!("connecting to {server}"))?;
    stream.set_nodelay(true).context("setting TCP_NODELAY")?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {server}\r\nAccept: text/event-stream\r\n\
         Cache-Control: no-cache\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .context("sending the request")?;
    let (head, leftover) = read_head(&mut stream).await?;
    let chunked = check_head(&head)?;
    Ok(Connected {
        stream,
        leftover,
        decoder: chunked.then(ChunkedDecoder::default),
    })
}

/// Read_head reads up to the blank line that ends the response head; it returns the head and
/// the body bytes read with it.
async fn read_head(stream: &mut TcpStream) -> anyhow::Result<(String, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let leftover = buf.split_off(end + 4);
            buf.truncate(end);
            return Ok((String::from_utf8_lossy(&buf).into_owned(), leftover));
        }
        if buf.len() > MAX_HEAD {
            bail!("response head longer than {MAX_HEAD} bytes");
        }
        if stream
            .read_buf(&mut buf)
            .await
            .context("reading the response head")?
            == 0
        {
            bail!("connection closed before the response head");
        }
    }
}

/// Check_head accepts a `200` `text/event-stream` response; it returns whether the body is
/// chunked.
fn check_head(head: &str) -> anyhow::Result<bool> {
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        bail!("response {status:?}");
    }
    let mut chunked = false;
    let mut event_stream = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim().to_ascii_lowercase();
        match name.trim().to_ascii_lowercase().as_str() {
            "transfer-encoding" => chunked = value.contains("chunked"),
            "content-type" => event_stream = value.starts_with("text/event-stream"),
            _ => {}
        }
    }
    if !event_stream {
        bail!("response is not text/event-stream");
    }
    Ok(chunked)
}

/// Outcome is how a subscriber ended.
#[derive(Debug)]
pub struct Outcome {
    /// What it received.
    pub tally: Tally,
    /// Whether it connected at all.
    pub connected: bool,
    /// Whether the server ended its stream before the run did.
    pub closed_early: bool,
    /// The error that ended it, if one did.
    pub error: Option<String>,
}

impl Outcome {
    /// Failed is a subscriber that never connected.
    pub fn failed(tally: Tally, error: &anyhow::Error) -> Self {
        Self {
            tally,
            connected: false,
            closed_early: false,
            error: Some(format!("{error:#}")),
        }
    }
}

/// Listen reads the stream until `stop` changes or the server ends it, tallying every event and
/// telling `progress` when the tally is complete.
pub async fn listen(
    conn: Connected,
    tally: Tally,
    progress: Arc<Progress>,
    mut stop: watch::Receiver<bool>,
) -> Outcome {
    let mut stream = Stream {
        decoder: conn.decoder,
        parser: EventParser::default(),
        tally,
        progress,
    };
    if stream.tally.is_complete() {
        stream.progress.subscriber_complete();
    }
    let mut socket = conn.stream;
    let ended = match stream.absorb(&conn.leftover, now_ns()) {
        Ok(()) => read_until_stopped(&mut socket, &mut stream, &mut stop).await,
        Err(e) => Err(e),
    };
    let (closed_early, error) = match ended {
        Ok(Ended::Stopped) => (false, None),
        Ok(Ended::Closed) => (true, None),
        Err(e) => (true, Some(format!("{e:#}"))),
    };
    Outcome {
        tally: stream.tally,
        connected: true,
        closed_early,
        error,
    }
}

enum Ended {
    Stopped,
    Closed,
}

async fn read_until_stopped(
    socket: &mut TcpStream,
    stream: &mut Stream,
    stop: &mut watch::Receiver<bool>,
) -> anyhow::Result<Ended> {
    let mut buf = vec![0u8; READ_BUFFER];
    loop {
        let read = tokio::select! {
            biased;
            _ = stop.changed() => return Ok(Ended::Stopped),
            read = socket.read(&mut buf) => read.context("reading the stream")?,
        };
        if read == 0 {
            return Ok(Ended::Closed);
        }
        stream.absorb(&buf[..read], now_ns())?;
        if stream.decoder.as_ref().is_some_and(ChunkedDecoder::is_done) {
            return Ok(Ended::Closed);
        }
    }
}

/// Stream is the decoding state of one subscriber's response body.
struct Stream {
    decoder: Option<ChunkedDecoder>,
    parser: EventParser,
    tally: Tally,
    progress: Arc<Progress>,
}

impl Stream {
    /// Absorb decodes bytes read at `now` and tallies the events they complete.
    fn absorb(&mut self, bytes: &[u8], now: u64) -> anyhow::Result<()> {
        let (parser, tally, progress) = (&mut self.parser, &mut self.tally, &self.progress);
        let mut on_event = |data: &[u8]| {
            if tally.record(data, now) {
                progress.subscriber_complete();
            }
        };
        match &mut self.decoder {
            Some(decoder) => decoder.feed(bytes, |body| parser.feed(body, &mut on_event))?,
            None => parser.feed(bytes, on_event),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_a_chunked_or_plain_event_stream_and_refuses_anything_else() {
        let chunked = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                       Transfer-Encoding: chunked";
        assert!(check_head(chunked).unwrap());
        let plain = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8";
        assert!(!check_head(plain).unwrap());
        assert!(check_head("HTTP/1.1 503 Service Unavailable\r\nContent-Type: x").is_err());
        assert!(check_head("HTTP/1.1 200 OK\r\nContent-Type: text/html").is_err());
    }
}
