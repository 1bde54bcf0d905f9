//! A subscriber: its bounded outbox, filled by channel broadcasters, and the `text/event-stream`
//! body that drains it.
//!
//! A broadcaster never waits for a subscriber: [`Outbox::push_many`] either queues shared frames
//! or, when the outbox is full, closes it (the subscriber is dropped and resumes from history
//! later).
//! The body hands everything pending to the socket in one chunk, so a subscriber that is behind
//! costs one write, not one per event.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use parking_lot::Mutex;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::history::Frame;
use crate::hub::Subscription;

/// Why an outbox was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The subscriber fell behind by more than its outbox holds.
    Lagged,
    /// The gateway is shutting down.
    Shutdown,
}

/// What became of a frame offered to an outbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Push {
    /// The frame was queued.
    Queued,
    /// The outbox was full: it is now closed as [`CloseReason::Lagged`].
    Overflowed,
    /// The outbox was already closed.
    Closed,
}

/// Outbox is a subscriber's bounded queue of frames, shared between the broadcasters of its
/// channels (producers) and its response body (the consumer).
#[derive(Debug)]
pub struct Outbox {
    state: Mutex<OutboxState>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct OutboxState {
    frames: VecDeque<Arc<Frame>>,
    waker: Option<Waker>,
    closed: Option<CloseReason>,
}

impl Outbox {
    /// New makes an empty outbox that holds at most `capacity` frames.
    pub fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(OutboxState::default()),
            capacity: capacity.max(1),
        }
    }

    /// Push_many queues frames in order without waiting, under one lock and with at most one
    /// wake-up; when they do not all fit, the outbox is closed instead (the subscriber is dropped
    /// and resumes from history later).
    pub fn push_many(&self, frames: &[Arc<Frame>]) -> Push {
        let (outcome, waker) = {
            let mut state = self.state.lock();
            if state.closed.is_some() {
                return Push::Closed;
            }
            if frames.is_empty() {
                return Push::Queued;
            }
            if state.frames.len() + frames.len() > self.capacity {
                state.closed = Some(CloseReason::Lagged);
                state.frames = VecDeque::new();
                (Push::Overflowed, state.waker.take())
            } else {
                state.frames.extend(frames.iter().cloned());
                (Push::Queued, state.waker.take())
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        outcome
    }

    /// Close ends the subscription for `reason`, unless it already ended.
    pub fn close(&self, reason: CloseReason) {
        let waker = {
            let mut state = self.state.lock();
            if state.closed.is_some() {
                return;
            }
            state.closed = Some(reason);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Drain takes every queued frame now, without waiting.
    pub fn drain(&self) -> Vec<Arc<Frame>> {
        self.state.lock().frames.drain(..).collect()
    }

    /// Poll_batch moves every queued frame into `batch`; when there is none it reports why the
    /// outbox closed, or registers the task to be woken by the next push.
    fn poll_batch(
        &self,
        cx: &mut Context<'_>,
        batch: &mut Vec<Arc<Frame>>,
    ) -> Poll<Result<(), CloseReason>> {
        let mut state = self.state.lock();
        if !state.frames.is_empty() {
            batch.extend(state.frames.drain(..));
            return Poll::Ready(Ok(()));
        }
        if let Some(reason) = state.closed {
            return Poll::Ready(Err(reason));
        }
        match &state.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// The comment sent when a connection has been idle for a heartbeat interval.
const HEARTBEAT: &[u8] = b":\n\n";

/// BodySettings are the stream-level settings of every subscriber response.
#[derive(Clone, Copy, Debug)]
pub struct BodySettings {
    /// The reconnection delay sent in the first `retry:` line.
    pub retry: Duration,
    /// How long a connection may stay silent before a comment is sent.
    pub heartbeat: Duration,
    /// On shutdown, each stream's final `retry:` is `retry` plus a random delay up to this, so
    /// reconnects spread out instead of stampeding the next instance.
    pub shutdown_retry_spread: Duration,
}

/// SseBody is a subscriber's response body: the opening bytes (retry, comment, backlog), then
/// live frames as they come, with heartbeats when idle.
pub struct SseBody {
    opening: Option<Bytes>,
    subscription: Subscription,
    /// Made at the first poll, not in `new`: a timer belongs to the runtime it is made on, and a
    /// body may be made on one runtime (an HTTP worker) and written on another (the streams'),
    /// which outlives it at shutdown.
    heartbeat: Option<Interval>,
    wrote_since_heartbeat: bool,
    batch: Vec<Arc<Frame>>,
    settings: BodySettings,
    finished: bool,
}

impl SseBody {
    /// New makes the body for a subscription; its first chunk is sent at once, so the browser's
    /// `open` fires and proxies flush.
    pub fn new(mut subscription: Subscription, settings: BodySettings) -> Self {
        let mut opening = BytesMut::new();
        opening.extend_from_slice(
            format!("retry: {}\n: ok\n\n", settings.retry.as_millis()).as_bytes(),
        );
        if let Some(gap) = subscription.gap.take() {
            opening.extend_from_slice(&gap);
        }
        for frame in std::mem::take(&mut subscription.backlog) {
            opening.extend_from_slice(&frame.bytes);
        }
        Self {
            opening: Some(opening.freeze()),
            subscription,
            heartbeat: None,
            wrote_since_heartbeat: true,
            batch: Vec::new(),
            settings,
            finished: false,
        }
    }

    /// Take_opening takes the opening bytes (`retry:`, comment, gap, backlog) to be written
    /// ahead of the stream, by a writer that sends them with the response head.
    pub fn take_opening(&mut self) -> Bytes {
        let opening = self.opening.take().unwrap_or_default();
        self.count_written(opening.len());
        opening
    }

    fn count_written(&self, bytes: usize) {
        self.subscription
            .counters()
            .bytes_written
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn farewell(&self) -> Bytes {
        let spread = self.settings.shutdown_retry_spread.as_millis() as u64;
        let delay = self.settings.retry.as_millis() as u64 + fastrand::u64(0..=spread);
        Bytes::from(format!("retry: {delay}\n\n"))
    }
}

/// Coalesce joins a batch of frames into one chunk (one write), reusing the only frame's bytes.
fn coalesce(batch: &mut Vec<Arc<Frame>>) -> Bytes {
    let chunk = if let [only] = batch.as_slice() {
        only.bytes.clone()
    } else {
        let mut buf = BytesMut::with_capacity(batch.iter().map(|f| f.bytes.len()).sum());
        for frame in batch.iter() {
            buf.extend_from_slice(&frame.bytes);
        }
        buf.freeze()
    };
    batch.clear();
    chunk
}

impl Stream for SseBody {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let polled = this.poll_chunk(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &polled {
            this.count_written(chunk.len());
        }
        polled
    }
}

impl SseBody {
    /// Poll_chunk yields the next chunk to write: the opening, pending frames, the farewell
    /// `retry:`, or a heartbeat.
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Infallible>>> {
        if self.finished {
            return Poll::Ready(None);
        }
        if let Some(opening) = self.opening.take() {
            return Poll::Ready(Some(Ok(opening)));
        }
        match self.subscription.outbox.poll_batch(cx, &mut self.batch) {
            Poll::Ready(Ok(())) => {
                self.wrote_since_heartbeat = true;
                return Poll::Ready(Some(Ok(coalesce(&mut self.batch))));
            }
            Poll::Ready(Err(reason)) => {
                self.finished = true;
                self.subscription.ended(reason);
                return match reason {
                    CloseReason::Shutdown => Poll::Ready(Some(Ok(self.farewell()))),
                    CloseReason::Lagged => Poll::Ready(None),
                };
            }
            Poll::Pending => {}
        }
        let period = self.settings.heartbeat;
        let heartbeat = self.heartbeat.get_or_insert_with(|| {
            let mut interval = tokio::time::interval_at(Instant::now() + period, period);
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            interval
        });
        while heartbeat.poll_tick(cx).is_ready() {
            if !std::mem::replace(&mut self.wrote_since_heartbeat, false) {
                return Poll::Ready(Some(Ok(Bytes::from_static(HEARTBEAT))));
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventId;

    fn frame(seq: u64) -> Arc<Frame> {
        let id = EventId::parse(&seq.to_string()).unwrap().unwrap();
        let frame = Frame::new(id, Bytes::from(format!("{seq};")), Instant::now());
        frame.set_seq(seq);
        Arc::new(frame)
    }

    #[test]
    fn a_full_outbox_closes_as_lagged_and_refuses_more() {
        let outbox = Outbox::new(2);
        assert_eq!(outbox.push_many(&[frame(1)]), Push::Queued);
        assert_eq!(outbox.push_many(&[frame(2)]), Push::Queued);
        assert_eq!(outbox.push_many(&[frame(3)]), Push::Overflowed);
        assert_eq!(outbox.push_many(&[frame(4)]), Push::Closed);
        assert!(
            outbox.drain().is_empty(),
            "a lagged outbox drops what it held"
        );
    }

    #[test]
    fn pending_frames_are_coalesced_into_one_chunk() {
        let mut batch = vec![frame(1), frame(2), frame(3)];
        assert_eq!(&coalesce(&mut batch)[..], b"1;2;3;");
        assert!(batch.is_empty());
    }

    /// An event stream's body is made on the HTTP worker that accepted the request and written on
    /// the streams' runtime; at shutdown the worker's runtime goes first. The body must keep
    /// working on the runtime that polls it (a timer made on the worker's runtime would fail
    /// there, and the stream would end without its final `retry:`).
    #[test]
    fn a_body_made_on_one_runtime_keeps_working_on_another_that_outlives_it() {
        use crate::channel::ChannelName;
        use crate::hub::{Hub, HubSettings, Resume};
        use futures_util::StreamExt;

        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        };
        let streams = runtime();
        let hub = Hub::new(HubSettings::default(), streams.handle().clone());
        let channel = ChannelName::parse("c").unwrap();
        let subscription = streams
            .block_on(hub.subscribe(&[channel], Resume::Live))
            .unwrap();
        let settings = BodySettings {
            retry: Duration::from_secs(1),
            heartbeat: Duration::from_millis(10),
            shutdown_retry_spread: Duration::ZERO,
        };
        let worker = runtime();
        let mut body = worker.block_on(async { SseBody::new(subscription, settings) });
        drop(worker);
        streams.block_on(async {
            assert!(body.take_opening().starts_with(b"retry: 1000"));
            let beat = tokio::time::timeout(Duration::from_secs(10), body.next())
                .await
                .expect("a heartbeat comes");
            assert_eq!(beat.unwrap().unwrap(), Bytes::from_static(HEARTBEAT));
        });
    }
}
