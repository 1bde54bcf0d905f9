//! What each subscriber received, and the totals over all of them.
//!
//! Each subscriber keeps its own [`Tally`] (no sharing, no atomics on the hot path): per channel,
//! a bitmap of the sequence numbers seen, to count missing and repeated events, and a latency
//! histogram, made on the first event only so that idle subscribers cost nothing. The tallies
//! are merged into [`Totals`] when the run ends.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::sync::Arc;

use hdrhistogram::Histogram;

use crate::payload;

/// The slowest latency recorded, in microseconds; slower ones are recorded as this.
const MAX_LATENCY_US: u64 = 60_000_000;
/// Significant digits of the latency histograms: 1% resolution keeps one at about 10 KB.
const LATENCY_DIGITS: u8 = 2;

/// Latency_template makes the empty histogram every tally's latency histogram copies.
pub fn latency_template() -> anyhow::Result<Arc<Histogram<u32>>> {
    Ok(Arc::new(Histogram::new_with_bounds(
        1,
        MAX_LATENCY_US,
        LATENCY_DIGITS,
    )?))
}

/// Expectation is one channel a subscriber listens to and how many events will be published there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expectation {
    /// The channel.
    pub channel: String,
    /// Events published to it (sequence numbers `0..events`).
    pub events: u64,
}

/// Tally is one subscriber's record of what it received.
#[derive(Debug)]
pub struct Tally {
    channels: Vec<Seen>,
    template: Arc<Histogram<u32>>,
    expected: u64,
    received: u64,
    duplicated: u64,
    unexpected: u64,
    last_ns: u64,
}

impl Tally {
    /// New starts a tally for a subscriber that expects `expectations`.
    pub fn new(expectations: &[Expectation], template: Arc<Histogram<u32>>) -> Self {
        let channels = expectations
            .iter()
            .map(|e| Seen {
                channel: e.channel.clone(),
                events: e.events,
                bits: vec![0; usize::try_from(e.events.div_ceil(64)).unwrap_or(0)],
                latency: None,
            })
            .collect();
        Self {
            channels,
            template,
            expected: expectations.iter().map(|e| e.events).sum(),
            received: 0,
            duplicated: 0,
            unexpected: 0,
            last_ns: 0,
        }
    }

    /// Is_complete tells whether every expected event arrived.
    pub fn is_complete(&self) -> bool {
        self.received >= self.expected
    }

    /// Record counts an event's data received at `now_ns`; it returns true when this event
    /// completed the tally.
    pub fn record(&mut self, data: &[u8], now_ns: u64) -> bool {
        let Some(stamp) = payload::decode(data) else {
            self.unexpected += 1;
            return false;
        };
        let Some(seen) = self
            .channels
            .iter_mut()
            .find(|seen| seen.channel.as_bytes() == stamp.channel)
        else {
            self.unexpected += 1;
            return false;
        };
        match seen.mark(stamp.seq) {
            Mark::OutOfRange => self.unexpected += 1,
            Mark::Again => self.duplicated += 1,
            Mark::New => {
                self.received += 1;
                self.last_ns = self.last_ns.max(now_ns);
                let micros = now_ns.saturating_sub(stamp.sent_ns) / 1000;
                let template = &self.template;
                seen.latency
                    .get_or_insert_with(|| Histogram::new_from(template))
                    .saturating_record(micros.max(1));
                return self.received == self.expected;
            }
        }
        false
    }
}

/// Seen is what one subscriber received on one channel: a bitmap of sequence numbers and the
/// latency histogram.
#[derive(Debug)]
struct Seen {
    channel: String,
    events: u64,
    bits: Vec<u64>,
    latency: Option<Histogram<u32>>,
}

enum Mark {
    New,
    Again,
    OutOfRange,
}

impl Seen {
    /// Mark records sequence number `seq` and tells whether it is new.
    fn mark(&mut self, seq: u64) -> Mark {
        let word = usize::try_from(seq / 64).ok();
        match word.and_then(|w| self.bits.get_mut(w)) {
            Some(word) if seq < self.events => {
                let bit = 1u64 << (seq % 64);
                if *word & bit != 0 {
                    return Mark::Again;
                }
                *word |= bit;
                Mark::New
            }
            _ => Mark::OutOfRange,
        }
    }
}

