//! A channel's history: its most recent frames, bounded by count and by age, kept for resume
//! (`Last-Event-ID`) and to drop redelivered duplicates.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::event::EventId;

/// Frame is one published event as it is kept and sent: its wire bytes, encoded once and shared by
/// the history and every subscriber's outbox.
#[derive(Debug)]
pub struct Frame {
    /// Arrival order across the whole hub: a later event has a larger `seq`.
    pub seq: u64,
    /// The event's id.
    pub id: EventId,
    /// The SSE frame.
    pub bytes: Bytes,
    /// When the event arrived, for age-based eviction.
    pub at: Instant,
}

/// History keeps at most `max_len` frames, none older than `max_age`.
#[derive(Debug)]
pub struct History {
    frames: VecDeque<Arc<Frame>>,
    seq_by_id: HashMap<EventId, u64>,
    max_len: usize,
    max_age: Duration,
}

impl History {
    /// New makes an empty history with the given bounds.
    pub fn new(max_len: usize, max_age: Duration) -> Self {
        Self {
            frames: VecDeque::new(),
            seq_by_id: HashMap::new(),
            max_len,
            max_age,
        }
    }

    /// Contains tells whether an event with this id is retained.
    pub fn contains(&self, id: &EventId) -> bool {
        self.seq_by_id.contains_key(id)
    }

    /// Push appends a frame (the newest) and evicts the oldest past the count bound.
    pub fn push(&mut self, frame: Arc<Frame>) {
        if self.max_len == 0 {
            return;
        }
        while self.frames.len() >= self.max_len {
            self.pop_oldest();
        }
        self.seq_by_id.insert(frame.id.clone(), frame.seq);
        self.frames.push_back(frame);
    }

    /// Evict_expired drops the frames older than the age bound at `now`.
    pub fn evict_expired(&mut self, now: Instant) {
        while self
            .frames
            .front()
            .is_some_and(|f| now.duration_since(f.at) >= self.max_age)
        {
            self.pop_oldest();
        }
    }

    /// Next_expiry is when the oldest frame will be too old, if there is one.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.frames.front().map(|f| f.at + self.max_age)
    }

    /// Snapshot returns the retained frames, oldest first.
    pub fn snapshot(&self) -> Vec<Arc<Frame>> {
        self.frames.iter().cloned().collect()
    }

    /// Len is the number of retained frames.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Is_empty tells whether nothing is retained.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    fn pop_oldest(&mut self) {
        if let Some(old) = self.frames.pop_front() {
            self.seq_by_id.remove(&old.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64, at: Instant) -> Arc<Frame> {
        let id = EventId::parse(&seq.to_string()).unwrap().unwrap();
        Arc::new(Frame {
            seq,
            id,
            bytes: Bytes::new(),
            at,
        })
    }

    fn seqs(h: &History) -> Vec<u64> {
        h.snapshot().iter().map(|f| f.seq).collect()
    }

    #[test]
    fn keeps_the_most_recent_frames_up_to_the_count_bound() {
        let now = Instant::now();
        let mut h = History::new(3, Duration::from_secs(60));
        for seq in 1..=5 {
            h.push(frame(seq, now));
        }
        assert_eq!(seqs(&h), vec![3, 4, 5]);
        assert!(!h.contains(&EventId::parse("2").unwrap().unwrap()));
        assert!(h.contains(&EventId::parse("3").unwrap().unwrap()));
    }

    #[test]
    fn evicts_frames_older_than_the_age_bound() {
        let start = Instant::now();
        let mut h = History::new(10, Duration::from_secs(60));
        h.push(frame(1, start));
        h.push(frame(2, start + Duration::from_secs(30)));
        assert_eq!(h.next_expiry(), Some(start + Duration::from_secs(60)));
        h.evict_expired(start + Duration::from_secs(60));
        assert_eq!(seqs(&h), vec![2]);
        h.evict_expired(start + Duration::from_secs(90));
        assert!(h.is_empty());
        assert_eq!(h.next_expiry(), None);
    }

    #[test]
    fn a_zero_count_bound_retains_nothing() {
        let mut h = History::new(0, Duration::from_secs(60));
        h.push(frame(1, Instant::now()));
        assert!(h.is_empty());
    }
}
