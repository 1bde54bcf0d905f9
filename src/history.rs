//! A channel's history: its most recent frames, bounded by count and by age, kept for resume
//! (`Last-Event-ID`) and to drop redelivered duplicates.
//!
//! A frame enters the history when its event is accepted and gets its `seq` when it is fanned
//! out. Frames are fanned out in history order, so those with a `seq` are the oldest ones, and
//! only those are handed to a subscriber.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::event::EventId;

/// Frame is one published event as it is kept and sent: its wire bytes, encoded once and shared by
/// the history and every subscriber's outbox.
#[derive(Debug)]
pub struct Frame {
    /// Fan-out order across the whole hub (see [`Frame::seq`]); 0 while the event waits for
    /// fan-out. Set once, by the broadcaster, on the frame the history already holds.
    seq: AtomicU64,
    /// The event's id.
    pub id: EventId,
    /// The SSE frame.
    pub bytes: Bytes,
    /// When the event arrived, for age-based eviction.
    pub at: Instant,
}

impl Frame {
    /// New makes a frame that waits for fan-out.
    pub fn new(id: EventId, bytes: Bytes, at: Instant) -> Self {
        Self {
            seq: AtomicU64::new(0),
            id,
            bytes,
            at,
        }
    }

    /// Seq is the frame's place in the hub's fan-out order: an event fanned out later has a
    /// larger `seq`, so a subscriber of several channels receives their events in `seq` order,
    /// which resuming after an id relies on. 0 while the event waits for fan-out.
    pub fn seq(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// Set_seq gives the frame its place as it is fanned out.
    pub(crate) fn set_seq(&self, seq: u64) {
        self.seq.store(seq, Ordering::Release);
    }
}

/// History keeps at most `max_len` frames, none older than `max_age`.
#[derive(Debug)]
pub struct History {
    frames: VecDeque<Arc<Frame>>,
    ids: HashSet<EventId>,
    max_len: usize,
    max_age: Duration,
}

impl History {
    /// New makes an empty history with the given bounds.
    pub fn new(max_len: usize, max_age: Duration) -> Self {
        Self {
            frames: VecDeque::new(),
            ids: HashSet::new(),
            max_len,
            max_age,
        }
    }

    /// Contains tells whether an event with this id is retained.
    pub fn contains(&self, id: &EventId) -> bool {
        self.ids.contains(id)
    }

    /// Push appends a frame (the newest, waiting for fan-out) and evicts the oldest past the
    /// count bound.
    pub fn push(&mut self, frame: Arc<Frame>) {
        if self.max_len == 0 {
            return;
        }
        while self.frames.len() >= self.max_len {
            self.pop_oldest();
        }
        self.ids.insert(frame.id.clone());
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

    /// Snapshot returns the retained frames that were fanned out, oldest first (a prefix: frames
    /// are fanned out in the order they were pushed).
    pub fn snapshot(&self) -> Vec<Arc<Frame>> {
        self.frames
            .iter()
            .take_while(|f| f.seq() != 0)
            .cloned()
            .collect()
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
            self.ids.remove(&old.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frame is a frame waiting for fan-out, its id `n`.
    fn frame(n: u64, at: Instant) -> Arc<Frame> {
        let id = EventId::parse(&n.to_string()).unwrap().unwrap();
        Arc::new(Frame::new(id, Bytes::new(), at))
    }

    /// Push_fanned pushes a frame and fans it out at once, as `seq`.
    fn push_fanned(h: &mut History, seq: u64, at: Instant) {
        let waiting = frame(seq, at);
        h.push(Arc::clone(&waiting));
        waiting.set_seq(seq);
    }

    fn seqs(h: &History) -> Vec<u64> {
        h.snapshot().iter().map(|f| f.seq()).collect()
    }

    #[test]
    fn keeps_the_most_recent_frames_up_to_the_count_bound() {
        let now = Instant::now();
        let mut h = History::new(3, Duration::from_secs(60));
        for seq in 1..=5 {
            push_fanned(&mut h, seq, now);
        }
        assert_eq!(seqs(&h), vec![3, 4, 5]);
        assert!(!h.contains(&EventId::parse("2").unwrap().unwrap()));
        assert!(h.contains(&EventId::parse("3").unwrap().unwrap()));
    }

    #[test]
    fn evicts_frames_older_than_the_age_bound() {
        let start = Instant::now();
        let mut h = History::new(10, Duration::from_secs(60));
        push_fanned(&mut h, 1, start);
        push_fanned(&mut h, 2, start + Duration::from_secs(30));
        assert_eq!(h.next_expiry(), Some(start + Duration::from_secs(60)));
        h.evict_expired(start + Duration::from_secs(60));
        assert_eq!(seqs(&h), vec![2]);
        h.evict_expired(start + Duration::from_secs(90));
        assert!(h.is_empty());
        assert_eq!(h.next_expiry(), None);
    }

    #[test]
    fn a_snapshot_holds_only_the_frames_fanned_out() {
        let now = Instant::now();
        let mut h = History::new(3, Duration::from_secs(60));
        let waiting: Vec<_> = (1..=5).map(|n| frame(n, now)).collect();
        for w in &waiting[..3] {
            h.push(Arc::clone(w));
        }
        assert!(h.snapshot().is_empty(), "nothing is fanned out yet");
        waiting[0].set_seq(10);
        assert_eq!(seqs(&h), vec![10]);
        // The count bound evicts the frame fanned out, then the oldest still waiting: once that
        // one is fanned out, the history does not take it back.
        h.push(Arc::clone(&waiting[3]));
        h.push(Arc::clone(&waiting[4]));
        waiting[1].set_seq(11);
        assert!(h.snapshot().is_empty());
        waiting[2].set_seq(12);
        assert_eq!(seqs(&h), vec![12]);
        assert_eq!(h.len(), 3);
        assert!(h.contains(&waiting[2].id) && !h.contains(&waiting[1].id));
    }

    #[test]
    fn a_zero_count_bound_retains_nothing() {
        let mut h = History::new(0, Duration::from_secs(60));
        h.push(frame(1, Instant::now()));
        assert!(h.is_empty());
    }
}
