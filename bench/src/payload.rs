//! The data every benchmark event carries: which channel and sequence number it is, and when it
//! was sent, padded to a fixed size.
//!
//! The format is plain text, `CHANNEL SEQ SENT_UNIX_NANOS xxx…`, so that the same bytes travel
//! unchanged through a gateway JSON publish (a JSON string is sent as is), an nchan publish (the
//! raw body) and an AMQP body, and so that a subscriber reads it back without a JSON parser.

use std::time::{SystemTime, UNIX_EPOCH};

/// Stamp is what a subscriber learns from an event's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp<'a> {
    /// The channel the event was published to.
    pub channel: &'a [u8],
    /// Its sequence number within that channel, from 0.
    pub seq: u64,
    /// When the publisher sent it, in nanoseconds since the Unix epoch.
    pub sent_ns: u64,
}

/// Encode writes an event's data, padded with `x` up to `size` bytes when it is shorter.
pub fn encode(channel: &str, seq: u64, sent_ns: u64, size: usize) -> String {
    let mut data = format!("{channel} {seq} {sent_ns} ");
    let pad = size.saturating_sub(data.len());
    data.extend(std::iter::repeat_n('x', pad));
    data
}

/// Decode reads a stamp back; it returns `None` for data this tool did not write.
pub fn decode(data: &[u8]) -> Option<Stamp<'_>> {
    let mut fields = data.splitn(4, |&b| b == b' ');
    let channel = fields.next()?;
    let seq = parse_u64(fields.next()?)?;
    let sent_ns = parse_u64(fields.next()?)?;
    Some(Stamp {
        channel,
        seq,
        sent_ns,
    })
}

/// Parse_u64 reads a decimal number with no sign or spaces.
fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d < 10)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// Now_ns is the wall-clock time in nanoseconds since the Unix epoch: publisher and subscribers
/// run in one process, so their clocks agree.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_round_trips_and_is_padded_to_the_asked_size() {
        let data = encode("cats", 41, 1_700_000_000_123_456_789, 100);
        assert_eq!(data.len(), 100);
        assert_eq!(
            decode(data.as_bytes()),
            Some(Stamp {
                channel: b"cats",
                seq: 41,
                sent_ns: 1_700_000_000_123_456_789
            })
        );
    }

    #[test]
    fn short_sizes_are_not_truncated_and_foreign_data_is_refused() {
        let data = encode("c", 1, 2, 0);
        assert_eq!(decode(data.as_bytes()).map(|s| s.seq), Some(1));
        assert_eq!(decode(b"hello world"), None);
        assert_eq!(decode(b""), None);
        assert_eq!(decode(b"c 1"), None);
        assert_eq!(decode(b"c -1 2"), None);
        assert_eq!(decode(b"c 1 99999999999999999999 x"), None);
    }
}
