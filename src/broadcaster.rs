//! A channel's broadcaster: the one task that owns the channel's history and subscriber list.
//!
//! Every publish, subscribe and unsubscribe of a channel is a [`Command`] to its broadcaster, so
//! a subscriber joins between two events, never during one: the history snapshot it gets and the
//! live frames it receives afterwards neither overlap nor leave a hole. Fan-out hands the shared
//! frame to each outbox without waiting; a subscriber whose outbox is full is dropped here.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use indexmap::IndexMap;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::channel::ChannelName;
use crate::event::EventId;
use crate::history::{Frame, History};
use crate::hub::Shared;
use crate::subscriber::{CloseReason, Outbox, Push};

/// How long an idle broadcaster waits before it tries again to retire, when a handle to it was
/// still out the last time.
const RETIRE_RECHECK: Duration = Duration::from_secs(1);
/// How many commands a broadcaster takes per wake-up.
const COMMAND_BATCH: usize = 64;

/// Command is what a broadcaster is asked to do.
#[derive(Debug)]
pub(crate) enum Command {
    /// Add an event to the history and fan it out.
    Publish {
        id: EventId,
        bytes: Bytes,
        reply: oneshot::Sender<Delivery>,
    },
    /// Add a subscriber for live frames and reply with the history as it is at that moment
    /// (empty when the subscriber starts live and does not need it).
    Subscribe {
        subscriber: u64,
        outbox: Arc<Outbox>,
        with_history: bool,
        reply: oneshot::Sender<Vec<Arc<Frame>>>,
    },
    /// Remove a subscriber.
    Unsubscribe { subscriber: u64 },
    /// Close every subscriber's stream and stop.
    Close,
}

/// Delivery is what became of a published event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// It was added to the history and handed to every subscriber.
    Fanned {
        /// Its place in the hub's arrival order.
        seq: u64,
        /// How many subscribers it was handed to.
        subscribers: usize,
    },
    /// An event with the same id is still in the history (a redelivery): it was dropped.
    Duplicate,
}

/// ChannelCounters are a channel's figures, written by its broadcaster and read by `/stats`.
#[derive(Debug, Default)]
pub(crate) struct ChannelCounters {
    pub(crate) subscribers: AtomicUsize,
    pub(crate) published: AtomicU64,
    pub(crate) retained: AtomicUsize,
}

/// Broadcaster owns one channel's state; it runs as its own task until it retires or is closed.
pub(crate) struct Broadcaster {
    name: ChannelName,
    commands: mpsc::UnboundedReceiver<Command>,
    history: History,
    subscribers: IndexMap<u64, Arc<Outbox>>,
    counters: Arc<ChannelCounters>,
    hub: Arc<Shared>,
}

impl Broadcaster {
    pub(crate) fn new(
        name: ChannelName,
        commands: mpsc::UnboundedReceiver<Command>,
        counters: Arc<ChannelCounters>,
        hub: Arc<Shared>,
    ) -> Self {
        let history = History::new(hub.settings.history_len, hub.settings.history_max_age);
        Self {
            name,
            commands,
            history,
            subscribers: IndexMap::new(),
            counters,
            hub,
        }
    }

    /// Run handles commands until the channel is closed, or until it has neither subscribers
    /// nor history and nobody holds a handle to it (then it removes itself from the hub).
    pub(crate) async fn run(mut self) {
        tracing::debug!(channel = %self.name, "channel opened");
        let mut batch = Vec::with_capacity(COMMAND_BATCH);
        let timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(timer);
        let mut recheck: Option<Instant> = None;
        loop {
            let deadline = earliest(self.history.next_expiry(), recheck);
            if let Some(deadline) = deadline {
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
            }
            tokio::select! {
                received = self.commands.recv_many(&mut batch, COMMAND_BATCH) => {
                    if received == 0 {
                        break;
                    }
                    for command in batch.drain(..) {
                        if !self.handle(command) {
                            self.close_all(CloseReason::Shutdown);
                            return;
                        }
                    }
                }
                () = timer.as_mut(), if deadline.is_some() => {
                    recheck = None;
                }
            }
            self.history.evict_expired(Instant::now());
            self.counters
                .retained
                .store(self.history.len(), Ordering::Relaxed);
            if self.subscribers.is_empty() && self.history.is_empty() {
                if self.hub.retire(&self.name, &self.commands) {
                    tracing::debug!(channel = %self.name, "channel retired");
                    return;
                }
                recheck = Some(Instant::now() + RETIRE_RECHECK);
            }
        }
        self.close_all(CloseReason::Shutdown);
    }

    /// Handle carries out one command; it returns false when the broadcaster must stop.
    fn handle(&mut self, command: Command) -> bool {
        match command {
            Command::Publish { id, bytes, reply } => {
                let delivery = self.publish(id, bytes);
                let _ = reply.send(delivery);
            }
            Command::Subscribe {
                subscriber,
                outbox,
                with_history,
                reply,
            } => {
                self.subscribers.insert(subscriber, outbox);
                self.counters
                    .subscribers
                    .store(self.subscribers.len(), Ordering::Relaxed);
                let history = if with_history {
                    self.history.snapshot()
                } else {
                    Vec::new()
                };
                let _ = reply.send(history);
            }
            Command::Unsubscribe { subscriber } => {
                self.subscribers.swap_remove(&subscriber);
                self.counters
                    .subscribers
                    .store(self.subscribers.len(), Ordering::Relaxed);
            }
            Command::Close => return false,
        }
        true
    }

    fn publish(&mut self, id: EventId, bytes: Bytes) -> Delivery {
        if self.history.contains(&id) {
            self.hub.counters.duplicates.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(channel = %self.name, id = %id, "duplicate event dropped");
            return Delivery::Duplicate;
        }
        let seq = self.hub.next_seq();
        let frame = Arc::new(Frame {
            seq,
            id,
            bytes,
            at: Instant::now(),
        });
        self.history.push(Arc::clone(&frame));
        let subscribers = self.fan_out(&frame);
        self.counters.published.fetch_add(1, Ordering::Relaxed);
        self.hub.counters.published.fetch_add(1, Ordering::Relaxed);
        self.hub
            .counters
            .delivered
            .fetch_add(subscribers as u64, Ordering::Relaxed);
        Delivery::Fanned { seq, subscribers }
    }

    /// Fan_out hands the frame to every subscriber, dropping those whose outbox is full or gone.
    fn fan_out(&mut self, frame: &Arc<Frame>) -> usize {
        let mut lagged = 0u64;
        self.subscribers
            .retain(|_, outbox| match outbox.push(frame) {
                Push::Queued => true,
                Push::Overflowed => {
                    lagged += 1;
                    false
                }
                Push::Closed => false,
            });
        if lagged > 0 {
            self.hub
                .counters
                .slow_disconnects
                .fetch_add(lagged, Ordering::Relaxed);
            tracing::debug!(channel = %self.name, count = lagged, "slow subscribers disconnected");
        }
        self.counters
            .subscribers
            .store(self.subscribers.len(), Ordering::Relaxed);
        self.subscribers.len()
    }

    fn close_all(&mut self, reason: CloseReason) {
        for (_, outbox) in self.subscribers.drain(..) {
            outbox.close(reason);
        }
        self.counters.subscribers.store(0, Ordering::Relaxed);
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