/// Totals are the merged tallies of every subscriber.
#[derive(Debug)]
pub struct Totals {
    /// Events that should have arrived, over all subscribers.
    pub expected: u64,
    /// Distinct expected events that arrived.
    pub received: u64,
    /// Events that arrived again after their first arrival.
    pub duplicated: u64,
    /// Events this run did not publish (foreign data, wrong channel, sequence out of range).
    pub unexpected: u64,
    /// When the last distinct event arrived, in Unix nanoseconds (0 when none did).
    pub last_ns: u64,
    /// Delivery latency of every distinct event, in microseconds.
    pub latency: Histogram<u64>,
    /// The same, per channel.
    pub latency_by_channel: BTreeMap<String, Histogram<u64>>,
}

impl Totals {
    /// New starts empty totals.
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            expected: 0,
            received: 0,
            duplicated: 0,
            unexpected: 0,
            last_ns: 0,
            latency: Self::histogram()?,
            latency_by_channel: BTreeMap::new(),
        })
    }

    fn histogram() -> anyhow::Result<Histogram<u64>> {
        Ok(Histogram::new_with_bounds(
            1,
            MAX_LATENCY_US,
            LATENCY_DIGITS,
        )?)
    }

    /// Add merges one subscriber's tally.
    pub fn add(&mut self, tally: &Tally) -> anyhow::Result<()> {
        self.expected += tally.expected;
        self.received += tally.received;
        self.duplicated += tally.duplicated;
        self.unexpected += tally.unexpected;
        self.last_ns = self.last_ns.max(tally.last_ns);
        for seen in &tally.channels {
            let Some(latency) = &seen.latency else {
                continue;
            };
            let by_channel = match self.latency_by_channel.entry(seen.channel.clone()) {
                Entry::Occupied(entry) => entry.into_mut(),
                Entry::Vacant(entry) => entry.insert(Self::histogram()?),
            };
            for v in latency.iter_recorded() {
                let (value, count) = (v.value_iterated_to(), u64::from(v.count_at_value()));
                self.latency.saturating_record_n(value, count);
                by_channel.saturating_record_n(value, count);
            }
        }
        Ok(())
    }

    /// Missing is how many expected events never arrived.
    pub fn missing(&self) -> u64 {
        self.expected.saturating_sub(self.received)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::encode;

    fn expect(channel: &str, events: u64) -> Expectation {
        Expectation {
            channel: channel.into(),
            events,
        }
    }

    #[test]
    fn counts_missing_duplicated_and_unexpected_events_per_channel() {
        let template = latency_template().unwrap();
        let mut tally = Tally::new(&[expect("a", 3), expect("b", 1)], template);
        assert!(!tally.record(encode("a", 0, 1_000, 50).as_bytes(), 3_000_000));
        assert!(!tally.record(encode("a", 0, 1_000, 50).as_bytes(), 3_000_000));
        assert!(!tally.record(encode("a", 7, 1_000, 50).as_bytes(), 3_000_000));
        assert!(!tally.record(encode("zebra", 0, 1_000, 50).as_bytes(), 3_000_000));
        assert!(!tally.record(b"not ours", 3_000_000));
        assert!(!tally.record(encode("b", 0, 1_000, 50).as_bytes(), 4_000_000));
        assert!(!tally.is_complete());
        let mut totals = Totals::new().unwrap();
        totals.add(&tally).unwrap();
        assert_eq!(
            (totals.expected, totals.received, totals.missing()),
            (4, 2, 2)
        );
        assert_eq!((totals.duplicated, totals.unexpected), (1, 3));
        assert_eq!(totals.last_ns, 4_000_000);
        assert_eq!(totals.latency.len(), 2);
        assert_eq!(totals.latency_by_channel["a"].len(), 1);
        assert_eq!(totals.latency_by_channel["b"].len(), 1);
    }

    #[test]
    fn completes_on_the_last_expected_event_and_merges_latency() {
        let template = latency_template().unwrap();
        let mut tally = Tally::new(&[expect("a", 2)], Arc::clone(&template));
        assert!(!tally.record(encode("a", 1, 0, 10).as_bytes(), 2_000_000));
        assert!(tally.record(encode("a", 0, 0, 10).as_bytes(), 5_000_000));
        let idle = Tally::new(&[expect("a", 0)], template);
        assert!(idle.is_complete());
        let mut totals = Totals::new().unwrap();
        totals.add(&tally).unwrap();
        totals.add(&idle).unwrap();
        assert_eq!(totals.latency.len(), 2);
        let max = totals.latency.max();
        assert!((4_950..=5_050).contains(&max), "max {max} µs");
    }
}
