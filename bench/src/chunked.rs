//! An incremental decoder for HTTP/1.1 `Transfer-Encoding: chunked` bodies.
//!
//! Both servers stream `text/event-stream` responses as chunks; the decoder hands the body bytes
//! on as slices of the input (no copy), whatever way the reads split the chunk framing.

/// ChunkError is a body that is not valid chunked encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid chunked transfer encoding")]
pub struct ChunkError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex size; `digits` tells whether one was seen.
    Size { size: usize, digits: bool },
    /// Skipping a chunk extension up to the end of the size line.
    Extension { size: usize },
    /// Inside a chunk's data.
    Data { remaining: usize },
    /// After a chunk's data, expecting its CRLF.
    DataEnd,
    /// The last (zero-size) chunk was read; the rest is trailers, ignored.
    Done,
}

/// ChunkedDecoder turns chunked-encoded input into body bytes.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self {
            state: State::Size {
                size: 0,
                digits: false,
            },
        }
    }
}

impl ChunkedDecoder {
    /// Is_done tells whether the last chunk was read (the body ended).
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Feed decodes `input`, calling `body` with each run of body bytes it contains.
    pub fn feed<'a>(
        &mut self,
        mut input: &'a [u8],
        mut body: impl FnMut(&'a [u8]),
    ) -> Result<(), ChunkError> {
        while !input.is_empty() {
            if let State::Data { remaining } = self.state {
                let take = remaining.min(input.len());
                body(&input[..take]);
                input = &input[take..];
                self.state = if take == remaining {
                    State::DataEnd
                } else {
                    State::Data {
                        remaining: remaining - take,
                    }
                };
                continue;
            }
            self.state = self.step(input[0])?;
            input = &input[1..];
        }
        Ok(())
    }

    /// Step takes one byte of framing (anything but chunk data).
    fn step(&self, byte: u8) -> Result<State, ChunkError> {
        Ok(match (self.state, byte) {
            (State::Size { size, .. }, b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => {
                let digit = usize::from(hex_value(byte));
                let size = size
                    .checked_mul(16)
                    .and_then(|s| s.checked_add(digit))
                    .ok_or(ChunkError)?;
                State::Size { size, digits: true }
            }
            (State::Size { size, digits: true }, b';' | b' ' | b'\t') => State::Extension { size },
            (State::Size { digits: true, .. } | State::Extension { .. }, b'\r') => self.state,
            (State::Size { size, digits: true } | State::Extension { size }, b'\n') => {
                if size == 0 {
                    State::Done
                } else {
                    State::Data { remaining: size }
                }
            }
            (State::Extension { .. }, _) => self.state,
            (State::DataEnd, b'\r') => State::DataEnd,
            (State::DataEnd, b'\n') => State::Size {
                size: 0,
                digits: false,
            },
            (State::Done, _) => State::Done,
            _ => return Err(ChunkError),
        })
    }
}

fn hex_value(byte: u8) -> u8 {
    match byte {
        b'0'..=b'9' => byte - b'0',
        b'a'..=b'f' => byte - b'a' + 10,
        _ => byte - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(input: &[u8], piece: usize) -> Result<(Vec<u8>, bool), ChunkError> {
        let mut decoder = ChunkedDecoder::default();
        let mut out = Vec::new();
        for chunk in input.chunks(piece) {
            decoder.feed(chunk, |b| out.extend_from_slice(b))?;
        }
        Ok((out, decoder.is_done()))
    }

    #[test]
    fn decodes_chunks_and_extensions_however_the_input_is_split() {
        let input = b"5\r\nhello\r\nA;ext=1\r\n, world!!!\r\n0\r\n\r\n";
        for piece in 1..=input.len() {
            assert_eq!(
                decode_in_pieces(input, piece),
                Ok((b"hello, world!!!".to_vec(), true)),
                "pieces of {piece}"
            );
        }
    }

    #[test]
    fn an_open_stream_is_not_done_and_garbage_is_refused() {
        assert_eq!(
            decode_in_pieces(b"3\r\nabc\r\n", 2),
            Ok((b"abc".to_vec(), false))
        );
        assert_eq!(decode_in_pieces(b"zz\r\n", 4), Err(ChunkError));
        assert_eq!(decode_in_pieces(b"3\r\nabcX", 4), Err(ChunkError));
        assert_eq!(
            decode_in_pieces(b"ffffffffffffffffff\r\n", 4),
            Err(ChunkError)
        );
    }
}
